"""One-command demo: a headless ComfyUI with OpenLTX renders the text-to-video workflow to an mp4.

    make demo                                   # tiny random model (noise), runs on any CPU
    make demo PROMPT="a red fox in the snow"
    MODELS_DIR=/data/ltx2 make demo             # the real LTX-2 files (needs a large GPU)
    python tools/demo.py --prompt "..." [--models-dir DIR] [--output-dir DIR]

Steps: start ComfyUI (the host ``make setup`` provisioned) with this pack loaded, on a free
port, in a throwaway base directory (``tests/comfy_host.py`` does the launching); queue the API
twin of ``workflows/ltx2_t2v.json`` (``tests/workflows_api/ltx2_t2v.json``); print each node as
it runs and the sampler's step progress (ComfyUI's websocket); print the mp4's path; stop the
server by its pid - also on Ctrl-C or an error.

Without ``MODELS_DIR`` the demo writes tiny random checkpoints (LTX-2 layout, random weights)
and a tiny random Gemma, and renders a small clip from them: the result is noise, it only shows
that the whole graph runs.  With ``MODELS_DIR`` (a ComfyUI-style ``models`` folder with
``checkpoints/``, ``text_encoders/``, ... or one flat folder holding the files) the published files
are found by their published names (in sub-folders too) and used at the workflow's own settings:
``ltx-2-19b-dev.safetensors`` or its fp8 bundle, or the LTX-2.3 22B dev bundles (the guider then
takes its LTX-2.3 preset); Google's Gemma folder or one of Comfy-Org's single-file Gemmas.
Without a bundle, the split files stand in, whichever subset of them the folder has: a
transformer-only file or a GGUF for the checkpoint loader, the video and audio VAE files for the
VAE loader (``vae_name`` + ``second_vae_name``), and for the text encoder loader a file with the
text connectors (``ltx_checkpoint``: the bundle, Kijai's 2.3 transformer-only file, a GGUF that
embeds them) and one with the projection (``extra_file``: Kijai's / unsloth's projection files,
Kijai's 2.0 connector file).  ``model_loaders/published_files.py`` says which file holds what.
For each file it lacks the demo prints one line naming the ``tools/download_models.py`` preset
that fetches it, and stops before starting anything.

``tiny_prompt`` and ``write_tiny_models`` are also what tests/test_workflows.py runs the shipped
workflows with.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
T2V_API = REPO_ROOT / "tests" / "workflows_api" / "ltx2_t2v.json"
DEFAULT_PROMPT = ("A red fox trots through fresh snow in a quiet pine forest at dawn, its breath steaming in the "
                  "cold air; soft wind and the crunch of paws on snow.")  # fmt: skip

# Official file -> (ComfyUI model folder, tiny stand-in written by write_tiny_models).
TINY_FILES = {
    "ltx-2-19b-dev.safetensors": ("checkpoints", "ltx-2-tiny-random.safetensors"),
    "ltx-2-19b-distilled.safetensors": ("checkpoints", "ltx-2-tiny-random.safetensors"),
    "gemma-3-12b-it-qat-q4_0-unquantized/": ("text_encoders", "gemma-3-tiny-random/"),
    "ltx-2-spatial-upscaler-x2-1.0.safetensors": ("latent_upscale_models", "ltx-2-tiny-upscaler-x2.safetensors"),
    "ltx-2-19b-distilled-lora-384.safetensors": ("loras", "ltx-2-tiny-lora.safetensors"),
    # LTX-2.3 (a tiny bundle with the 2.3 layout and header; LoRAs made for its transformer)
    "ltx-2.3-22b-dev.safetensors": ("checkpoints", "ltx-2.3-tiny-random.safetensors"),
    "ltx-2.3-22b-distilled-1.1.safetensors": ("checkpoints", "ltx-2.3-tiny-random.safetensors"),
    "ltx-2.3-22b-distilled-lora-384-1.1.safetensors": ("loras", "ltx-2.3-tiny-lora.safetensors"),
    "ltx-2.3-id-lora-talkvid-3k.safetensors": ("loras", "ltx-2.3-tiny-id-lora.safetensors"),
    "ltx-2.3-spatial-upscaler-x2-1.1.safetensors": ("latent_upscale_models", "ltx-2-tiny-upscaler-x2.safetensors"),
}
TINY_FRAMES = 9
TINY_STEPS = 2
TINY_ENHANCE_TOKENS = 16  # the tiny Gemma's "enhanced prompt" (gibberish: it only has to run)


def _repo_imports() -> None:
    """Make ``model_loaders`` (repo root) and ``comfy_host`` / ``tiny_gemma`` (tests/) importable.

    The repository root goes last on ``sys.path``: in a process that also runs ComfyUI (the test
    suite) ``import nodes`` must stay ComfyUI's nodes.py, not the pack's ``nodes/`` package
    (ComfyUI 0.20's comfy_extras import it by that name).
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    if str(REPO_ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "tests"))


# ----------------------------------------------------------------------------- tiny models
def write_tiny_models(model_dirs: dict[str, Path], *, seed: int = 0) -> list[Path]:
    """Tiny random stand-ins of every file in TINY_FILES into ComfyUI model folders.

    The checkpoints are LTX-2.0 and LTX-2.3 bundles in the official layouts (transformer, text
    connectors, VAEs, vocoder); Gemma is a 2-layer, 12-wide Gemma 3 Hugging Face folder with a
    tokenizer (both versions' tiny text projections take it).
    """
    _repo_imports()
    from model_loaders.tiny_layouts import write_tiny_checkpoint
    from model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

    import tiny_gemma

    written = []
    for folder, name in sorted(set(TINY_FILES.values()), key=lambda v: v[0] == "loras"):
        path = Path(model_dirs[folder]) / name.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            continue
        version = "2.3" if name.startswith("ltx-2.3") else "2.0"
        if folder == "checkpoints":
            write_tiny_checkpoint(path, version, "all", seed=seed)
        elif folder == "text_encoders":
            tiny_gemma.write_hf_dir(tiny_gemma.tiny_text_model(seed=seed), path)
        elif folder == "latent_upscale_models":
            write_tiny_upsampler(path, tiny_upsampler_config("spatial"), seed=seed)
        elif folder == "loras":
            from model_loaders.lora_file import write_tiny_lora

            write_tiny_lora(path, _tiny_transformer_weights(model_dirs, version), seed=seed + ("id-lora" in name))
        written.append(path)
    return written


def _tiny_transformer_weights(model_dirs: dict[str, Path], version: str = "2.0") -> dict:
    """Bare transformer keys -> tensors of the tiny checkpoint (what the tiny LoRA patches)."""
    from model_loaders import read_checkpoint
    from model_loaders.layouts import TRANSFORMER_PREFIX
    from safetensors.torch import load_file

    folder, name = TINY_FILES["ltx-2.3-22b-dev.safetensors" if version == "2.3" else "ltx-2-19b-dev.safetensors"]
    path = Path(model_dirs[folder]) / name
    keys = set(read_checkpoint(path).components["transformer"])
    sd = load_file(str(path))
    return {k[len(TRANSFORMER_PREFIX):]: sd[k] for k in keys if k.startswith(TRANSFORMER_PREFIX)}


def tiny_prompt(prompt: dict) -> dict:
    """A copy of an API prompt that runs in seconds on tiny models.

    Official file names -> the tiny stand-ins; a 64×64 px output (128×128 after a two-stage graph's
    ×2 upscale); 9 frames, with keyframe indices and retake windows scaled to match; at most 2 steps of
    the LTX-2 scheduler; STG on block 1 (the tiny model has 2); Gemma in fp32 (CPU).  The graph, guidance and sigma lists are unchanged.
    """
    out = copy.deepcopy(prompt)
    two_stage = any(n["class_type"] == "OpenLTXLatentUpscale" for n in out.values())
    frames = [n["inputs"]["frames"] for n in out.values() if n["class_type"] == "OpenLTXEmptyLatent"]
    full_frames = frames[0] if frames else TINY_FRAMES
    time_scale = (TINY_FRAMES - 1) / max(1, full_frames - 1)

    def side(pixels: int) -> int:
        # One stage: 64 px.  Two stages: stage 1 (< 1024 px) at 64, the upscaled stage 2 at 128
        # (the tiny VAE cannot encode images smaller than 64 px).
        return 128 if two_stage and pixels >= 1024 else 64

    for node in out.values():
        inputs, kind = node["inputs"], node["class_type"]
        for name, value in list(inputs.items()):
            if isinstance(value, str) and value in TINY_FILES:
                inputs[name] = TINY_FILES[value][1]
        if kind == "OpenLTXEmptyLatent":
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
            inputs["frames"] = TINY_FRAMES
        elif kind == "OpenLTXEncodeImage" and inputs.get("width"):
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
        elif kind == "OpenLTXKeyframe":
            inputs["frame_index"] = round(inputs["frame_index"] * time_scale)
        elif kind == "OpenLTXRetake":
            inputs["start_s"] = round(inputs["start_s"] * time_scale, 4)
            inputs["end_s"] = round(inputs["end_s"] * time_scale, 4)
        elif kind in ("OpenLTXScheduler", "KSampler", "BasicScheduler") and isinstance(inputs.get("steps"), int):
            inputs["steps"] = min(inputs["steps"], TINY_STEPS)
        elif kind == "OpenLTXTextEncoderLoader":
            inputs["dtype"] = "fp32"
        elif kind == "OpenLTXEnhancePrompt":
            inputs["max_new_tokens"] = min(inputs["max_new_tokens"], TINY_ENHANCE_TOKENS)
        elif kind == "OpenLTXMultimodalGuider":
            for name in ("video_stg_blocks", "audio_stg_blocks"):  # the tiny transformer has 2 blocks
                if name in inputs:
                    inputs[name] = "1"
    return out


# ----------------------------------------------------------------------------- real models
MODEL_FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "latent_upscale_models", "loras", "vae")
FOLDER_ALIASES = {"text_encoders": ("clip",), "diffusion_models": ("unet",)}  # ComfyUI's older folder names

# The published files that can stand in for each file the shipped workflows name, best first
# (tools/model_catalog.py names them all).  An LTX-2.3 file replaces an LTX-2 one only when every
# LTX file of the graph comes from 2.3; the guider then takes its LTX-2.3 preset.  The bundles'
# stand-ins (the fp8 bundle, the split files) come from published_files (``plan_bundle``).
ALTERNATIVES = {
    "ltx-2-19b-distilled-lora-384.safetensors": ("ltx-2-19b-distilled-lora-384.safetensors",
                                                 "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"),
    "ltx-2-spatial-upscaler-x2-1.0.safetensors": ("ltx-2-spatial-upscaler-x2-1.0.safetensors",
                                                  "ltx-2.3-spatial-upscaler-x2-1.1.safetensors"),
    "gemma-3-12b-it-qat-q4_0-unquantized/": ("gemma-3-12b-it-qat-q4_0-unquantized/", "gemma_3_12B_it.safetensors",
                                             "gemma_3_12B_it_fp8_scaled.safetensors",
                                             "gemma_3_12B_it_fp4_mixed.safetensors"),
}  # fmt: skip
FAMILIES = ("2.0", "2.3")
# What OpenLTX reads of a Hugging Face Gemma folder: config.json, the weight shards and a tokenizer
# (either file); the rest of the release (generation config, processor configs) is optional.
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")
GUIDER_PRESET = {"2.0": "LTX-2.0", "2.3": "LTX-2.3"}


def _catalog():
    tools = str(Path(__file__).resolve().parent)
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import model_catalog

    return model_catalog


def family_of(name: str) -> str | None:
    """"2.0" / "2.3" for an LTX file, None for a file both use (Gemma)."""
    published = _published().BY_NAME.get(name)
    if published is not None:
        return published.version
    if name.startswith("ltx-2.3"):
        return "2.3"
    return "2.0" if name.startswith("ltx-2") else None


def _folder_of(name: str) -> str:
    catalog = _catalog()
    if name in catalog.FOLDERS:
        return catalog.FOLDERS[name][0].model_folder
    return catalog.FILES[name].folder


def _roots(models_dir: Path, folder: str) -> list[Path]:
    """Where ComfyUI (with models_yaml below) looks for a folder's files: DIR/<folder>, aliases, DIR."""
    return [models_dir / f for f in (folder, *FOLDER_ALIASES.get(folder, ()))] + [models_dir]


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (its header's data must fit in the file), else None."""
    import struct

    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if not 2 <= n <= min(size - 8, 100 * 2**20):
                return "not a safetensors file"
            header = json.loads(f.read(n))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return "not a safetensors file"
    need = 8 + n + max(ends, default=0)
    if size < need:
        return f"incomplete ({size:,} of {need:,} bytes; an interrupted download?)"
    return None


@dataclass
class Found:
    """A published file (or Hugging Face folder) looked up in MODELS_DIR."""

    name: str  # published name
    comfy_name: str | None = None  # the name ComfyUI lists it under, when usable
    problems: list[str] = field(default_factory=list)  # "<relative path>: why" lines when not usable


def folder_needs(name: str) -> list[tuple[str, ...]]:
    """The files of a published Hugging Face folder that must be there, as groups of which one will do."""
    names = [f.name for f in _catalog().FOLDERS[name]]
    needs = [("config.json",)] + [(n,) for n in names if n.startswith("model-") and n.endswith(".safetensors")]
    return needs + [TOKENIZER_FILES]


def _folder_problems(folder: Path, name: str) -> list[str]:
    """``"<file>: why"`` for each needed file of a Hugging Face folder that is missing or truncated."""
    problems = []
    for need in folder_needs(name):
        present = [n for n in need if (folder / n).is_file()]
        if not present:
            problems.append(f"{need[0]}: missing")
        elif present[0].endswith(".safetensors") and (why := safetensors_problem(folder / present[0])):
            problems.append(f"{present[0]}: {why}")
    return problems


def _search(root: Path, name: str) -> list[Path]:
    """Files called ``name`` below ``root``, skipping hidden folders (download_models.py stages
    unchecked downloads in ``.openltx_downloads``)."""
    hits = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if name in files:
            hits.append(Path(folder) / name)
    return hits


@functools.lru_cache(maxsize=None)
def find_published(name: str, models_dir: Path) -> Found:
    """Look for a published file by name in DIR/<folder>/ (and sub-folders), the alias folders, or DIR/."""
    catalog = _catalog()
    roots = _roots(models_dir, _folder_of(name))
    found = Found(name)
    if name in catalog.FOLDERS:  # a Hugging Face folder: a direct child of a root, all its files there
        best = None
        for root in roots:
            folder = root / name.rstrip("/")
            if folder.is_dir():
                problems = _folder_problems(folder, name)
                if not problems:
                    found.comfy_name = name
                    return found
                if best is None or len(problems) < len(best[1]):
                    best = (folder, problems)
        if best:
            rel = best[0].relative_to(models_dir).as_posix()
            found.problems = [f"{rel}/{problem}" for problem in best[1]]
        return found
    hits = [(root, root / name) for root in roots if (root / name).is_file()]
    if not hits:
        hits = [(root, path) for root in roots for path in _search(root, name)]
    for root, path in hits:
        problem = safetensors_problem(path) if name.endswith(".safetensors") else None
        if problem is None:
            found.comfy_name = path.relative_to(root).as_posix()
            return found
        found.problems.append(f"{path.relative_to(models_dir).as_posix()}: {problem}")
    return found


# The loader inputs an LTX bundle name fills, and the parts each needs (published_files' names).
ROLES = {
    ("OpenLTXCheckpointLoader", "ckpt_name"): "transformer",
    ("OpenLTXVAELoader", "vae_name"): "vae",
    ("OpenLTXTextEncoderLoader", "ltx_checkpoint"): "text",
}
SECOND_INPUT = {"vae": "second_vae_name", "text": "extra_file"}  # the optional input a split part goes to
NO_FILE = "none"
CHECKPOINT_FOLDERS = ("checkpoints", "diffusion_models")  # what the text encoder's ltx_checkpoint lists


@dataclass
class SplitPlan:
    """What stands in for one bundle name: ``inputs`` role -> {"main": ComfyUI name, "second": the file for
    the role's optional input (SECOND_INPUT)}, or the ``missing`` lines."""

    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)


def _published():
    return _catalog().published_files


def _bundles(family: str, variant: str | None) -> list[str]:
    pf = _published()
    return [f.name for f in pf.FILES if set(pf.BUNDLE) <= set(f.holds) and f.version == family and f.variant == variant]


def _split_files(part: str, family: str, variant: str | None, first_repo: str | None = None) -> list:
    """Community files (not bundles) that hold ``part`` for this release and variant, best first
    (the transformer's own publisher first: its side files fit it)."""
    pf = _published()
    files = [f for f in pf.FILES if (part in f.holds or part in f.maybe) and not set(pf.BUNDLE) <= set(f.holds)
             and f.version == family and f.variant in (None, variant)]  # fmt: skip
    return sorted(files, key=lambda f: f.repo != first_repo)


def _holds_connectors(f, path: Path) -> bool:
    """Whether a file that may embed the text connectors (a GGUF conversion) does: its header says."""
    if "text_connectors" in f.holds:
        return True
    _repo_imports()
    from model_loaders.file_header import read_file_header

    try:
        keys = read_file_header(path).shapes
    except Exception:  # unreadable: the loader will say why; here it just does not count
        return False
    return any("video_embeddings_connector." in k for k in keys)


def _full_path(models_dir: Path, found: Found) -> Path:
    for root in _roots(models_dir, _folder_of(found.name)):
        if (root / found.comfy_name).is_file():
            return root / found.comfy_name
    return models_dir / found.comfy_name


def plan_bundle(name: str, roles: set[str], family: str, models_dir: Path) -> SplitPlan:
    """The files that stand in for the bundle ``name`` in ``roles`` with LTX ``family``'s files.

    A bundle of that release (and variant) first; else the split files the folder has.  When no
    file of the release is there at all, one line names the bundle; when some split files are,
    one line per missing part names the split file (of the transformer's publisher first).
    """
    pf = _published()
    variant = pf.BY_NAME[name].variant
    plan = SplitPlan()
    bundles = _bundles(family, variant)
    looked = [find_published(b, models_dir) for b in bundles]
    bundle = next((f for f in looked if f.comfy_name), None)
    if bundle is not None:
        plan.inputs = {role: {"main": bundle.comfy_name} for role in roles}
        plan.used = [bundle.comfy_name]
        return plan

    def first(files) -> tuple[object, Found] | None:
        for f in files:
            found = find_published(f.name, models_dir)
            if found.comfy_name:
                return f, found
        return None

    split_names = {f.name for f in pf.FILES if f.version == family and not set(pf.BUNDLE) <= set(f.holds)}
    if not any(find_published(n, models_dir).comfy_name for n in split_names):  # nothing split here: the bundle
        other = [b for f in FAMILIES if f != family for b in _bundles(f, variant)]
        plan.missing = _missing_line(looked, bundles + other, models_dir)
        split = f"{_catalog().preset_for(bundles[0])}-split"
        if split in _catalog().PRESETS:
            plan.missing[0] += (f"; or its split files: python tools/download_models.py {split} "
                                 f"--models-dir {models_dir}")
        return plan

    def lack(files) -> None:
        """One line for the first of ``files`` (the others and the bundles would do too)."""
        options = [f.name for f in files] + bundles
        plan.missing.extend(_missing_line([find_published(options[0], models_dir)], options, models_dir))

    transformers = _split_files("transformer", family, variant)
    transformer = first(transformers)
    repo = transformer[0].repo if transformer else None
    if "transformer" in roles or "text" in roles:
        if transformer is None:
            lack(transformers)
        else:
            plan.inputs["transformer"] = {"main": transformer[1].comfy_name}
    if "vae" in roles:
        video = first(_split_files("video_vae", family, variant, repo))
        audio = first(_split_files("audio_vae", family, variant, repo))
        for part, got in (("video_vae", video), ("audio_vae", audio)):
            if got is None:
                lack(_split_files(part, family, variant, repo))
        if video and audio:
            plan.inputs["vae"] = {"main": video[1].comfy_name, "second": audio[1].comfy_name}
    if "text" in roles:
        # connectors: a checkpoint-folder file that holds them (it goes in ltx_checkpoint)
        holders = _split_files("text_connectors", family, variant, repo)
        connectors = None
        for f in holders:
            found = find_published(f.name, models_dir)
            if found.comfy_name and _holds_connectors(f, _full_path(models_dir, found)):
                connectors = (f, found)
                break
        projection = first(_split_files("text_projection", family, variant, repo))
        if connectors is not None and "text_projection" in connectors[0].holds:
            projection = connectors  # Kijai's 2.0 connector file holds both
        if connectors is None:
            lack([f for f in holders if "text_connectors" in f.holds])
        if projection is None:
            lack(_split_files("text_projection", family, variant, repo))
        if connectors and projection:
            main, second = connectors, projection
            if connectors[0].folder not in CHECKPOINT_FOLDERS:  # a text_encoders file: it goes in extra_file
                main = transformer
            if main is None:
                lack(transformers)
            else:
                plan.inputs["text"] = {"main": main[1].comfy_name, "second": second[1].comfy_name}
    if "transformer" not in roles:
        plan.inputs.pop("transformer", None)
    plan.missing = list(dict.fromkeys(plan.missing))
    if not plan.missing:
        plan.used = list(dict.fromkeys(v for role in plan.inputs.values() for v in role.values()))
    return plan


def locate_real_files(prompt: dict, models_dir: Path) -> tuple[dict, list[str], list[str]]:
    """``(prompt naming the files MODELS_DIR has, [], [their names])``, or ``(prompt, [one line per
    missing file], [])``.

    Every published file the prompt names is looked up by its published name, or replaced by an
    alternative the folder has (ALTERNATIVES: the fp8 bundle, a single-file Gemma, LTX-2.3; for an
    LTX bundle also the split files, ``plan_bundle``).  A line names the preset of
    ``tools/download_models.py`` that fetches the missing file.
    """
    catalog = _catalog()
    pf = catalog.published_files
    wanted = list(dict.fromkeys(v for n in prompt.values() for v in n["inputs"].values()
                                if isinstance(v, str) and (v in catalog.FILES or v in catalog.FOLDERS)))  # fmt: skip
    bundle_names = [w for w in wanted if w in pf.BY_NAME and set(pf.BUNDLE) <= set(pf.BY_NAME[w].holds)]
    roles: dict[str, set[str]] = {}
    for node in prompt.values():
        for (kind, key), role in ROLES.items():
            value = node["inputs"].get(key)
            if node["class_type"] == kind and value in bundle_names:
                roles.setdefault(value, set()).add(role)
    own = family_of(next((w for w in wanted if family_of(w)), "ltx-2")) or "2.0"
    outcomes = []
    find_published.cache_clear()  # one look per file and call; the folder may have changed since the last
    for family in sorted(FAMILIES, key=lambda f: f != own):
        chosen, plans, missing = {}, {}, []
        for name in wanted:
            if name in roles:
                plans[name] = plan_bundle(name, roles[name], family, models_dir)
                missing.append(plans[name].missing)
                continue
            options = [c for c in ALTERNATIVES.get(name, (name,)) if family_of(c) in (None, family)]
            looked = [find_published(c, models_dir) for c in options]
            usable = next((f for f in looked if f.comfy_name), None)
            if usable:
                chosen[name] = usable.comfy_name
            else:
                missing.append(_missing_line(looked, list(ALTERNATIVES.get(name, (name,))), models_dir))
        missing = [m for m in missing if m]
        present = sum(bool(find_published(f.name, models_dir).comfy_name) for f in pf.FILES if f.version == family)
        outcomes.append(((-present, sum(len(m) for m in missing)), family, chosen, plans, missing))
        if not missing:
            break
    # the release the folder has most files of, then the fewest missing files; ties: the workflow's own
    _, family, chosen, plans, missing = min(outcomes, key=lambda o: o[0])
    if missing:
        return prompt, list(dict.fromkeys(line for lines in missing for line in lines)), []
    out = copy.deepcopy(prompt)
    for node in out.values():
        inputs = node["inputs"]
        for (kind, key), role in ROLES.items():
            if node["class_type"] == kind and inputs.get(key) in plans:
                got = plans[inputs[key]].inputs[role]
                inputs[key] = got["main"]
                if "second" in got:
                    inputs[SECOND_INPUT[role]] = got["second"]
        for key, value in inputs.items():
            if isinstance(value, str) and value in chosen:
                inputs[key] = chosen[value]
        if node["class_type"] == "OpenLTXMultimodalGuider" and inputs.get("preset") in GUIDER_PRESET.values():
            inputs["preset"] = GUIDER_PRESET[family]
    used = [n for p in plans.values() for n in p.used] + list(chosen.values())
    return out, [], list(dict.fromkeys(used))


def _missing_line(looked: list[Found], options: list[str], models_dir: Path) -> list[str]:
    """One line per missing file of the preferred option, naming the preset that downloads it."""
    catalog = _catalog()
    first = looked[0]
    options = [first.name] + [o for o in options if o != first.name]
    command = f"python tools/download_models.py {catalog.preset_for(first.name)} --models-dir {models_dir}"
    if first.problems and first.name not in catalog.FOLDERS:  # found, but truncated or not safetensors
        lines = [f"{first.problems[0]} -> {command} --force"]
    elif first.problems:  # a Hugging Face folder that lacks some of its files
        lines = [f"{p} -> {command}" + ("" if p.endswith(": missing") else " --force") for p in first.problems]
    else:
        lines = [f"{_folder_of(first.name)}/{first.name}: missing -> {command}"]
    if len(options) > 1:
        lines[0] += f" (or have one of: {', '.join(options[1:])})"
    return lines


def models_yaml(models_dir: Path, path: Path) -> Path:
    """An extra_model_paths.yaml mapping every model folder to DIR/<folder> (and its aliases) and DIR itself."""
    lines = ["openltx_demo_models:"]
    for folder in MODEL_FOLDERS:
        lines += [f"  {folder}: |"] + [f"    {root}" for root in _roots(models_dir, folder)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the server
def comfy_path() -> Path:
    env = os.environ.get("COMFYUI_PATH", "").strip()
    path = Path(env).expanduser() if env else REPO_ROOT / ".comfyui"
    if not (path / "main.py").is_file():
        raise SystemExit(f"demo: no ComfyUI at {path} (main.py missing); run `make setup` first "
                         "(or set COMFYUI_PATH to a ComfyUI checkout)")  # fmt: skip
    return path


def make_server(base_dir: Path, output_dir: Path, extra_yaml: Path | None, use_gpu: bool):
    _repo_imports()
    from comfy_host import ComfyServer

    class DemoServer(ComfyServer):
        def command(self) -> list[str]:
            cmd = super().command()
            if use_gpu:
                cmd.remove("--cpu")
            return cmd

    extra = ["--output-directory", str(output_dir)]
    if extra_yaml is not None:
        extra += ["--extra-model-paths-config", str(extra_yaml)]
    return DemoServer(comfy_path(), base_dir=base_dir, python=sys.executable, extra_args=tuple(extra))


async def _run_with_progress(server, prompt: dict, timeout: float) -> dict:
    """Queue the prompt and print ComfyUI's websocket events until it finishes."""
    import aiohttp

    client_id = uuid.uuid4().hex
    titles = {k: (v.get("_meta") or {}).get("title") or v["class_type"] for k, v in prompt.items()}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            res = server.post_prompt(prompt, client_id)
            if res.status != 200:
                raise RuntimeError(f"ComfyUI refused the prompt (HTTP {res.status}): {res.text[:3000]}")
            prompt_id = res.json()["prompt_id"]
            deadline = time.monotonic() + timeout
            last_step = None
            while True:
                try:
                    msg = await ws.receive(timeout=max(1.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise TimeoutError(f"the prompt did not finish within {timeout:.0f} s") from None
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue  # binary frames are latent previews
                event = json.loads(msg.data)
                kind, data = event.get("type"), event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if kind == "executing" and data.get("node") is not None:
                    print(f"  running node {data['node']}: {titles.get(str(data['node']), '?')}", flush=True)
                elif kind == "progress":
                    step = (data.get("node"), data.get("value"), data.get("max"))
                    if step != last_step:
                        print(f"    step {data.get('value')}/{data.get('max')}", flush=True)
                        last_step = step
                elif kind in ("execution_success", "execution_error", "execution_interrupted"):
                    break
                elif kind == "executing" and data.get("node") is None:
                    break
    return server.wait_for_history(prompt_id, timeout=60)


def saved_videos(entry: dict, output_dir: Path) -> list[Path]:
    paths = []
    for out in entry.get("outputs", {}).values():
        for item in out.get("images", []) + out.get("videos", []) + out.get("gifs", []):
            if str(item.get("filename", "")).endswith(".mp4"):
                paths.append(output_dir / item.get("subfolder", "") / item["filename"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=os.environ.get("PROMPT") or DEFAULT_PROMPT, help="text prompt (env PROMPT)")
    parser.add_argument("--models-dir", default=os.environ.get("MODELS_DIR") or None,
                        help="folder with the official LTX-2 files (env MODELS_DIR); without it: tiny random models")
    parser.add_argument("--output-dir", default=os.environ.get("OUTPUT_DIR") or
                        str(Path(tempfile.gettempdir()) / "openltx-demo" / "output"), help="where the mp4 is written")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the video")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default: the workflow's)")
    args = parser.parse_args(argv)

    prompt = json.loads(T2V_API.read_text(encoding="utf-8"))
    for node in prompt.values():
        if node["class_type"] == "OpenLTXTextEncode" and "positive" in (node.get("_meta") or {}).get("title", "").lower():
            node["inputs"]["prompt"] = args.prompt
        if args.seed is not None and node["class_type"] == "RandomNoise":
            node["inputs"]["noise_seed"] = args.seed
    output_dir = Path(args.output_dir).expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)

    extra_yaml, use_gpu, models_dir = None, False, None
    if args.models_dir:
        models_dir = Path(args.models_dir).expanduser().resolve()
        prompt, missing, used = locate_real_files(prompt, models_dir)
        if missing:
            print(f"demo: MODELS_DIR={models_dir} lacks what the workflow needs (looked for the published names in "
                  "DIR/<folder>/ and DIR/):", file=sys.stderr)  # fmt: skip
            for line in missing:
                print(f"demo: {line}", file=sys.stderr)
            return 2
        import torch

        use_gpu = torch.cuda.is_available()
        print(f"demo: real LTX-2 files from {models_dir}: {', '.join(used)}"
              + ("" if use_gpu else " - no GPU found: this will be very slow"))  # fmt: skip
    else:
        print("demo: no MODELS_DIR given - using TINY RANDOM models: the video will be noise from a random model; "
              "it only shows that the whole graph runs. Set MODELS_DIR to the official LTX-2 files for real output.")
        prompt = tiny_prompt(prompt)

    base_dir = Path(tempfile.mkdtemp(prefix="openltx-demo-"))
    if models_dir is not None:
        extra_yaml = models_yaml(models_dir, base_dir / "demo_models.yaml")
    server = make_server(base_dir, output_dir, extra_yaml, use_gpu)
    # SIGTERM (e.g. from a CI runner) unwinds like Ctrl-C, so the finally below stops the server.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not args.models_dir:
            print("demo: writing tiny random models ...", flush=True)
            server._prepare_base_dir()
            write_tiny_models(server.model_dirs)
        print(f"demo: starting ComfyUI ({server.comfy_path}) on {server.url} ...", flush=True)
        server.start(timeout=300)
        print(f"demo: server pid {server.process.pid}; queueing {T2V_API.relative_to(REPO_ROOT)}", flush=True)
        started = time.monotonic()
        entry = asyncio.run(_run_with_progress(server, prompt, args.timeout))
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            from comfy_host import history_error

            print(f"demo: the workflow failed:\n{history_error(entry)}", file=sys.stderr)
            return 1
        videos = saved_videos(entry, output_dir)
        if not videos:
            print(f"demo: the workflow finished but saved no mp4: {json.dumps(entry.get('outputs'))[:2000]}",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"demo: done in {time.monotonic() - started:.1f} s")
        for path in videos:
            print(f"demo: video: {path}")
        return 0
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        pid = server.process.pid if server.process else None
        server.stop()  # by pid, then its process group
        shutil.rmtree(base_dir, ignore_errors=True)
        if pid:
            print(f"demo: stopped ComfyUI (pid {pid})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
