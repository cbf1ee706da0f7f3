"""Describe an LTX-2 checkpoint from its header, as one JSON object on stdout.

    python tools/inspect_checkpoint.py ltx-2-19b-dev.safetensors
    python tools/inspect_checkpoint.py LTX-2.3-dev-Q4_K_S.gguf
    python tools/inspect_checkpoint.py tiny.safetensors --load
    python tools/inspect_checkpoint.py gemma4-12b-with-proj-ltx-2.5-bf16.safetensors

Reports what the file is (``format`` safetensors / gguf; ``kind`` bundle / transformer-only /
transformer + text connectors / components), the LTX version and the tensors that show it,
whether and where the file carries a model config, the components found (key and parameter
counts), tensor dtypes, and the transformer config with, for every value, where it came from:
``shape`` (read off a tensor; ``shape_tensors`` names which), ``header`` (the file's config) or
``released default`` (the published models' value, for files without a config).  Nothing but
the header is read.  ``--load`` also builds every component OpenLTX can build, strictly, and
reports "ok" or the error.  A file OpenLTX cannot use prints ``{"file": ..., "error": ...}`` and
exits 1; so does a failed ``--load`` or a transformer config that cannot be resolved.
The LTX-2.5 files that are not checkpoints (Gemma 4 text encoder, DiffVAE, duration head) are
described by ``ltx25_part``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import model_loaders` from the repo root

from model_loaders import CheckpointError, build_transformer, read_checkpoint, transformer_config  # noqa: E402
from model_loaders.transformer_config import SHAPE_SOURCES  # noqa: E402

MAX_UNROUTED = 10


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    return getattr(value, "value", value)  # enums (rope_type)


def config_values(cfg) -> dict:
    """Header-style key -> value of every config value the provenance covers."""
    values = cfg.to_header()
    return {k: _jsonable(values[k]) if k in values else _jsonable(getattr(cfg, k, None)) for k in cfg.provenance}


def transformer_summary(info) -> dict:
    try:
        cfg = transformer_config(info)
    except CheckpointError as err:
        return {"error": str(err), "key_prefix": info.transformer_prefix}
    sources = dict(cfg.provenance)
    return {
        "num_layers": cfg.num_layers,
        "video_heads": cfg.num_attention_heads,
        "video_head_dim": cfg.attention_head_dim,
        "video_dim": cfg.video_dim,
        "audio_heads": cfg.audio_num_attention_heads,
        "audio_head_dim": cfg.audio_attention_head_dim,
        "audio_dim": cfg.audio_dim,
        "in_channels": cfg.in_channels,
        "audio_in_channels": cfg.audio_in_channels,
        "caption_channels": cfg.caption_channels,
        "caption_projection": cfg.has_caption_projection,
        "gated_attention": cfg.apply_gated_attention,
        "cross_attention_adaln": cfg.cross_attention_adaln,
        "rope_type": cfg.rope_type.value,
        "key_prefix": info.transformer_prefix,
        "values": config_values(cfg),
        "sources": sources,
        "shape_tensors": {k: SHAPE_SOURCES[k] for k, v in sources.items() if v == "shape" and k in SHAPE_SOURCES},
    }


def describe(info) -> dict:
    dtypes: Counter = Counter(info.dtypes.values())
    dtype_params: Counter = Counter()
    for key, dtype in info.dtypes.items():
        dtype_params[dtype] += math.prod(info.shapes[key])
    components = {name: {"keys": len(keys), "params": info.num_params(name)} for name, keys in info.components.items()}
    out = {
        "file": info.path,
        "size": info.file_size,
        "format": info.format,
        "kind": info.kind,
        "family": info.family,
        "version": info.version,
        "version_evidence": info.version_evidence,
        "model_version": info.model_version,
        "has_config": info.has_config,
        "config_source": info.config_source,
        "metadata_keys": sorted(info.metadata),
        "components": components,
        "total_params": sum(c["params"] for c in components.values()),
        "dtypes": dict(sorted(dtypes.items())),
        "dtype_params": dict(sorted(dtype_params.items())),
        "config_sections": sorted(info.config),
    }
    if "transformer" in info.components:
        out["transformer"] = transformer_summary(info)
    if info.unrouted:
        out["unrouted_keys"] = len(info.unrouted)
        out["unrouted_first"] = info.unrouted[:MAX_UNROUTED]
    return out


def _builders() -> dict:
    """Component name -> strict builder taking the CheckpointInfo."""
    from model_loaders.audio_loading import load_audio_vae, load_vocoder
    from model_loaders.text_loading import load_text_projector
    from model_loaders.video_vae_loading import load_video_vae

    return {
        "transformer": build_transformer,
        "video_vae": load_video_vae,
        "audio_vae": load_audio_vae,
        "vocoder": load_vocoder,
        # the projection and both connectors load together, as one text projector
        "text_projection": load_text_projector,
        "text_connectors": load_text_projector,
    }


def load_components(info) -> tuple[dict, bool]:
    """Build every component strictly; ("ok" | error text | "not supported yet") per component."""
    report, ok = {}, True
    builders = _builders()
    text = {"text_projection", "text_connectors"}
    for name in info.components:
        build = builders.get(name)
        if build is None:
            report[name] = "not supported yet"
            continue
        if name in text and not text <= set(info.components):  # e.g. a transformer file with its connectors
            other = (text - {name}).pop()
            report[name] = f"not loadable alone: the {other.replace('_', ' ')} is in another file"
            continue
        try:
            build(info)
            report[name] = "ok"
        except Exception as err:  # report anything, a broken load must not hide the others
            report[name] = str(err) if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}"
            ok = False
    return report, ok


def ltx25_part(path: str, load: bool = False) -> dict | None:
    """The LTX-2.5 files that hold no LTX-2 checkpoint part: the Gemma 4 text encoder (with the text
    projection and its tokenizer), the diffusion-decoder video VAE and the duration head; ``None`` for
    any other file.  ``load`` also builds the part strictly."""
    from model_loaders.diffusion_vae_loading import diffusion_vae_config, is_diffusion_vae, load_diffusion_vae
    from model_loaders.duration_head_loading import duration_head_config, is_duration_head, load_duration_head
    from model_loaders.gemma4_loading import inspect_gemma4, is_gemma4_file, load_gemma4_projection
    from model_loaders.safetensors_file import read_header

    if not os.path.isfile(path):
        return None
    with open(path, "rb") as fh:
        if fh.read(4) == b"GGUF":
            return None
    header = read_header(path)
    out = {"file": path, "size": header.file_size, "format": "safetensors", "version": "2.5",
           "model_version": header.metadata.get("model_version"), "metadata_keys": sorted(header.metadata)}  # fmt: skip
    if is_gemma4_file(header):
        src = inspect_gemma4(path)
        out.update(kind="Gemma 4 text encoder + LTX text projection", hidden_size=src.hidden_size,
                   hidden_states=src.num_hidden_states, layers=src.text.num_hidden_layers, vocab=src.text.vocab_size,
                   int8_convrot_layers=len(src.int8), projection={k: list(v[3]) for k, v in src.projection.items()},
                   tokenizer="embedded (tokenizer_json)", not_loaded=src.ignored)  # fmt: skip
        build = lambda: load_gemma4_projection(src)  # noqa: E731 - the projector; the decoder streams at run time
    elif is_diffusion_vae(header.tensors):
        _, dec, prefix, _, _ = diffusion_vae_config(path)
        out.update(kind="video VAE with a diffusion decoder (DiffVAE)", key_prefix=prefix,
                   stage_channels=list(dec.stage_channels), stage_depths=list(dec.stage_depths),
                   head_dim=dec.head_dim, steps=dec.default_num_inference_steps)  # fmt: skip
        build = lambda: load_diffusion_vae(path)  # noqa: E731
    elif is_duration_head(header.tensors):
        kwargs, prefix, _ = duration_head_config(path)
        out.update(kind="duration head", key_prefix=prefix, **kwargs)
        build = lambda: load_duration_head(path)  # noqa: E731
    else:
        return None
    if load:
        try:
            build()
            out["load"] = "ok"
        except Exception as err:  # report, as for the checkpoint components
            out["load"] = str(err) if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a .safetensors or .gguf LTX-2 file")
    parser.add_argument("--load", action="store_true", help="also build the supported components strictly")
    args = parser.parse_args(argv)
    try:
        part = ltx25_part(os.fspath(args.file), args.load)
        if part is not None:  # an LTX-2.5 text encoder, DiffVAE or duration head
            print(json.dumps(part))
            return 0 if part.get("load", "ok") == "ok" else 1
        info = read_checkpoint(args.file)
        out = describe(info)
    except (CheckpointError, OSError) as err:
        print(json.dumps({"file": os.fspath(args.file), "error": str(err)}))
        return 1
    ok = "error" not in out.get("transformer", {})
    if args.load:
        out["load"], loaded = load_components(info)
        ok = ok and loaded
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
