"""Prompt enhancement: Gemma 3 turns a short prompt into the long, detailed one LTX-2 wants.

What Lightricks' pipelines do (ltx-core ``GemmaTextEncoder.enhance_t2v`` + ltx_pipelines
``generate_enhanced_prompt``), run here on the Gemma the text encoder already holds:

1. the chat: a system turn with the *official system prompt* and the user turn
   ``"user prompt: <prompt>"``, in Gemma 3's chat format (``chat_ids``);
2. generation with Gemma's language-model head, which is the token embedding itself (tied
   weights: ComfyUI's single-file Gemmas carry no ``lm_head``): sampling at temperature 0.7 and
   transformers' default top-k 50 (what ``generate(do_sample=True, temperature=0.7)`` does),
   seeded, up to 512 new tokens, stopping at ``<eos>`` / ``<end_of_turn>`` (``generate``);
3. the answer cleaned of curly quotes and leading non-letters (``clean_response``).

The system prompts are Lightricks' texts under the LTX-2 Community License, which binds
whoever redistributes them to its own terms; this Apache-2.0 pack therefore ships no copy and
reads the files where Lightricks publishes them (``official_system_prompt``): the installed
``ltx_core`` package, Lightricks' ComfyUI-LTXVideo node pack, or a copy the user puts in
``models/prompt_enhancer/`` or next to the Gemma weights.

Only the text model runs (the loader builds ``Gemma3TextModel``; the vision tower is not
loaded), so the image-to-video variant, which shows Gemma the first frame, is not offered.

Results are cached on disk like encoded prompts (``prompt_cache.py``): a hit returns the text
without building Gemma.  No network access anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

try:  # <pack>.host, or top-level host (tools, benchmarks)
    from ..model_loaders.gemma_tokenizer import GemmaTokenizerBase, HFGemmaTokenizer, SentencePieceGemmaTokenizer
    from .gemma_streaming import GemmaEncoder, activation_bytes
    from .prompt_cache import file_identity
except ImportError:
    from model_loaders.gemma_tokenizer import GemmaTokenizerBase, HFGemmaTokenizer, SentencePieceGemmaTokenizer
    from host.gemma_streaming import GemmaEncoder, activation_bytes
    from host.prompt_cache import file_identity

_log = logging.getLogger(__name__)

FORMAT = "openltx-enhanced-prompt-1"
CACHE_SUBFOLDER = "enhanced"  # under the prompt cache folder
PROMPT_FOLDER = "prompt_enhancer"  # models/prompt_enhancer/: where a user may put the official files
# File names of the official system prompts (ltx-core 1.0.0 / ComfyUI-LTXVideo; newer LTX-2 releases).
SYSTEM_PROMPT_FILES = {
    "t2v": ("gemma_t2v_system_prompt.txt", "gemma3_t2v_system_prompt.txt"),
    "i2v": ("gemma_i2v_system_prompt.txt", "gemma3_i2v_system_prompt.txt"),
}
SYSTEM_PROMPT_URL = (
    "https://github.com/Lightricks/LTX-2/tree/main/packages/ltx-core/src/ltx_core/text_encoders/gemma/encoders/prompts"
)
T2V_USER_TEMPLATE = "user prompt: {prompt}"  # ltx-core's enhance_t2v user turn
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"


class EnhancerError(ValueError):
    """A prompt-enhancer input or file problem, with what to do about it."""


# ------------------------------------------------------------------------------ system prompts
def system_prompt_dirs(extra: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Where the official system prompts are looked for, in order.

    ``extra`` first (the node passes ``models/prompt_enhancer`` and the Gemma folder), then the
    installed ``ltx_core`` package, then Lightricks' ComfyUI-LTXVideo node pack when ComfyUI
    has it (``custom_nodes/*/system_prompts``).
    """
    dirs = [Path(d) for d in extra]
    spec = importlib.util.find_spec("ltx_core")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            dirs.append(Path(root) / "text_encoders" / "gemma" / "encoders" / "prompts")
    try:
        import folder_paths

        for root in folder_paths.get_folder_paths("custom_nodes"):
            if os.path.isdir(root):
                dirs.extend(sorted(Path(root).glob("*/system_prompts")))
    except (ImportError, KeyError):
        pass
    return dirs


def official_system_prompt(kind: str = "t2v", extra_dirs: Iterable[str | os.PathLike] = ()) -> tuple[str, Path]:
    """``(text, path)`` of Lightricks' system prompt for ``kind`` ("t2v" / "i2v"), read as is."""
    if kind not in SYSTEM_PROMPT_FILES:
        raise EnhancerError(f"unknown system prompt kind {kind!r}; expected one of {sorted(SYSTEM_PROMPT_FILES)}")
    dirs = system_prompt_dirs(extra_dirs)
    for d in dirs:
        for name in SYSTEM_PROMPT_FILES[kind]:
            path = d / name
            if path.is_file():
                return path.read_text(encoding="utf-8"), path
    names = " or ".join(SYSTEM_PROMPT_FILES[kind])
    looked = "; ".join(str(d) for d in dirs) or "(no folder)"
    raise EnhancerError(
        f"the official {kind} system prompt ({names}) was not found; looked in: {looked}. It is Lightricks' text "
        f"(LTX-2 Community License), which OpenLTX does not ship: download {SYSTEM_PROMPT_FILES[kind][0]} from "
        f"{SYSTEM_PROMPT_URL} into ComfyUI/models/{PROMPT_FOLDER}/ (or `pip install ltx-core`, or install "
        "Lightricks' ComfyUI-LTXVideo), or choose system_prompt 'custom' and write your own."
    )


# ------------------------------------------------------------------------------ chat tokens
def _special_id(tokenizer: GemmaTokenizerBase, piece: str) -> int:
    if isinstance(tokenizer, HFGemmaTokenizer):
        tok = tokenizer.tokenizer
        found = tok.convert_tokens_to_ids(piece)
        unknown = tok.unk_token_id
    elif isinstance(tokenizer, SentencePieceGemmaTokenizer):
        found, unknown = tokenizer.sp.piece_to_id(piece), tokenizer.sp.unk_id()
    else:  # pragma: no cover - the two kinds above are all the loader makes
        raise EnhancerError(f"cannot look up {piece!r} in a {type(tokenizer).__name__}")
    if found is None or found == unknown:
        raise EnhancerError(f"the Gemma tokenizer ({tokenizer.source}) has no {piece!r} token: it is not a Gemma 3 "
                            "instruction-tuned tokenizer (the -it release has the chat tokens)")  # fmt: skip
    return int(found)


def _encode_text(tokenizer: GemmaTokenizerBase, text: str) -> list[int]:
    """Plain text -> ids, no BOS (special tokens are inserted by id, never parsed from text)."""
    if not text:
        return []
    if isinstance(tokenizer, HFGemmaTokenizer):
        return list(tokenizer.tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer.sp.encode(text))


def chat_ids(tokenizer: GemmaTokenizerBase, system: str, user: str) -> list[int]:
    """Gemma 3's chat format with a system prompt, ready for the model's answer::

        <bos><start_of_turn>user\\n{system}\\n\\n{user stripped}<end_of_turn>\\n<start_of_turn>model\\n

    (Gemma has no system role: the system text opens the first user turn.)
    """
    sot, eot = _special_id(tokenizer, START_OF_TURN), _special_id(tokenizer, END_OF_TURN)
    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    return (bos + [sot] + _encode_text(tokenizer, f"user\n{system}\n\n{user.strip()}") + [eot]
            + _encode_text(tokenizer, "\n") + [sot] + _encode_text(tokenizer, "model\n"))  # fmt: skip


def stop_ids(tokenizer: GemmaTokenizerBase) -> tuple[int, ...]:
    """``<eos>`` and ``<end_of_turn>``: Gemma 3's end-of-answer tokens (its ``eos_token_id`` list)."""
    eos = tokenizer.tokenizer.eos_token_id if isinstance(tokenizer, HFGemmaTokenizer) else tokenizer.sp.eos_id()
    return tuple(i for i in (eos, _special_id(tokenizer, END_OF_TURN)) if i is not None and i >= 0)


def decode_ids(tokenizer: GemmaTokenizerBase, ids: list[int]) -> str:
    """Generated ids -> text, special tokens dropped."""
    if isinstance(tokenizer, HFGemmaTokenizer):
        return tokenizer.tokenizer.decode(ids, skip_special_tokens=True)
    sp = tokenizer.sp
    specials = {sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id(), _special_id(tokenizer, START_OF_TURN),
                _special_id(tokenizer, END_OF_TURN)}  # fmt: skip
    return sp.decode([i for i in ids if i not in specials])


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-",
                             "\u2013": "-", "\u00a0": " ", "\u2032": "'", "\u2212": "-"})  # fmt: skip


def clean_response(text: str) -> str:
    """Plain quotes and dashes instead of typographic ones; no leading non-letters (Gemma likes
    to open with quotes, asterisks or a newline), as Lightricks' pipelines post-process it."""
    text = text.translate(_TYPOGRAPHY)
    start = next((i for i, ch in enumerate(text) if ch.isalpha()), None)
    return text if start is None else text[start:]


# ------------------------------------------------------------------------------ sampling
@dataclass(frozen=True)
class Sampling:
    """How the next token is picked.

    ``do_sample`` False: greedy (argmax).  Otherwise transformers' multinomial sampling with its
    warpers in its order: logits / temperature, keep the ``top_k`` best (0 = all), keep the
    smallest set whose probability exceeds ``top_p`` (1 = all); drawn with a generator seeded
    with ``seed``, so a CPU run equals ``torch.manual_seed(seed); model.generate(...)``.
    """

    do_sample: bool = True
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.do_sample and not self.temperature > 0:
            raise EnhancerError(f"temperature must be > 0 for sampling, got {self.temperature}; use greedy instead")
        if self.top_k < 0 or not 0.0 < self.top_p <= 1.0:
            raise EnhancerError(f"top_k must be >= 0 and top_p in (0, 1]; got top_k {self.top_k}, top_p {self.top_p}")


def next_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    """One token id from ``logits`` ``(V,)`` float32."""
    if not sampling.do_sample:
        return int(torch.argmax(logits))
    scores = logits / sampling.temperature if sampling.temperature != 1.0 else logits
    if sampling.top_k:
        k = min(sampling.top_k, scores.shape[-1])
        scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -math.inf)
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=False)
        drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - sampling.top_p)
        drop[..., -1:] = False
        scores = scores.masked_fill(drop.scatter(-1, order, drop), -math.inf)
    probs = scores.softmax(dim=-1)
    return int(torch.multinomial(probs[None], num_samples=1, generator=generator)[0, 0])


# ------------------------------------------------------------------------------ generation
class GemmaGenerator(GemmaEncoder):
    """``GemmaEncoder`` that also generates text: same weights, residency and streaming."""

    def _lm_head(self) -> torch.Tensor:
        """The tied LM head: the token embedding ``(V, D)`` (unscaled), on the compute device
        when the embedding is resident there, else in CPU memory."""
        embed = self.units[0]
        if embed.resident and embed.on_device:
            return self.model.embed_tokens.weight
        return self.weights["embed_tokens.weight"].materialize("cpu", self.dtype)

    @torch.no_grad()
    def generate(
        self,
        ids: list[int],
        *,
        max_new_tokens: int,
        sampling: Sampling,
        stop: Iterable[int] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """The new token ids after ``ids`` (the stop token, when reached, not included)."""
        self.load()
        for u in self.units:
            if u.resident:
                self._bring(u)
        stop = set(stop)
        generator = torch.Generator(device="cpu").manual_seed(int(sampling.seed)) if sampling.do_sample else None
        head = self._lm_head()
        out: list[int] = []
        cache = None
        step = torch.tensor([ids], dtype=torch.long, device=self.device)
        try:
            for i in range(max_new_tokens):
                result = self.model(input_ids=step, past_key_values=cache, use_cache=True)
                cache = result.past_key_values
                hidden = result.last_hidden_state[0, -1].to(head.device, head.dtype)
                logits = (hidden @ head.T).float().cpu()  # sampled on the CPU: the same draws on any device
                token = next_token(logits, sampling, generator)
                if progress is not None:
                    progress(i + 1, max_new_tokens)
                if token in stop:
                    break
                out.append(token)
                step = torch.tensor([[token]], dtype=torch.long, device=self.device)
        finally:
            for u in self.units:
                if not u.resident:
                    self._drop(u)
            self._forget_prefetched()
        return out


# ------------------------------------------------------------------------------ cache
class EnhancedPromptCache:
    """Enhanced prompts on disk: ``<dir>/<sha256>.json`` written atomically; unreadable = miss."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            doc = json.loads(self.path(key).read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT or doc.get("key") != key or not isinstance(doc.get("text"), str):
                raise ValueError("written for another key / format")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as err:
            _log.warning("OpenLTX enhanced-prompt cache: ignoring unreadable %s (%s)", self.path(key), err)
            self.misses += 1
            return None
        self.hits += 1
        return doc["text"]

    def put(self, key: str, text: str, description: dict) -> Path | None:
        path, tmp = self.path(key), None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".tmp", dir=self.directory)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": FORMAT, "key": key, "text": text, "made_from": description}, fh,
                          ensure_ascii=False, indent=1)  # fmt: skip
            os.replace(tmp, path)
            return path
        except OSError as err:
            _log.warning("OpenLTX enhanced-prompt cache: could not write %s (%s)", path, err)
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            return None


def cache_key(gemma_identity, system: str, prompt: str, sampling: Sampling, max_new_tokens: int,
              dtype: torch.dtype) -> str:  # fmt: skip
    doc = {"format": FORMAT, "gemma": gemma_identity, "system": system, "prompt": prompt,
           "sampling": asdict(sampling), "max_new_tokens": int(max_new_tokens), "dtype": str(dtype)}  # fmt: skip
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ the whole step
class PromptEnhancer:
    """Enhances prompts with the Gemma of an ``LTXTextEncoder`` (same files, dtype, placement).

    ``enhance`` looks the request up in the cache first; on a miss it turns the encoder's Gemma
    into a ``GemmaGenerator`` (same CPU weights, read once for both jobs), generates on the
    device the encoder's placement picks, frees that device again and stores the text.
    """

    def __init__(self, text_encoder, cache_dir: str | os.PathLike | None = None) -> None:
        self.text_encoder = text_encoder
        self.cache = EnhancedPromptCache(cache_dir) if cache_dir is not None else None

    @property
    def gemma_identity(self):
        source = self.text_encoder.source
        return {"gemma": [list(s) for s in source.file_stats],
                "tokenizer": file_identity(source.tokenizer) if source.tokenizer else "embedded"}  # fmt: skip

    def key(self, system: str, prompt: str, sampling: Sampling, max_new_tokens: int) -> str:
        return cache_key(self.gemma_identity, system, prompt, sampling, max_new_tokens, self.text_encoder.dtype)

    def enhance(self, prompt: str, system: str, *, sampling: Sampling = Sampling(), max_new_tokens: int = 512,
                progress: Callable[[int, int], None] | None = None) -> str:  # fmt: skip
        if not prompt.strip():
            raise EnhancerError("the prompt is empty: write a short description of the video to enhance")
        if not system.strip():
            raise EnhancerError("the system prompt is empty")
        if max_new_tokens < 1:
            raise EnhancerError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        key = self.key(system, prompt, sampling, max_new_tokens)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        text = clean_response(self._generate(prompt, system, sampling, max_new_tokens, progress))
        if self.cache is not None:
            self.cache.put(key, text, {"gemma": self.text_encoder.source.path, "prompt": prompt[:500],
                                       "seed": sampling.seed})  # fmt: skip
        return text

    def _generate(self, prompt, system, sampling, max_new_tokens, progress) -> str:
        te = self.text_encoder
        # The text encoder's own placement rule and activation estimate: the same decision as
        # for encoding, so the generator below also serves LTX-2 Text Encode afterwards.
        device, budget = te.placement(te.source.weight_bytes(te.dtype), activation_bytes(te.source, te.dtype,
                                                                                          te.max_length))
        gen = self._generator(torch.device(device), budget)
        tokens = chat_ids(gen.tokenizer, system, T2V_USER_TEMPLATE.format(prompt=prompt))
        try:
            ids = gen.generate(tokens, max_new_tokens=max_new_tokens, sampling=sampling,
                               stop=stop_ids(gen.tokenizer), progress=progress)  # fmt: skip
        finally:
            gen.offload()  # the compute device is free again for the sampler
        return decode_ids(gen.tokenizer, ids)

    def _generator(self, device: torch.device, budget: int | None) -> GemmaGenerator:
        """The text encoder's Gemma as a ``GemmaGenerator``: built once, weights read once.

        It replaces the encoder's ``GemmaEncoder`` (taking over its CPU weights and tokenizer), so
        encoding the enhanced prompt afterwards reuses it instead of reading the file again.
        """
        te = self.text_encoder
        current = te.gemma
        if isinstance(current, GemmaGenerator) and current.device == device and current.budget_bytes == budget:
            return current
        gen = GemmaGenerator(te.source, dtype=te.dtype, device=device, budget_bytes=budget,
                             tokenizer=current._tokenizer if current is not None else None, max_length=te.max_length)
        if current is not None:
            gen.weights, gen.builds = current.weights, current.builds
            current.unload()  # drops its module; the weights live on in ``gen``
        te.gemma = gen
        return gen
