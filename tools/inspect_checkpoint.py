"""Describe any LTX-2 model file from its header, as one JSON object on stdout.

    python tools/inspect_checkpoint.py ltx-2-19b-dev.safetensors
    python tools/inspect_checkpoint.py LTX-2.3-dev-Q4_K_M.gguf
    python tools/inspect_checkpoint.py models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized
    python tools/inspect_checkpoint.py tiny.safetensors --load

Every file kind OpenLTX loads: the single-file bundles, transformer-only files (with or
without the text connectors, any key prefix, safetensors or GGUF), split video VAE files,
audio VAE + vocoder files, text projection and connector files, latent upscalers, Gemma 3
files or folders (bf16, fp8_scaled, fp4_mixed) and LoRAs (for the transformer or for Gemma).

The report says what the file is (``kind``; ``format`` safetensors / gguf / folder), which
release (``version`` "2.0" / "2.3" and the tensors that show it, ``version_evidence``; when the
file name is a published one, ``published_as`` names its repository, folder and parts), whether
and where it carries a model config, and for each part its config with, for every value, where
it came from (``sources``): ``shape`` (read off a tensor), ``header`` (the file's config, or a
Gemma folder's config.json) or ``released default`` (the published models' value, for files
without a config).  Nothing but the headers is read.  ``--load`` also builds every part strictly
(reading the weights; quantized ones are dequantized) and reports "ok" or the error.  A file
OpenLTX cannot use prints ``{"file": ..., "error": ...}`` and exits 1; so does a failed
``--load`` or a part whose config cannot be resolved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import model_loaders` from the repo root

from model_loaders import CheckpointError, build_transformer, read_checkpoint, transformer_config  # noqa: E402
from model_loaders.aux_parts import find_parts  # noqa: E402
from model_loaders.checkpoint import COMPONENT_NAMES, tensor_version  # noqa: E402
from model_loaders.file_header import read_file_header  # noqa: E402
from model_loaders.published_files import BY_NAME, PART_NAMES  # noqa: E402
from model_loaders.transformer_config import SHAPE_SOURCES  # noqa: E402

MAX_UNROUTED = 10
NOT_LOADED = ("not loadable alone", "not supported")  # --load answers that are no failure
LORA_PAIRS = ((".lora_A.weight", ".lora_B.weight"), (".lora_down.weight", ".lora_up.weight"))
AUX = ("video_vae", "audio_vae", "vocoder")
TEXT = ("text_connectors", "text_projection")
_GEMMA_LAYER = re.compile(r"(?:^|\.)layers\.\d+\.self_attn\.q_norm\.weight$")


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    return getattr(value, "value", value)  # enums (rope_type)


def _error(err: Exception) -> str:
    return str(err) if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}"


# ------------------------------------------------------------------------------ common facts
def published_as(path: str) -> dict | None:
    """The published file of that name (repository, folder, parts), or None."""
    name = os.path.basename(path.rstrip("/")) + ("/" if os.path.isdir(path) else "")
    f = BY_NAME.get(name)
    if f is None:
        return None
    return {"name": f.name, "repo": f.repo, "folder": f.folder, "publisher": f.publisher, "community": f.community,
            "version": f.version, "holds": list(f.holds), "may_hold": list(f.maybe)}  # fmt: skip


def header_facts(h) -> dict:
    """What every safetensors / GGUF file report holds: size, format, metadata, dtypes."""
    dtypes: Counter = Counter(h.dtypes.values())
    dtype_params: Counter = Counter()
    for key, dtype in h.dtypes.items():
        dtype_params[dtype] += math.prod(h.shapes[key])
    return {
        "file": h.path,
        "size": h.file_size,
        "format": h.format,
        "has_config": bool(h.config),
        "config_source": h.config_source,
        "metadata_keys": sorted(h.metadata),
        "tensors": len(h.shapes),
        "dtypes": dict(sorted(dtypes.items())),
        "dtype_params": dict(sorted(dtype_params.items())),
    }


def _split_note(note: str) -> tuple[str, str]:
    """``"shape: to_gate_logits [2, 16]"`` -> ("shape", "to_gate_logits [2, 16]")."""
    label, _, detail = note.partition(": ")
    return label, detail


# ------------------------------------------------------------------------------ LTX parts
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


def aux_summaries(target, present) -> dict:
    """Per VAE / audio VAE / vocoder part: its resolved config, the release and each value's source."""
    from model_loaders.audio_loading import audio_vae_config, vocoder_config
    from model_loaders.video_vae_loading import video_vae_config

    resolvers = {"video_vae": video_vae_config, "audio_vae": audio_vae_config, "vocoder": vocoder_config}
    out = {}
    for name in AUX:
        if name not in present:
            continue
        try:
            r = resolvers[name](target)
        except CheckpointError as err:
            out[name] = {"error": str(err)}
            continue
        out[name] = {"version": r.version, "had_header": r.had_header, "config": r.config, "sources": r.sources}
    return out


def text_summary(path: str) -> dict:
    """The text projection / connectors the file holds, their config and each value's source."""
    from model_loaders.text_loading import text_parts_report

    try:
        report = text_parts_report(path)
    except CheckpointError as err:
        return {"error": str(err)}
    notes = report.pop("sources")
    report["sources"] = {k: _split_note(v)[0] for k, v in notes.items()}
    report["evidence"] = {k: d for k, v in notes.items() if (d := _split_note(v)[1])}
    return report


def _components(h, info) -> dict:
    """Component name -> {keys, params}: the checkpoint's routing, else the split files' parts."""
    if info is not None:
        return {name: {"keys": len(keys), "params": info.num_params(name)} for name, keys in info.components.items()}
    out = {}
    for name, part in find_parts(h.shapes).items():
        keys = list(part.keys.values())
        out[name] = {"keys": len(keys), "params": sum(math.prod(h.shapes[k]) for k in keys)}
    return {n: out[n] for n in COMPONENT_NAMES if n in out}


def _parts_version(parts: dict, text: dict | None) -> tuple[str | None, list[str]]:
    """The release the VAE / vocoder / text parts show (for files without a transformer)."""
    found: dict[str, list[str]] = {}
    for name, p in parts.items():
        if p.get("version"):
            found.setdefault(p["version"], []).append(f"{PART_NAMES[name]} of the released LTX-{p['version']} layout")
    if text and text.get("projection"):
        v = "2.3" if text["projection"]["kind"].startswith("2.3") else "2.0"
        found.setdefault(v, []).append(f"{text['projection']['kind']} text projection")
    if text and text.get("connectors"):
        v = "2.3" if text["connectors"]["video"]["gated"] else "2.0"
        found.setdefault(v, []).append("gated text connectors" if v == "2.3" else "ungated text connectors")
    if len(found) > 1:
        return "mixed", [f"LTX-{v}: {', '.join(e)}" for v, e in sorted(found.items())]
    if found:
        (v, evidence), = found.items()
        return v, evidence
    return None, []


def _ltx_kind(info, components: dict) -> str:
    if info is not None and info.kind != "components":
        return info.kind
    names = [PART_NAMES[n] for n in COMPONENT_NAMES if n in components]
    return " + ".join(names)


def describe_ltx(h) -> tuple[dict, object]:
    """A file of LTX weights: a bundle, a transformer (with or without connectors), split parts."""
    info = None
    parts_here = find_parts(h.shapes)
    try:
        info = read_checkpoint(h.path)
    except CheckpointError:
        if not parts_here:
            raise
    components = _components(h, info)
    out = {**header_facts(h), "kind": _ltx_kind(info, components), "family": "ltx2"}
    out["components"] = components
    out["total_params"] = sum(c["params"] for c in components.values())
    out["config_sections"] = sorted(h.config or {})
    if info is not None:
        out.update(version=info.version, version_evidence=info.version_evidence, model_version=info.model_version)
        if "transformer" in info.components:
            out["transformer"] = transformer_summary(info)
        if info.unrouted:
            out["unrouted_keys"] = len(info.unrouted)
            out["unrouted_first"] = info.unrouted[:MAX_UNROUTED]
    parts = aux_summaries(info if info is not None else h.path, parts_here)
    if parts:
        out["parts"] = parts
    text = text_summary(h.path) if set(components) & set(TEXT) else None
    if text is not None:
        out["text"] = text
    if info is None or "transformer" not in info.components:  # the parts tell the release, not a transformer
        version, evidence = _parts_version(parts, text)
        if version is not None or info is None or not info.version_evidence:
            out["version"], out["version_evidence"] = version, evidence
        out["model_version"] = h.metadata.get("model_version")
    return out, info


# ------------------------------------------------------------------------------ other kinds
def _lora_modules(keys) -> dict[str, tuple[str, str]]:
    modules = {}
    for key in keys:
        for down, up in LORA_PAIRS:
            if key.endswith(down):
                modules[key[: -len(down)]] = (key, key[: -len(down)] + up)
    return modules


def describe_lora(h) -> dict:
    """A LoRA for the LTX transformer or for Gemma 3: its targets, rank and the release it fits."""
    from model_loaders.gemma_lora import parameter_name

    modules = _lora_modules(h.shapes)
    transformer = any("transformer_blocks." in m for m in modules)
    ranks = sorted({h.shapes[down][0] for down, _ in modules.values() if len(h.shapes[down]) == 2})
    out = {**header_facts(h), "kind": "transformer LoRA" if transformer else "Gemma LoRA"}
    lora = {"modules": len(modules), "ranks": ranks, "alpha": any(k.endswith(".alpha") for k in h.shapes)}
    if transformer:
        bare = [m.split("diffusion_model.", 1)[-1] + ".weight" for m in modules]
        version, evidence = tensor_version(bare)
        if version is None or evidence == ["transformer without LTX-2.3 features"]:  # it may just not adapt them
            version, evidence = None, ["the LoRA adapts no layer only one release has (2.0 and 2.3 share the widths)"]
        widths = {h.shapes[modules[m][0]][1] for m in modules if m.endswith("attn1.to_q") and "audio" not in m}
        lora.update(target="LTX-2 transformer", video_width=sorted(widths),
                    reference_downscale_factor=h.metadata.get("reference_downscale_factor"))  # fmt: skip
    else:
        text = {m for m in modules if parameter_name(m) is not None}
        q = [h.shapes[modules[m][0]][1] for m in text if m.endswith("self_attn.q_proj")]
        lora.update(target="Gemma 3 text encoder", text_modules=len(text), other_modules=len(modules) - len(text),
                    hidden_size=max(q) if q else None)  # fmt: skip
        version, evidence = None, ["a Gemma LoRA serves LTX-2 and LTX-2.3 alike"]
    out.update(version=version, version_evidence=evidence, lora=lora)
    return out


def describe_upscaler(h) -> dict:
    from model_loaders.upsampler_loading import upsampler_config_sources

    r = upsampler_config_sources(h.path)
    out = {**header_facts(h), "kind": "latent upscaler", "version": None,
           "version_evidence": ["the tensors do not tell the LTX-2 and LTX-2.3 upscalers apart"]}  # fmt: skip
    out["upscaler"] = {"config": r.config, "sources": r.sources}
    return out


def _gemma_quantization(formats: dict) -> str:
    if formats.get("nvfp4"):
        return "fp4_mixed (NVFP4" + (" + fp8 layers)" if formats.get("fp8") else ")")
    return "fp8_scaled" if formats.get("fp8") else "dense"


def describe_gemma(path: str, h=None) -> dict:
    """A Gemma 3 text encoder file or Hugging Face folder (and any LTX text parts in it)."""
    from model_loaders.gemma_loading import inspect_gemma

    source = inspect_gemma(path)
    if h is not None:
        out = header_facts(h)
    else:
        files = source.files
        out = {"file": path, "size": sum(os.path.getsize(f) for f in files), "format": "folder",
               "has_config": os.path.isfile(os.path.join(path, "config.json")),
               "config_source": "config.json" if os.path.isfile(os.path.join(path, "config.json")) else None,
               "files": [os.path.basename(f) for f in files]}  # fmt: skip
    c = source.config
    out.update(kind="Gemma 3 text encoder", version=None,
               version_evidence=["Gemma 3 12B is the text encoder of LTX-2 and LTX-2.3 alike"])  # fmt: skip
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "intermediate_size", "vocab_size", "rope_theta", "sliding_window", "rms_norm_eps")  # fmt: skip
    out["gemma"] = {
        "config": {k: c.get(k) for k in keys},
        "sources": {k: source.sources.get(k) for k in keys},
        "hidden_states": source.num_hidden_states,
        "quantization": _gemma_quantization(source.formats),
        "weights": source.formats,
        "tokenizer": "embedded (spiece_model)" if source.embedded_tokenizer else source.tokenizer,
    }
    if h is not None and any("text_embedding_projection." in k for k in h.shapes):
        out["text"] = text_summary(path)
    return out


def classify(path: str):
    """("gemma-folder", None) for a folder, else (kind, header) from the tensor names."""
    if os.path.isdir(path):
        return "gemma", None
    h = read_file_header(path)
    keys = h.shapes
    if any(k.endswith(pair) for k in keys for pair, _ in LORA_PAIRS):
        return "lora", h
    if "initial_conv.weight" in keys and any(k.startswith("res_blocks.") for k in keys):
        return "upscaler", h
    if any(_GEMMA_LAYER.search(k) and "transformer_blocks" not in k for k in keys):
        return "gemma", h
    return "ltx", h


def describe(path: str):
    """(report, CheckpointInfo or None, kind) for any file OpenLTX reads."""
    kind, h = classify(path)
    if kind == "ltx":
        out, info = describe_ltx(h)
        return out, info, kind
    report = {"lora": describe_lora, "upscaler": describe_upscaler}.get(kind)
    out = report(h) if report else describe_gemma(path, h)
    return out, None, kind


# ------------------------------------------------------------------------------ --load
def _builders() -> dict:
    """Part name -> strict builder taking a CheckpointInfo or a path."""
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


def _try(build) -> str:
    try:
        build()
        return "ok"
    except Exception as err:  # report anything: a broken load must not hide the others
        return _error(err)


def load_components(target, names) -> dict:
    """Build every part strictly: "ok" | the error | why it cannot load alone."""
    report = {}
    builders = _builders()
    for name in names:
        build = builders.get(name)
        if build is None:
            report[name] = "not supported yet"
        elif name in TEXT and not set(TEXT) <= set(names):  # e.g. a transformer file with its connectors
            other = (set(TEXT) - {name}).pop()
            verb = "are" if other == "text_connectors" else "is"
            report[name] = f"not loadable alone: the {PART_NAMES[other]} {verb} in another file"
        else:
            report[name] = _try(lambda: build(target))
    return report


def _load_gemma(path: str) -> str:
    import torch

    from model_loaders.gemma_loading import build_gemma_model, check_keys, inspect_gemma, read_weights
    from model_loaders.gemma_tokenizer import load_tokenizer
    from model_loaders.safetensors_file import load_tensors

    def build():
        source = inspect_gemma(path)
        model = build_gemma_model(source)
        check_keys(source, model)
        for weight in read_weights(source, list(source.tensors), torch.float32).values():
            weight.materialize("cpu", torch.float32)  # dequantizes fp8 / NVFP4 layers
        if source.tokenizer is not None:
            load_tokenizer(source.tokenizer)
        else:  # ComfyUI's single files carry the SentencePiece model as a uint8 tensor
            file, key = source.embedded_tokenizer
            blob = load_tensors(file, [key])[key].numpy().tobytes()
            load_tokenizer(blob, source=f"{file} [{key}]")

    return _try(build)


def _load_lora(path: str, h) -> str:
    from model_loaders.gemma_lora import inspect_gemma_lora, parameter_name, read_gemma_lora
    from model_loaders.lora_file import read_lora

    modules = _lora_modules(h.shapes)
    if any("transformer_blocks." in m for m in modules):
        return _try(lambda: read_lora(path))
    # a Gemma LoRA: names and pairs checked against Gemma 3's text model, shapes against themselves
    shapes = {}
    for m, (down, up) in modules.items():
        if (target := parameter_name(m)) is not None:
            shapes[target + ".weight"] = (h.shapes[up][0], h.shapes[down][1])
    return _try(lambda: read_gemma_lora(inspect_gemma_lora(path, shapes.get)))


def load_report(path: str, kind: str, out: dict, info) -> dict:
    if kind == "ltx":
        report = load_components(info if info is not None else path, list(out["components"]))
        if "unknown" in out.get("text", {}).get("evidence", {}).get("text_hidden_size", ""):
            for name in set(TEXT) & set(report):  # both parts here, but the projection's inputs need the Gemma
                if report[name].startswith(NOT_LOADED):
                    continue
                report[name] = ("not loadable alone: the text projection's input width is not Gemma 3 12B's; the "
                                "Gemma file it runs with gives it")  # fmt: skip
        return report
    if kind == "upscaler":
        from model_loaders.upsampler_loading import load_upsampler

        return {"upscaler": _try(lambda: load_upsampler(path))}
    if kind == "lora":
        return {"lora": _load_lora(path, read_file_header(path))}
    report = {"gemma": _load_gemma(path)}
    if "text" in out:
        report["text_projection"] = "not loadable alone: the text connectors are in another file"
    return report


def _has_errors(out: dict) -> bool:
    parts = [out.get("transformer", {}), out.get("text", {}), *out.get("parts", {}).values()]
    return any("error" in p for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="an LTX-2 .safetensors / .gguf file, a Gemma file or folder, a LoRA, an upscaler")
    parser.add_argument("--load", action="store_true", help="also build every part strictly (reads the weights)")
    args = parser.parse_args(argv)
    path = os.fspath(args.file)
    try:
        out, info, kind = describe(path)
    except (CheckpointError, OSError) as err:
        print(json.dumps({"file": path, "error": str(err)}))
        return 1
    out["published_as"] = published_as(path)
    ok = not _has_errors(out)
    if args.load:
        out["load"] = load_report(path, kind, out, info)
        ok = ok and all(v == "ok" or v.startswith(NOT_LOADED) for v in out["load"].values())
    print(json.dumps(out, default=_jsonable))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
