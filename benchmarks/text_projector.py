"""Full-size LTX text projection (feature extractor + both connectors) vs ltx-core: one JSON line.

Proposed as benchmarks/text_projector.py (run from the repo root):
    .venv/bin/python benchmarks/text_projector.py --device cuda --dtype bf16 [--version 2.0|2.3|both]

Random weights at the released sizes (Gemma-3-12B: 49 hidden states x 3840, 1024 tokens; 2.0
connectors 2 x 30x128, 2.3 connectors 8 x 32x128 / 32x64 gated), shared by both
implementations; reports seconds per call (median of --repeat), peak memory of the call, and
the relative error of ours vs ltx-core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ltx2.config import official_19b_header  # noqa: E402
from ltx2.text_connector import TextProjector, TextProjectorConfig  # noqa: E402
from model_loaders.tiny_layouts import tiny_transformer_header  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SIZES = {"full": (3840, 49, 1024), "tiny": (12, 3, 128)}  # hidden, hidden states, tokens
HIDDEN, STATES, TOKENS = SIZES["full"]


def header(version: str) -> dict:
    if HIDDEN == SIZES["tiny"][0]:  # smoke test of this script: the tiny bundles' header
        return tiny_transformer_header(version)
    h = official_19b_header()
    if version == "2.3":
        h.update(
            apply_gated_attention=True, cross_attention_adaln=True, caption_proj_before_connector=True,
            caption_projection_first_linear=False, caption_proj_input_norm=False,
            caption_projection_second_linear=False, connector_num_layers=8, connector_num_attention_heads=32,
            connector_attention_head_dim=128, audio_connector_num_attention_heads=32,
            audio_connector_attention_head_dim=64, connector_apply_gated_attention=True,
        )  # fmt: skip
    return h


def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("learnable_registers"):
                p.uniform_(-1, 1, generator=g)
            elif p.ndim == 2:
                p.normal_(0, 1 / math.sqrt(p.shape[1]), generator=g)
            elif "norm" in name:
                p.normal_(1, 0.1, generator=g)
            else:
                p.normal_(0, 0.05, generator=g)


def reference(version: str, ours: TextProjector):
    import ltx_core.loader  # noqa: F401
    from ltx_core.text_encoders.gemma import embeddings_connector as ec
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2

    cfg, flat = ours.config, HIDDEN * STATES
    config = {"transformer": header(version)}
    with torch.device("meta"):
        if cfg.v2:
            fe = FeatureExtractorV2(
                torch.nn.Linear(flat, cfg.video_features), HIDDEN, torch.nn.Linear(flat, cfg.audio_features)
            )
        else:
            fe = FeatureExtractorV1(torch.nn.Linear(flat, cfg.video_features, bias=False), is_av=True)
        ref = EmbeddingsProcessor(
            feature_extractor=fe,
            video_connector=ec.Embeddings1DConnectorConfigurator.from_config(config),
            audio_connector=ec.AudioEmbeddings1DConnectorConfigurator.from_config(config),
        )
    ref.load_state_dict(ours.state_dict(), strict=True, assign=True)  # shares our tensors
    return ref.eval()


def timed(fn, device: str, repeat: int):
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    out = fn()  # warm-up
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if device.startswith("cuda") else None
    return out, statistics.median(times), peak


def run(version: str, device: str, dtype: torch.dtype, repeat: int, valid: int) -> dict:
    cfg = TextProjectorConfig.from_header(header(version), text_hidden_states=STATES)
    ours = TextProjector(cfg, dtype=dtype, device=device).eval()
    randomize_(ours)
    ref = reference(version, ours)
    g = torch.Generator(device=device).manual_seed(1)
    states = tuple(torch.randn(1, TOKENS, HIDDEN, generator=g, device=device, dtype=dtype) * 4 for _ in range(STATES))
    mask = torch.zeros(1, TOKENS, dtype=torch.long, device=device)
    mask[:, TOKENS - valid :] = 1
    with torch.inference_mode():
        (ov, oa), t_ours, m_ours = timed(lambda: ours(states, mask), device, repeat)
        r, t_ref, m_ref = timed(lambda: ref.process_hidden_states(states, mask, "left"), device, repeat)
    err = lambda a, b: ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()  # noqa: E731
    return {
        "version": version,
        "params_M": round(sum(p.numel() for p in ours.parameters()) / 1e6, 1),
        "ours_s": round(t_ours, 4),
        "ltx_core_s": round(t_ref, 4),
        "ours_peak_GiB": None if m_ours is None else round(m_ours, 3),
        "ltx_core_peak_GiB": None if m_ref is None else round(m_ref, 3),
        "rel_err_video": err(ov, r.video_encoding),
        "rel_err_audio": err(oa, r.audio_encoding),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--version", choices=("2.0", "2.3", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--valid-tokens", type=int, default=300)
    ap.add_argument("--size", choices=sorted(SIZES), default="full", help="tiny: a quick check of this script")
    a = ap.parse_args()
    global HIDDEN, STATES, TOKENS
    HIDDEN, STATES, TOKENS = SIZES[a.size]
    versions = ("2.0", "2.3") if a.version == "both" else (a.version,)
    results = []
    for v in versions:
        results.append(run(v, a.device, DTYPES[a.dtype], a.repeat, a.valid_tokens))
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    print(json.dumps({"benchmark": "text_projector", "size": a.size, "device": name, "dtype": a.dtype, "results": results}))


if __name__ == "__main__":
    main()
