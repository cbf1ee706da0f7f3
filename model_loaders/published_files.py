"""The published LTX-2 / LTX-2.3 / LTX-2.5 files: name, Hub repository, ComfyUI model folder, what each holds.

One table for every place that names a published file: the loaders' messages about a missing
part ("the audio VAE is in ...: select one of those files"), ``tools/model_catalog.py`` (the
download presets: the community files come from here) and ``tools/demo.py`` (which files can
stand in for a part).  Parts are the component names of ``checkpoint.COMPONENT_NAMES``
(``transformer``, ``text_connectors``, ``text_projection``, ``video_vae``, ``audio_vae``,
``vocoder``) plus ``upscaler``, ``lora``, ``gemma`` (Gemma 3), ``gemma4`` (LTX-2.5's Gemma 4, whose file
also holds the text projection), ``duration_head`` and ``gemma_lora``.

Publishers: Lightricks (the model's authors) and Google (Gemma) publish the official files;
Comfy-Org (ComfyUI's repackaged Gemma files and templates' LoRA), Kijai (split files of the
bundles), unsloth and QuantStack (GGUF conversions and their side files) are community files.
What the community files hold is recorded in ``../shared/real_headers/community_layouts.md``
(Kijai's 2.3 transformer-only files carry the text connectors, his 2.3 projection file and
unsloth's ``*_embeddings_connectors`` file only the text projection, his 2.0 connector file
the projection and the connectors).  ``maybe`` lists parts some uploads of a file embed and
others do not (the text connectors of GGUF conversions): a loader reads the file to know.

Standard library only: ``tools/model_catalog.py`` loads this file by path, without importing
the ``model_loaders`` package (which needs torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

BUNDLE = ("transformer", "text_connectors", "text_projection", "video_vae", "audio_vae", "vocoder")
OFFICIAL_PUBLISHERS = ("Lightricks", "google")  # as the Hub spells the organisations
RELEASE_NAMES = {"2.0": "LTX-2 (19B)", "2.3": "LTX-2.3 (22B)", "2.5": "LTX-2.5 (22B)"}
PART_NAMES = {
    "transformer": "transformer",
    "text_connectors": "text connectors",
    "text_projection": "text projection",
    "video_vae": "video VAE",
    "audio_vae": "audio VAE",
    "vocoder": "vocoder",
    "upscaler": "latent upscaler",
    "lora": "LoRA",
    "gemma": "Gemma 3 12B text encoder",
    "gemma4": "Gemma 4 12B text encoder",
    "duration_head": "duration head",
    "gemma_lora": "Gemma LoRA",
}


@dataclass(frozen=True)
class PublishedFile:
    """One published file: ``repo`` / ``path`` on the Hub -> ``models/<folder>/<name>``.

    ``version``: "2.0" / "2.3" / "2.5" (``None``: used by 2.0 and 2.3, Gemma 3); ``variant``: "dev" / "distilled"
    where the weights differ between them (``None``: shared); ``holds``: the parts always in
    the file; ``maybe``: parts only some uploads embed.
    """

    repo: str
    path: str
    folder: str
    holds: tuple[str, ...]
    version: str | None = None
    variant: str | None = None
    maybe: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The name in the model folder; a Hugging Face folder ends with "/" (as OpenLTX's loader lists it)."""
        return PurePosixPath(self.path).name + ("/" if self.path.endswith("/") else "")

    @property
    def publisher(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def community(self) -> bool:
        return self.publisher not in OFFICIAL_PUBLISHERS

    def where(self) -> str:
        return f"{self.name} ({self.repo}, models/{self.folder})"


def _f(repo, path, folder, holds, version=None, variant=None, maybe=()) -> PublishedFile:
    return PublishedFile(repo, path, folder, tuple(holds), version, variant, tuple(maybe))


_TRANSFORMER_ONLY_23 = ("transformer", "text_connectors")
_LTX25 = "Lightricks/LTX-2.5"  # gated; keeps ComfyUI's folder layout (<folder>/<name>)
_AUDIO = ("audio_vae", "vocoder")

FILES: tuple[PublishedFile, ...] = (
    # --- Lightricks: the single-file bundles, LoRAs and upscalers
    *(_f("Lightricks/LTX-2", f"ltx-2-19b-{v}{q}.safetensors", "checkpoints", BUNDLE, "2.0", v)
      for v in ("dev", "distilled") for q in ("", "-fp8")),
    _f("Lightricks/LTX-2", "ltx-2-19b-distilled-lora-384.safetensors", "loras", ("lora",), "2.0", "distilled"),
    _f("Lightricks/LTX-2", "ltx-2-spatial-upscaler-x2-1.0.safetensors", "latent_upscale_models", ("upscaler",), "2.0"),
    _f("Lightricks/LTX-2", "ltx-2-temporal-upscaler-x2-1.0.safetensors", "latent_upscale_models", ("upscaler",), "2.0"),
    # the LTX-2 IC-LoRAs (reference-video control), one repository each
    *(_f(f"Lightricks/LTX-2-19b-IC-LoRA-{repo}", f"ltx-2-19b-ic-lora-{kind}.safetensors", "loras", ("lora",), "2.0")
      for kind, repo in (("canny-control", "Canny-Control"), ("depth-control", "Depth-Control"),
                         ("pose-control", "Pose-Control"), ("detailer", "Detailer"))),
    _f("Lightricks/LTX-2.3", "ltx-2.3-22b-dev.safetensors", "checkpoints", BUNDLE, "2.3", "dev"),
    _f("Lightricks/LTX-2.3", "ltx-2.3-22b-distilled-1.1.safetensors", "checkpoints", BUNDLE, "2.3", "distilled"),
    _f("Lightricks/LTX-2.3-fp8", "ltx-2.3-22b-dev-fp8.safetensors", "checkpoints", BUNDLE, "2.3", "dev"),
    _f("Lightricks/LTX-2.3-fp8", "ltx-2.3-22b-distilled-fp8.safetensors", "checkpoints", BUNDLE, "2.3", "distilled"),
    _f("Lightricks/LTX-2.3", "ltx-2.3-22b-distilled-lora-384-1.1.safetensors", "loras", ("lora",), "2.3", "distilled"),
    *(_f("Lightricks/LTX-2.3", f"ltx-2.3-{n}.safetensors", "latent_upscale_models", ("upscaler",), "2.3")
      for n in ("spatial-upscaler-x2-1.1", "spatial-upscaler-x1.5-1.0", "temporal-upscaler-x2-1.0")),
    # the LTX-2.3 union-control IC-LoRA (canny / depth / pose; its reference at half size: "ref0.5")
    _f("Lightricks/LTX-2.3-22b-IC-LoRA-Union-Control", "ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors", "loras",
       ("lora",), "2.3"),
    # --- Lightricks/LTX-2.5: split files only (../shared/real_headers/README.md): the transformer with its text
    # connectors (bf16, comfy-int8-convrot, nvfp4), Gemma 4 with the text projection and its tokenizer, the two
    # video VAEs (DiffVAE and conv) and the audio VAE + vocoder, the duration head, the LoRA and the upscalers
    *(_f(_LTX25, f"diffusion_models/ltx-2.5-22b-{v}-transformer-{q}.safetensors", "diffusion_models",
         _TRANSFORMER_ONLY_23, "2.5", v) for v in ("dev", "distilled") for q in ("bf16", "comfy-int8-convrot")),
    _f(_LTX25, "diffusion_models/ltx-2.5-22b-distilled-transformer-nvfp4.safetensors", "diffusion_models",
       _TRANSFORMER_ONLY_23, "2.5", "distilled"),
    *(_f(_LTX25, f"text_encoders/gemma4-12b-with-proj-ltx-2.5-{q}.safetensors", "text_encoders",
         ("gemma4", "text_projection"), "2.5") for q in ("bf16", "comfy-int8-convrot")),
    *(_f(_LTX25, f"vae/ltx-2.5-video-vae{k}-bf16.safetensors", "vae", ("video_vae",), "2.5") for k in ("", "-conv")),
    _f(_LTX25, "vae/ltx-2.5-audio-vae-bf16.safetensors", "vae", _AUDIO, "2.5"),
    _f(_LTX25, "model_patches/ltx-2.5-duration-head-bf16.safetensors", "model_patches", ("duration_head",), "2.5"),
    _f(_LTX25, "loras/ltx-2.5-22b-distilled-lora-450-bf16.safetensors", "loras", ("lora",), "2.5", "distilled"),
    *(_f(_LTX25, f"latent_upscale_models/ltx-2.5-latent-{k}-upscaler-x2-bf16-1.0.safetensors", "latent_upscale_models",
         ("upscaler",), "2.5") for k in ("spatial", "temporal")),
    # --- Google: Gemma 3 12B as a Hugging Face folder (listed as "<folder>/")
    _f("google/gemma-3-12b-it-qat-q4_0-unquantized", "gemma-3-12b-it-qat-q4_0-unquantized/", "text_encoders",
       ("gemma",)),
    # --- Comfy-Org/ltx-2: Gemma as one file (tokenizer inside), and the Gemma LoRA of their templates
    *(_f("Comfy-Org/ltx-2", f"split_files/text_encoders/{n}", "text_encoders", ("gemma",))
      for n in ("gemma_3_12B_it.safetensors", "gemma_3_12B_it_fp8_scaled.safetensors",
                "gemma_3_12B_it_fp4_mixed.safetensors")),
    _f("Comfy-Org/ltx-2", "split_files/loras/gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors", "loras",
       ("gemma_lora",)),
    # --- Comfy-Org/ltx-2.3: the ID-LoRA of their LTX-2.3 ID-LoRA template
    _f("Comfy-Org/ltx-2.3", "split_files/loras/ltx-2.3-id-lora-talkvid-3k.safetensors", "loras", ("lora",), "2.3"),
    # --- Kijai/LTXV2_comfy: LTX-2 split into transformer, VAEs and the text side
    *(_f("Kijai/LTXV2_comfy", f"diffusion_models/ltx-2-19b-{v}_transformer_only_bf16.safetensors", "diffusion_models",
         ("transformer",), "2.0", v) for v in ("dev", "distilled")),
    _f("Kijai/LTXV2_comfy", "VAE/LTX2_video_vae_bf16.safetensors", "vae", ("video_vae",), "2.0"),
    _f("Kijai/LTXV2_comfy", "VAE/LTX2_audio_vae_bf16.safetensors", "vae", _AUDIO, "2.0"),
    *(_f("Kijai/LTXV2_comfy", f"text_encoders/ltx-2-19b-embeddings_connector_{n}_bf16.safetensors", "text_encoders",
         ("text_projection", "text_connectors"), "2.0", v) for v, n in (("dev", "dev"), ("distilled", "distill"))),
    # --- Kijai/LTX2.3_comfy: the transformer with its text connectors, VAEs, the projection alone
    *(_f("Kijai/LTX2.3_comfy", f"diffusion_models/ltx-2.3-22b-{n}_transformer_only_bf16.safetensors",
         "diffusion_models", _TRANSFORMER_ONLY_23, "2.3", v)
      for v, n in (("dev", "dev"), ("distilled", "distilled-1.1"))),
    _f("Kijai/LTX2.3_comfy", "vae/LTX23_video_vae_bf16.safetensors", "vae", ("video_vae",), "2.3"),
    _f("Kijai/LTX2.3_comfy", "vae/LTX23_audio_vae_bf16.safetensors", "vae", _AUDIO, "2.3"),
    _f("Kijai/LTX2.3_comfy", "text_encoders/ltx-2.3_text_projection_bf16.safetensors", "text_encoders",
       ("text_projection",), "2.3"),
    # --- GGUF conversions (transformer; the 2.3 ones may embed the text connectors) and unsloth's side files
    _f("unsloth/LTX-2-GGUF", "ltx-2-19b-dev-Q4_K_M.gguf", "diffusion_models", ("transformer",), "2.0", "dev"),
    _f("unsloth/LTX-2.3-GGUF", "ltx-2.3-22b-dev-Q4_K_M.gguf", "diffusion_models", ("transformer",), "2.3", "dev",
       ("text_connectors",)),
    _f("unsloth/LTX-2.3-GGUF", "distilled/ltx-2.3-22b-distilled-Q4_K_M.gguf", "diffusion_models", ("transformer",),
       "2.3", "distilled", ("text_connectors",)),
    _f("QuantStack/LTX-2.3-GGUF", "LTX-2.3-dev/LTX-2.3-dev-Q4_K_M.gguf", "diffusion_models", ("transformer",), "2.3",
       "dev", ("text_connectors",)),
    _f("QuantStack/LTX-2.3-GGUF", "LTX-2.3-distilled/LTX-2.3-distilled-Q4_K_M.gguf", "diffusion_models",
       ("transformer",), "2.3", "distilled", ("text_connectors",)),
    *(_f("unsloth/LTX-2.3-GGUF", f"vae/ltx-2.3-22b-{v}_video_vae.safetensors", "vae", ("video_vae",), "2.3")
      for v in ("dev", "distilled")),
    *(_f("unsloth/LTX-2.3-GGUF", f"vae/ltx-2.3-22b-{v}_audio_vae.safetensors", "vae", _AUDIO, "2.3")
      for v in ("dev", "distilled")),
    # despite the name, the four projection tensors (third parties measured its size)
    *(_f("unsloth/LTX-2.3-GGUF", f"text_encoders/ltx-2.3-22b-{v}_embeddings_connectors.safetensors", "text_encoders",
         ("text_projection",), "2.3", v) for v in ("dev", "distilled")),
)  # fmt: skip

BY_NAME: dict[str, PublishedFile] = {f.name: f for f in FILES}


def carriers(part: str, version: str | None = None, *, maybe: bool = False) -> list[PublishedFile]:
    """The published files that hold ``part`` (of release ``version``; None: any), table order.

    ``maybe=True`` also lists the files only some uploads of which embed the part.
    """
    return [f for f in FILES if (part in f.holds or (maybe and part in f.maybe))
            and (version is None or f.version in (None, version))]  # fmt: skip


def describe(files, note=lambda f: "") -> str:
    """``"a, b (repo, models/folder); c (repo2, models/folder2)"``: names grouped by repository, folder
    and ``note(file)`` (shown after the folder when not empty)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for f in files:
        groups.setdefault((f.repo, f.folder, note(f)), []).append(f.name)
    return "; ".join(f"{', '.join(names)} ({repo}, models/{folder}{'; ' + extra if extra else ''})"
                     for (repo, folder, extra), names in groups.items())  # fmt: skip


def where_published(parts: str | tuple[str, ...], version: str | None = None) -> str:
    """Where ``parts`` are published, per release: ``"for LTX-2 (19B): ... | for LTX-2.3 (22B): ..."``.

    With several parts, a file holding only some of them says which (``"text projection only"``).
    Files that only sometimes embed a part (GGUF conversions with text connectors) are named as
    such.  ``version`` None (or unknown): both releases.
    """
    parts = (parts,) if isinstance(parts, str) else tuple(parts)
    versions = [version] if version in RELEASE_NAMES else list(RELEASE_NAMES)

    def only(f: PublishedFile) -> str:
        has = [p for p in parts if p in f.holds]
        return "" if len(has) == len(parts) else " and ".join(PART_NAMES[p] for p in has) + " only"

    lines = []
    for v in versions:
        text = describe([f for f in FILES if f.version == v and set(parts) & set(f.holds)], only)
        for part in parts:
            sometimes = [f for f in FILES if part in f.maybe and f.version == v]
            if sometimes:
                text += f"; GGUF conversions that embed the {PART_NAMES[part]}, such as {describe(sometimes)}"
        lines.append(f"for {RELEASE_NAMES[v]}: {text}")
    return " | ".join(lines)


__all__ = ["BY_NAME", "FILES", "PART_NAMES", "PublishedFile", "carriers", "describe", "where_published"]
