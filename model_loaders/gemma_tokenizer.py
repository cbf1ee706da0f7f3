"""Gemma 3 tokenization as LTX-2 does it: 1024 tokens, BOS first, LEFT padding.

ltx-core (``text_encoders/gemma/tokenizer.py``) strips the prompt, then calls Hugging Face's
Gemma tokenizer with ``padding="max_length", max_length=1024, truncation=True`` and
``padding_side="left"``.  For a Gemma tokenizer that means::

    ids  = [<pad>] * (1024 - n) + [<bos>] + sentencepiece(text)[: 1023]     # (1, 1024)
    mask = [0]     * (1024 - n) + [1] * n                                   # 1 = token

(no EOS; ``<pad>`` is id 0 in Gemma's vocabulary, EOS stands in if a tokenizer has no pad).

Two implementations, the same ids (``tests/test_gemma_loading.py`` checks them against each
other and against ltx-core's own tokenizer):

* ``HFGemmaTokenizer`` -- ``transformers.AutoTokenizer`` on a Hugging Face directory that has
  ``tokenizer.json`` / ``tokenizer_config.json`` (what ltx-core itself loads);
* ``SentencePieceGemmaTokenizer`` -- the ``sentencepiece`` model alone: a ``tokenizer.model``
  file, or the ``spiece_model`` tensor that ComfyUI's single-file Gemma checkpoints embed.
  No ``transformers`` conversion (which needs ``protobuf`` on 4.x and behaves differently on 5.x).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .safetensors_file import CheckpointError

MAX_LENGTH = 1024  # LTX2_SPEC §5: every prompt is 1024 tokens after padding
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


class GemmaTokenizerBase:
    """``tokenize(text) -> (input_ids (1, L) int64, attention_mask (1, L) int64)``, L = ``max_length``."""

    max_length: int = MAX_LENGTH
    pad_id: int = 0
    bos_id: int | None = 2
    source: str = ""

    def encode_ids(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def tokenize(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.encode_ids(text.strip())[: self.max_length]  # truncation keeps the start (HF default)
        pad = self.max_length - len(ids)
        input_ids = torch.tensor([[self.pad_id] * pad + ids], dtype=torch.long)
        mask = torch.tensor([[0] * pad + [1] * len(ids)], dtype=torch.long)
        return input_ids, mask


class HFGemmaTokenizer(GemmaTokenizerBase):
    """A Hugging Face tokenizer directory through ``AutoTokenizer`` (transformers 4.5x and 5.x)."""

    def __init__(self, directory: str | os.PathLike, max_length: int = MAX_LENGTH) -> None:
        from transformers import AutoTokenizer

        self.source = os.fspath(directory)
        try:
            tok = AutoTokenizer.from_pretrained(self.source, local_files_only=True, model_max_length=max_length)
        except Exception as err:  # transformers raises OSError / ValueError / ImportError variously
            raise CheckpointError(
                f"{self.source}: loading the Gemma tokenizer failed ({type(err).__name__}: {err}). Expected a "
                "Hugging Face tokenizer (tokenizer.json + tokenizer_config.json, or tokenizer.model) from the Gemma 3 "
                "release: copy those files from the original model folder."
            ) from err
        self.tokenizer = tok
        self.max_length = max_length
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.bos_id = tok.bos_token_id

    def encode_ids(self, text: str) -> list[int]:
        # add_special_tokens=True: the Gemma tokenizer prepends <bos> (and adds no <eos>)
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])


class SentencePieceGemmaTokenizer(GemmaTokenizerBase):
    """Gemma's ``sentencepiece`` model: ``[<bos>] + pieces``; special ids read from the model."""

    def __init__(self, model: bytes | str | os.PathLike, max_length: int = MAX_LENGTH, source: str = "") -> None:
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor()
        try:
            if isinstance(model, (bytes, bytearray)):
                sp.LoadFromSerializedProto(bytes(model))
                self.source = source or "<embedded spiece_model>"
            else:
                self.source = os.fspath(model)
                sp.Load(self.source)
        except Exception as err:  # sentencepiece raises RuntimeError / OSError
            raise CheckpointError(
                f"{source or model}: expected a sentencepiece tokenizer model (Gemma's tokenizer.model), it could not "
                f"be read ({type(err).__name__}: {err}). Copy tokenizer.model from the Gemma 3 release."
            ) from err
        self.sp = sp
        self.max_length = max_length
        pad, bos, eos = sp.pad_id(), sp.bos_id(), sp.eos_id()
        self.pad_id = pad if pad >= 0 else eos
        self.bos_id = bos if bos >= 0 else None

    def encode_ids(self, text: str) -> list[int]:
        ids = list(self.sp.encode(text)) if text else []
        return ([self.bos_id] if self.bos_id is not None else []) + ids


def find_tokenizer(directory: Path) -> Path | None:
    """The directory itself when it holds a tokenizer, else None."""
    return directory if any((directory / name).is_file() for name in TOKENIZER_FILES) else None


def load_tokenizer(
    location: str | os.PathLike | bytes, max_length: int = MAX_LENGTH, source: str = ""
) -> GemmaTokenizerBase:
    """A tokenizer from a directory, a ``tokenizer.model`` file or serialized sentencepiece bytes.

    Directories with ``tokenizer.json`` / ``tokenizer_config.json`` go through ``AutoTokenizer``
    (ltx-core's path); a lone ``tokenizer.model`` through sentencepiece.
    """
    if isinstance(location, (bytes, bytearray)):
        return SentencePieceGemmaTokenizer(location, max_length, source=source)
    path = Path(location)
    if path.is_file():
        return SentencePieceGemmaTokenizer(path, max_length)
    if path.is_dir():
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return HFGemmaTokenizer(path, max_length)
        if (path / "tokenizer.model").is_file():
            return SentencePieceGemmaTokenizer(path / "tokenizer.model", max_length)
    raise CheckpointError(
        f"{path}: expected a Gemma tokenizer (a folder with tokenizer.json / tokenizer.model, or a tokenizer.model "
        "file), found none. Put tokenizer.model from the Gemma 3 release next to the Gemma weights."
    )
