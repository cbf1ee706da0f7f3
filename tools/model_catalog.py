"""The published LTX-2 / LTX-2.3 / LTX-2.5 model files: where each lives on the Hugging Face Hub, which
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

Community files (``COMMUNITY_PRESETS``): the split files and GGUF conversions that Kijai, unsloth
and QuantStack publish, which OpenLTX's loaders also take (a transformer-only file or a GGUF
in the checkpoint loader, the VAE files in the VAE loader, the text projection / connector
files as the text encoder loader's extra file).  They are not Lightricks' (or Google's) files,
nor are Comfy-Org's repackaged Gemma files: a preset that fetches any says so
(``"community": true`` in ``--list``).  What each published file holds, and its
repository and folder, is ``model_loaders/published_files.py`` (the table the loaders' messages
name files from); the community presets are built from it by file name.

Pure data and the standard library only: importing this module needs neither torch nor the Hub
(``published_files.py`` is loaded by its path, without the ``model_loaders`` package).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

HF = "https://huggingface.co"

LTX2_REPO = "Lightricks/LTX-2"
LTX23_REPO = "Lightricks/LTX-2.3"
LTX23_FP8_REPO = "Lightricks/LTX-2.3-fp8"
LTX25_REPO = "Lightricks/LTX-2.5"  # gated: accept the LTX-2.x community licence on its page first
COMFY_LTX2_REPO = "Comfy-Org/ltx-2"
COMFY_LTX23_REPO = "Comfy-Org/ltx-2.3"
GEMMA_REPO = "google/gemma-3-12b-it-qat-q4_0-unquantized"
GEMMA_FOLDER = "gemma-3-12b-it-qat-q4_0-unquantized"


def _load_published_files():
    """``model_loaders/published_files.py`` as a module of its own (the package would import torch)."""
    name = "openltx_published_files"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "model_loaders" / "published_files.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


published_files = _load_published_files()


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
    def community(self) -> bool:
        """Published by someone other than the model's authors (Lightricks, Google)."""
        return self.repo.split("/", 1)[0] not in published_files.OFFICIAL_PUBLISHERS

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

    @property
    def community(self) -> bool:
        """Whether it fetches community files (Comfy-Org, Kijai, unsloth, QuantStack), not Lightricks' or Google's."""
        return any(f.community for f in self.files)


def _ltx2(filename: str, folder: str) -> HubFile:
    return HubFile(LTX2_REPO, filename, folder)


def _ltx23(filename: str, folder: str, size: int | None = None) -> HubFile:
    return HubFile(LTX23_REPO, filename, folder, size)


def _comfy(filename: str, folder: str) -> HubFile:
    return HubFile(COMFY_LTX2_REPO, f"split_files/{folder}/{filename}", folder)


def _ltx25(filename: str, folder: str, size: int | None = None) -> HubFile:
    """A file of Lightricks/LTX-2.5, whose repo keeps ComfyUI's folder layout (``<folder>/<name>``)."""
    return HubFile(LTX25_REPO, f"{folder}/{filename}", folder, size)


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
    Preset("ltx-2.3-ic-lora-union-control", "LTX-2.3 22B IC-LoRA union control (canny / depth / pose), reference "
           "at half size (loras/)",
           (HubFile("Lightricks/LTX-2.3-22b-IC-LoRA-Union-Control", "ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors",
                    "loras"),)),
    Preset("ltx-2.3-id-lora", "LTX-2.3 ID-LoRA (TalkVid, 3k steps): speaker identity from a reference voice, as "
           "ComfyUI's LTX-2.3 ID-LoRA template loads it (loras/)",
           (HubFile(COMFY_LTX23_REPO, "split_files/loras/ltx-2.3-id-lora-talkvid-3k.safetensors", "loras"),)),
    # LTX-2.5 22B (Lightricks/LTX-2.5): split files (transformer + text connectors; Gemma 4 with the text
    # projection and its tokenizer; video / audio VAEs; duration head; LoRA; upscalers).
    Preset("ltx-2.5-dev", "LTX-2.5 22B dev transformer + text connectors, bf16 (diffusion_models/)",
           (_ltx25("ltx-2.5-22b-dev-transformer-bf16.safetensors", "diffusion_models", 42_018_190_584),)),
    Preset("ltx-2.5-distilled", "LTX-2.5 22B distilled transformer + text connectors, bf16 (diffusion_models/)",
           (_ltx25("ltx-2.5-22b-distilled-transformer-bf16.safetensors", "diffusion_models", 42_018_190_584),)),
    Preset("ltx-2.5-dev-int8", "LTX-2.5 22B dev transformer, comfy-int8-convrot (diffusion_models/)",
           (_ltx25("ltx-2.5-22b-dev-transformer-comfy-int8-convrot.safetensors", "diffusion_models", 21_504_034_224),)),
    Preset("ltx-2.5-distilled-int8", "LTX-2.5 22B distilled transformer, comfy-int8-convrot, as the Comfy-Org "
           "LTX-2.5 templates use it (diffusion_models/)",
           (_ltx25("ltx-2.5-22b-distilled-transformer-comfy-int8-convrot.safetensors", "diffusion_models",
                   21_504_034_224),)),
    Preset("ltx-2.5-distilled-nvfp4", "LTX-2.5 22B distilled transformer, NVFP4 (diffusion_models/)",
           (_ltx25("ltx-2.5-22b-distilled-transformer-nvfp4.safetensors", "diffusion_models"),)),
    Preset("ltx-2.5-gemma4-bf16", "Gemma 4 12B + the LTX-2.5 text projection, bf16, tokenizer inside (text_encoders/)",
           (_ltx25("gemma4-12b-with-proj-ltx-2.5-bf16.safetensors", "text_encoders", 26_263_860_594),)),
    Preset("ltx-2.5-gemma4-int8", "Gemma 4 12B + the LTX-2.5 text projection, comfy-int8-convrot (text_encoders/)",
           (_ltx25("gemma4-12b-with-proj-ltx-2.5-comfy-int8-convrot.safetensors", "text_encoders", 15_372_971_786),)),
    Preset("ltx-2.5-vae", "LTX-2.5 video VAE (diffusion decoder), its conv variant and the audio VAE + vocoder (vae/)",
           (_ltx25("ltx-2.5-video-vae-bf16.safetensors", "vae"),
            _ltx25("ltx-2.5-video-vae-conv-bf16.safetensors", "vae"),
            _ltx25("ltx-2.5-audio-vae-bf16.safetensors", "vae"))),
    Preset("ltx-2.5-duration-head", "LTX-2.5 duration head: the clip length from the prompt (model_patches/)",
           (_ltx25("ltx-2.5-duration-head-bf16.safetensors", "model_patches"),)),
    Preset("ltx-2.5-distilled-lora", "LTX-2.5 22B distilled LoRA, rank 450 (loras/)",
           (_ltx25("ltx-2.5-22b-distilled-lora-450-bf16.safetensors", "loras", 8_899_889_568),)),
    Preset("ltx-2.5-upscalers", "LTX-2.5 latent upscalers: spatial x2 and temporal x2 (latent_upscale_models/)",
           (_ltx25("ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors", "latent_upscale_models"),
            _ltx25("ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors", "latent_upscale_models"))),
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


def _community(name: str, description: str, *files: str) -> Preset:
    """A preset of community files, by their names in ``published_files`` (repo, path and folder from there)."""
    hub = []
    for file in files:
        f = published_files.BY_NAME[file]
        hub.append(HubFile(f.repo, f.path, f.folder))
    repos = ", ".join(dict.fromkeys(f.repo for f in hub))
    return Preset(name, f"community files ({repos}): {description}", tuple(hub))


_K20_VAE = ("LTX2_video_vae_bf16.safetensors", "LTX2_audio_vae_bf16.safetensors")
_K23_VAE = ("LTX23_video_vae_bf16.safetensors", "LTX23_audio_vae_bf16.safetensors")
COMMUNITY_PRESETS = (
    # LTX-2 19B as Kijai splits it: transformer alone (diffusion_models/), the two VAE files (vae/), the text
    # projection + connectors (text_encoders/, the text encoder loader's extra_file)
    _community("ltx-2-dev-transformer-only", "LTX-2 19B dev transformer, bf16 (diffusion_models/)",
               "ltx-2-19b-dev_transformer_only_bf16.safetensors"),
    _community("ltx-2-distilled-transformer-only", "LTX-2 19B distilled transformer, bf16 (diffusion_models/)",
               "ltx-2-19b-distilled_transformer_only_bf16.safetensors"),
    _community("ltx-2-vae-split", "LTX-2 video VAE and audio VAE + vocoder as two files (vae/)", *_K20_VAE),
    _community("ltx-2-dev-text-connectors", "LTX-2 19B dev text projection + connectors (text_encoders/)",
               "ltx-2-19b-embeddings_connector_dev_bf16.safetensors"),
    _community("ltx-2-distilled-text-connectors", "LTX-2 19B distilled text projection + connectors (text_encoders/)",
               "ltx-2-19b-embeddings_connector_distill_bf16.safetensors"),
    _community("ltx-2-dev-split", "LTX-2 19B dev as split files: transformer, VAEs, text projection + connectors",
               "ltx-2-19b-dev_transformer_only_bf16.safetensors", *_K20_VAE,
               "ltx-2-19b-embeddings_connector_dev_bf16.safetensors"),
    _community("ltx-2-dev-gguf", "LTX-2 19B dev transformer, GGUF Q4_K_M (diffusion_models/; the VAEs and text "
               "connectors come from ltx-2-vae-split and ltx-2-dev-text-connectors)", "ltx-2-19b-dev-Q4_K_M.gguf"),
    # LTX-2.3 22B as Kijai splits it: transformer with its text connectors, the two VAE files, the projection alone
    _community("ltx-2.3-dev-transformer-only", "LTX-2.3 22B dev transformer with its text connectors, bf16 "
               "(diffusion_models/)", "ltx-2.3-22b-dev_transformer_only_bf16.safetensors"),
    _community("ltx-2.3-distilled-transformer-only", "LTX-2.3 22B distilled 1.1 transformer with its text connectors, "
               "bf16 (diffusion_models/)", "ltx-2.3-22b-distilled-1.1_transformer_only_bf16.safetensors"),
    _community("ltx-2.3-vae-split", "LTX-2.3 video VAE and audio VAE + vocoder as two files (vae/)", *_K23_VAE),
    _community("ltx-2.3-text-projection", "LTX-2.3 text projection (text_encoders/)",
               "ltx-2.3_text_projection_bf16.safetensors"),
    _community("ltx-2.3-dev-split", "LTX-2.3 22B dev as split files: transformer with text connectors, VAEs, text "
               "projection", "ltx-2.3-22b-dev_transformer_only_bf16.safetensors", *_K23_VAE,
               "ltx-2.3_text_projection_bf16.safetensors"),
    # LTX-2.3 GGUF conversions; unsloth's come with a VAE pair and the text projection of their own
    _community("ltx-2.3-dev-gguf", "LTX-2.3 22B dev transformer, GGUF Q4_K_M (diffusion_models/), its video VAE, "
               "audio VAE and text projection (vae/, text_encoders/)", "ltx-2.3-22b-dev-Q4_K_M.gguf",
               "ltx-2.3-22b-dev_video_vae.safetensors", "ltx-2.3-22b-dev_audio_vae.safetensors",
               "ltx-2.3-22b-dev_embeddings_connectors.safetensors"),
    _community("ltx-2.3-distilled-gguf", "LTX-2.3 22B distilled transformer, GGUF Q4_K_M (diffusion_models/), its "
               "video VAE, audio VAE and text projection (vae/, text_encoders/)", "ltx-2.3-22b-distilled-Q4_K_M.gguf",
               "ltx-2.3-22b-distilled_video_vae.safetensors", "ltx-2.3-22b-distilled_audio_vae.safetensors",
               "ltx-2.3-22b-distilled_embeddings_connectors.safetensors"),
    _community("ltx-2.3-dev-gguf-quantstack", "LTX-2.3 22B dev transformer, GGUF Q4_K_M (diffusion_models/)",
               "LTX-2.3-dev-Q4_K_M.gguf"),
    _community("ltx-2.3-distilled-gguf-quantstack", "LTX-2.3 22B distilled transformer, GGUF Q4_K_M "
               "(diffusion_models/)", "LTX-2.3-distilled-Q4_K_M.gguf"),
)  # fmt: skip


LTX25_WORKFLOW_FILES = (
    "ltx-2.5-22b-distilled-transformer-comfy-int8-convrot.safetensors",
    "ltx-2.5-22b-distilled-transformer-bf16.safetensors",
    "gemma4-12b-with-proj-ltx-2.5-comfy-int8-convrot.safetensors", "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "ltx-2.5-video-vae-bf16.safetensors", "ltx-2.5-audio-vae-bf16.safetensors",
    "ltx-2.5-latent-spatial-upscaler-x2-bf16-1.0.safetensors", "ltx-2.5-duration-head-bf16.safetensors",
)  # fmt: skip


def _workflows_preset() -> Preset:
    by_name = {f.name: f for p in _PRESETS for f in p.files}
    names = ("ltx-2-19b-dev.safetensors", "ltx-2-19b-distilled.safetensors", "ltx-2-19b-distilled-lora-384.safetensors",
             "ltx-2-spatial-upscaler-x2-1.0.safetensors", "ltx-2.3-22b-dev.safetensors",
             "ltx-2.3-22b-distilled-1.1.safetensors", "ltx-2.3-22b-distilled-lora-384-1.1.safetensors",
             "ltx-2.3-spatial-upscaler-x2-1.1.safetensors", "ltx-2.3-id-lora-talkvid-3k.safetensors",
             # video-to-video, IC-LoRA control and temporal upscale (LTX-2.0)
             "ltx-2-19b-ic-lora-canny-control.safetensors", "ltx-2-19b-ic-lora-pose-control.safetensors",
             "ltx-2-19b-ic-lora-detailer.safetensors", "ltx-2-temporal-upscaler-x2-1.0.safetensors",
             "ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors",  # IC-LoRA control (LTX-2.3)
             *LTX25_WORKFLOW_FILES)  # fmt: skip
    return Preset("workflows", "Every file the shipped workflows (workflows/*.json) name: LTX-2 19B and LTX-2.3 22B dev "
                  "and distilled, their distilled LoRAs and spatial x2 upscalers, the LTX-2 temporal x2 upscaler, the "
                  "LTX-2 canny / pose / detailer IC-LoRAs, the LTX-2.3 union-control IC-LoRA and ID-LoRA, Google's "
                  "Gemma 3 folder and the LTX-2.5 files of the ltx2_5_* workflows",
                  tuple(by_name[n] for n in names) + GEMMA_FILES)  # fmt: skip


def _workflows_25_preset() -> Preset:
    by_name = {f.name: f for p in _PRESETS for f in p.files}
    return Preset("workflows-2.5", "Every file the LTX-2.5 workflows (workflows/ltx2_5_*.json) name: the distilled "
                  "transformer (int8 ConvRot and bf16), Gemma 4 (int8 ConvRot and bf16), the video and audio VAEs, the "
                  "spatial x2 upscaler and the duration head (Lightricks/LTX-2.5, gated)",
                  tuple(by_name[n] for n in LTX25_WORKFLOW_FILES))  # fmt: skip


PRESETS: dict[str, Preset] = {p.name: p for p in (*_PRESETS, *COMMUNITY_PRESETS, _workflows_preset(),
                                                  _workflows_25_preset())}

# Every published file by its name in the model folder, and Google's folder by "<name>/" (the
# way OpenLTX's text-encoder loader lists a Hugging Face folder).
FILES: dict[str, HubFile] = {f.name: f for p in PRESETS.values() for f in p.files if f.repo != GEMMA_REPO}
FOLDERS: dict[str, tuple[HubFile, ...]] = {f"{GEMMA_FOLDER}/": GEMMA_FILES}


def preset_for(name: str) -> str:
    """The smallest preset that downloads a published file (``name`` as in FILES or FOLDERS)."""
    wanted = {f.name for f in FOLDERS[name]} if name in FOLDERS else {name}
    repo = FOLDERS[name][0].repo if name in FOLDERS else FILES[name].repo
    fits = [p for p in PRESETS.values() if wanted <= {f.name for f in p.files if f.repo == repo}]
    return min(fits, key=lambda p: len(p.files)).name


def listing() -> dict:
    """What ``download_models.py --list`` prints: ``{"presets": {name: {description, files}}}``."""
    return {"presets": {p.name: {"description": p.description, "files": [f.as_listed() for f in p.files],
                                 "community": p.community} for p in PRESETS.values()}}  # fmt: skip


def repo_page(repo: str, endpoint: str = HF) -> str:
    """The repository's page, where a gated repo's licence is accepted."""
    return f"{endpoint.rstrip('/')}/{repo}"
