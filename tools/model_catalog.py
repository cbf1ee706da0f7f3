"""The published LTX-2 / LTX-2.3 model files: where each lives on the Hugging Face Hub, which
ComfyUI model folder it goes in, and the download presets that group them.

One table for every tool that names a published file: ``tools/download_models.py`` (the
presets), ``tools/workflow_ui.py`` (the shipped workflows' ``properties.models`` download hints
and Notes) and ``tools/demo.py`` (which preset fetches a file ``MODELS_DIR`` lacks).

Repositories and file names are the ones Lightricks, Google and Comfy-Org publish (Lightricks'
LTX-2 README "Full Model List", the Comfy-Org ``split_files`` repos that ComfyUI's own LTX-2
templates download from).  A file lands at ``<models dir>/<folder>/<basename of its path in the
repo>``: Comfy-Org's ``split_files/text_encoders/...`` becomes ``text_encoders/<name>``.  Google's
Gemma release is a Hugging Face folder (config, five weight shards, tokenizer); its files share
the folder ``text_encoders/gemma-3-12b-it-qat-q4_0-unquantized`` so the folder keeps its layout.

Sizes are only pinned where a public source measured them; the download tool always takes the
size and sha256 from the Hub itself (a repo can re-upload a file).

Pure data and the standard library only: importing this module needs neither torch nor the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

HF = "https://huggingface.co"

LTX2_REPO = "Lightricks/LTX-2"
LTX23_REPO = "Lightricks/LTX-2.3"
LTX23_FP8_REPO = "Lightricks/LTX-2.3-fp8"
COMFY_LTX2_REPO = "Comfy-Org/ltx-2"
GEMMA_REPO = "google/gemma-3-12b-it-qat-q4_0-unquantized"
GEMMA_FOLDER = "gemma-3-12b-it-qat-q4_0-unquantized"


@dataclass(frozen=True)
class HubFile:
    """One published file: ``repo`` / ``filename`` (path in the repo) -> ``<models>/<folder>/<name>``."""

    repo: str
    filename: str
    folder: str  # ComfyUI model folder, e.g. "checkpoints" or "text_encoders/<HF folder name>"
    size: int | None = None  # bytes, where a public source pinned it
    revision: str = "main"

    @property
    def name(self) -> str:
        """The file's name in its model folder (the basename of its path in the repo)."""
        return PurePosixPath(self.filename).name

    @property
    def model_folder(self) -> str:
        """The ComfyUI model folder (``text_encoders`` for a file of a Hugging Face folder)."""
        return self.folder.split("/", 1)[0]

    @property
    def url(self) -> str:
        """The Hub's resolve URL (what the frontend's missing-model dialog downloads)."""
        return f"{HF}/{self.repo}/resolve/{self.revision}/{self.filename}"

    def as_listed(self) -> dict:
        """The ``--list`` entry (the convention scripts rely on; see ../shared/DOWNLOADS.md)."""
        return {"repo": self.repo, "filename": self.filename, "folder": self.folder, "size": self.size}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    files: tuple[HubFile, ...]


def _ltx2(filename: str, folder: str) -> HubFile:
    return HubFile(LTX2_REPO, filename, folder)


def _ltx23(filename: str, folder: str, size: int | None = None) -> HubFile:
    return HubFile(LTX23_REPO, filename, folder, size)


def _comfy(filename: str, folder: str) -> HubFile:
    return HubFile(COMFY_LTX2_REPO, f"split_files/{folder}/{filename}", folder)


# Google's Gemma 3 12B QAT release as LTX-2 uses it (ltx-core reads config.json, the shards,
# tokenizer.model and preprocessor_config.json; OpenLTX the config, shards and tokenizer).
GEMMA_FILES = tuple(
    HubFile(GEMMA_REPO, name, f"text_encoders/{GEMMA_FOLDER}")
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        *(f"model-{i:05d}-of-00005.safetensors" for i in range(1, 6)),
        "preprocessor_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
    )
)

_PRESETS = (
    # LTX-2 19B (Lightricks/LTX-2): single-file bundles hold the transformer, text connectors and
    # projection, video VAE, audio VAE and vocoder.
    Preset("ltx-2-dev", "LTX-2 19B dev, bf16 bundle (checkpoints/)",
           (_ltx2("ltx-2-19b-dev.safetensors", "checkpoints"),)),
    Preset("ltx-2-distilled", "LTX-2 19B distilled, bf16 bundle (checkpoints/)",
           (_ltx2("ltx-2-19b-distilled.safetensors", "checkpoints"),)),
    Preset("ltx-2-dev-fp8", "LTX-2 19B dev, fp8 bundle (checkpoints/)",
           (_ltx2("ltx-2-19b-dev-fp8.safetensors", "checkpoints"),)),
    Preset("ltx-2-distilled-fp8", "LTX-2 19B distilled, fp8 bundle (checkpoints/)",
           (_ltx2("ltx-2-19b-distilled-fp8.safetensors", "checkpoints"),)),
    Preset("ltx-2-distilled-lora", "LTX-2 19B distilled LoRA, rank 384: the two-stage pipelines' stage 2 (loras/)",
           (_ltx2("ltx-2-19b-distilled-lora-384.safetensors", "loras"),)),
    Preset("ltx-2-upscalers", "LTX-2 latent upscalers: spatial x2 and temporal x2 (latent_upscale_models/)",
           (_ltx2("ltx-2-spatial-upscaler-x2-1.0.safetensors", "latent_upscale_models"),
            _ltx2("ltx-2-temporal-upscaler-x2-1.0.safetensors", "latent_upscale_models"))),
    # LTX-2 19B IC-LoRAs, one Hugging Face repo each (reference-video control: edges, depth, pose;
    # the detailer re-renders a video with more detail).
    *(Preset(f"ltx-2-ic-lora-{kind}", f"LTX-2 19B IC-LoRA {title} (loras/)",
             (HubFile(f"Lightricks/LTX-2-19b-IC-LoRA-{repo}", f"ltx-2-19b-ic-lora-{kind}.safetensors", "loras"),))
      for kind, repo, title in (("canny-control", "Canny-Control", "canny edge control"),
                                ("depth-control", "Depth-Control", "depth control"),
                                ("pose-control", "Pose-Control", "human pose control"),
                                ("detailer", "Detailer", "detailer: video-to-video refinement"))),
    # LTX-2.3 22B (Lightricks/LTX-2.3, fp8 bundles in Lightricks/LTX-2.3-fp8).
    Preset("ltx-2.3-dev", "LTX-2.3 22B dev, bf16 bundle (checkpoints/)",
           (_ltx23("ltx-2.3-22b-dev.safetensors", "checkpoints"),)),
    Preset("ltx-2.3-distilled", "LTX-2.3 22B distilled 1.1, bf16 bundle (checkpoints/)",
           (_ltx23("ltx-2.3-22b-distilled-1.1.safetensors", "checkpoints"),)),
    Preset("ltx-2.3-dev-fp8", "LTX-2.3 22B dev, fp8 bundle (checkpoints/)",
           (HubFile(LTX23_FP8_REPO, "ltx-2.3-22b-dev-fp8.safetensors", "checkpoints", 29_145_431_166),)),
    Preset("ltx-2.3-distilled-fp8", "LTX-2.3 22B distilled, fp8 bundle (checkpoints/)",
           (HubFile(LTX23_FP8_REPO, "ltx-2.3-22b-distilled-fp8.safetensors", "checkpoints", 29_531_884_062),)),
    Preset("ltx-2.3-distilled-lora", "LTX-2.3 22B distilled LoRA 1.1, rank 384 (loras/)",
           (_ltx23("ltx-2.3-22b-distilled-lora-384-1.1.safetensors", "loras"),)),
    Preset("ltx-2.3-upscalers",
           "LTX-2.3 latent upscalers: spatial x2 1.1, spatial x1.5, temporal x2 (latent_upscale_models/)",
           (_ltx23("ltx-2.3-spatial-upscaler-x2-1.1.safetensors", "latent_upscale_models"),
            _ltx23("ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors", "latent_upscale_models"),
            _ltx23("ltx-2.3-temporal-upscaler-x2-1.0.safetensors", "latent_upscale_models"))),
    # Gemma 3 12B, the text encoder of both.  Google's repo is gated: accept its licence first.
    Preset("gemma-3-12b-qat", "Gemma 3 12B QAT (unquantized bf16), Google's Hugging Face folder as Lightricks' "
           "reference uses it (text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/; gated: accept the licence)",
           GEMMA_FILES),
    Preset("gemma-3-12b-bf16", "Gemma 3 12B, Comfy-Org single file, bf16, tokenizer inside (text_encoders/)",
           (_comfy("gemma_3_12B_it.safetensors", "text_encoders"),)),
    Preset("gemma-3-12b-fp8", "Gemma 3 12B, Comfy-Org single file, fp8 scaled (text_encoders/)",
           (_comfy("gemma_3_12B_it_fp8_scaled.safetensors", "text_encoders"),)),
    Preset("gemma-3-12b-fp4", "Gemma 3 12B, Comfy-Org single file, fp4 mixed (NVFP4) (text_encoders/)",
           (_comfy("gemma_3_12B_it_fp4_mixed.safetensors", "text_encoders"),)),
    Preset("gemma-3-12b-abliterated-lora", "Gemma 3 12B abliterated LoRA, rank 64, as the Comfy-Org LTX-2 templates "
           "apply it to the text encoder (loras/)",
           (_comfy("gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors", "loras"),)),
)


def _workflows_preset() -> Preset:
    by_name = {f.name: f for p in _PRESETS for f in p.files}
    names = ("ltx-2-19b-dev.safetensors", "ltx-2-19b-distilled.safetensors", "ltx-2-19b-distilled-lora-384.safetensors",
             "ltx-2-spatial-upscaler-x2-1.0.safetensors",
             # video-to-video, IC-LoRA control, temporal upscale (LTX-2.0) and the LTX-2.3 detailer
             "ltx-2-19b-ic-lora-canny-control.safetensors", "ltx-2-19b-ic-lora-pose-control.safetensors",
             "ltx-2-19b-ic-lora-detailer.safetensors", "ltx-2-temporal-upscaler-x2-1.0.safetensors",
             "ltx-2.3-22b-dev.safetensors", "ltx-2.3-22b-distilled-lora-384-1.1.safetensors")  # fmt: skip
    return Preset("workflows", "Every file the shipped workflows (workflows/*.json) name: LTX-2 19B dev and distilled, "
                  "the distilled LoRA, the spatial and temporal x2 upscalers, the canny / pose / detailer IC-LoRAs, "
                  "LTX-2.3 22B dev with its distilled LoRA and Google's Gemma 3 folder",
                  tuple(by_name[n] for n in names) + GEMMA_FILES)  # fmt: skip


PRESETS: dict[str, Preset] = {p.name: p for p in (*_PRESETS, _workflows_preset())}

# Every published file by its name in the model folder, and Google's folder by "<name>/" (the
# way OpenLTX's text-encoder loader lists a Hugging Face folder).
FILES: dict[str, HubFile] = {f.name: f for p in _PRESETS for f in p.files if f.repo != GEMMA_REPO}
FOLDERS: dict[str, tuple[HubFile, ...]] = {f"{GEMMA_FOLDER}/": GEMMA_FILES}


def preset_for(name: str) -> str:
    """The smallest preset that downloads a published file (``name`` as in FILES or FOLDERS)."""
    wanted = {f.name for f in FOLDERS[name]} if name in FOLDERS else {name}
    repo = FOLDERS[name][0].repo if name in FOLDERS else FILES[name].repo
    fits = [p for p in PRESETS.values() if wanted <= {f.name for f in p.files if f.repo == repo}]
    return min(fits, key=lambda p: len(p.files)).name


def listing() -> dict:
    """What ``download_models.py --list`` prints: ``{"presets": {name: {description, files}}}``."""
    return {"presets": {p.name: {"description": p.description, "files": [f.as_listed() for f in p.files]}
                        for p in PRESETS.values()}}  # fmt: skip


def repo_page(repo: str, endpoint: str = HF) -> str:
    """The repository's page, where a gated repo's licence is accepted."""
    return f"{endpoint.rstrip('/')}/{repo}"
