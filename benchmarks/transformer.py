"""Seconds per transformer forward: OpenLTX vs its peers on the same weights and inputs.

Prints ONE JSON line: config, token counts, our seconds per forward (and the first call's
seconds, i.e. the compile warm-up with ``--compile``), each peer's seconds and its output's
relative difference from ours, FLOPs per forward and, on CUDA, peak memory and the fraction
of the GPU's dense bf16 peak (MFU).  Options select the variant of OUR model measured:

    --attention NAME   an ``ltx2.attention_backends`` kernel (auto, sdpa, sdpa_cudnn, sdpa_flash,
                       sdpa_efficient, sdpa_math, sage); default auto
    --compile          regional torch.compile of the block (``--compile-mode``)
    --quant FMT        our Linears in fp8 / int8 (W8A8 kernels where the GPU has them),
                       fp8_upcast / int8_upcast (weight-only), Q8_0 / Q4_K (GGUF, with
                       ``--gguf-cache-gb``); the error is then reported against our bf16 output
    --peers LIST       ltx-core, diffusers, comfyui (``--comfyui PATH`` to a current ComfyUI),
                       or none; a peer whose package is missing is reported as skipped
    --profile          the top kernels of one forward of ours and their share of the time

Matrix mode: ``--attention`` and ``--quant`` take comma lists (every kernel on the first format,
every further format with the first kernel; ``--compile-quant`` adds compiled runs).  The model
and the peers are built once; the JSON line then holds a ``variants`` list.

    python benchmarks/transformer.py                                 # mid-size CPU config (fp32)
    python benchmarks/transformer.py --preset 19b --device cuda --dtype bf16 --peers ltx-core,diffusers

The peers share our weight tensors (meta-device models loaded with ``assign=True``), so the
19B preset needs ~38 GB of GPU memory for bf16 plus the quantized copy of ours with --quant.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ltx2 import attention_backends as AB  # noqa: E402
from ltx2 import positions as P  # noqa: E402
from common import DTYPES, SMALL_MID_PRESETS, fill_random_, preset_header, timed  # noqa: E402,F401  (fill_random_: re-exported)
from ltx2.config import TransformerConfig  # noqa: E402
from ltx2.inputs import StreamInput  # noqa: E402
from ltx2.ops import TorchOps  # noqa: E402
from ltx2.transformer import CompileOptions, LTXAVTransformer  # noqa: E402

PRESETS = {
    **SMALL_MID_PRESETS,
    # the real 19B shapes at the reference resolution: 768x512x121 → 6,144 video tokens
    "19b": dict(header={}, frames=121, width=768, height=512, text=1024),
    # 19B shapes at stage-2 size of the distilled pipeline: 1536x1024x121 → 24,576 tokens
    "19b-hd": dict(header={}, frames=121, width=1536, height=1024, text=1024),
}

DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}
QUANT_FORMATS = ("none", "fp8", "fp8_upcast", "int8", "int8_upcast", "Q8_0", "Q4_K")


def make_inputs(cfg: TransformerConfig, frames, width, height, text, dtype, device, seed=1, batch=1):
    g = torch.Generator(device=device).manual_seed(seed)
    f, h, w = (frames - 1) // 8 + 1, height // 32, width // 32
    ta = P.audio_latent_steps(frames, 24.0)
    sig = torch.full((batch,), 0.7, device=device)
    cv = cfg.caption_channels if cfg.has_caption_projection else cfg.video_dim
    ca = cfg.caption_channels if cfg.has_caption_projection else cfg.audio_dim
    rnd = lambda *s: torch.randn(*s, generator=g, device=device).to(dtype)  # noqa: E731
    video = StreamInput(rnd(batch, f * h * w, cfg.in_channels), sig[:, None].expand(batch, f * h * w).clone(), sig,
                        P.video_positions(batch, f, h, w, 24.0, device=device), rnd(batch, text, cv))
    audio = StreamInput(rnd(batch, ta, cfg.audio_in_channels), sig[:, None].expand(batch, ta).clone(), sig,
                        P.audio_positions(batch, ta, device=device), rnd(batch, text, ca))
    return video, audio


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def rel_err(a, b) -> float:
    return max(((x.float() - y.float()).norm() / y.float().norm()).item() for x, y in zip(a, b))


def quantize_ours_(model: LTXAVTransformer, fmt: str) -> None:
    """Our Linears (all but Lightricks' bf16 list) to ``fmt``, on their device, one at a time."""
    from model_loaders.quant import fp8 as fp8_mod
    from quant import quantize_linear  # benchmarks/quant.py

    base = {"fp8_upcast": "fp8", "int8_upcast": "int8"}.get(fmt, fmt)
    fast = model.config.num_layers >= 48  # 19B GGUF: random valid bytes (speed does not depend on values)
    for name, module in model.named_modules():
        if hasattr(module, "gguf_qtype") and not fp8_mod.keep_high_precision(name):
            quantize_linear(module, base, fast)


def top_kernels(fn, device: str, n: int = 15) -> list[dict]:
    """The ``n`` ops/kernels with the most self time in one call of ``fn``, with their share."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    events = prof.key_averages()
    attr = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    if device.startswith("cuda") and not hasattr(events[0], attr):
        attr = "self_cuda_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    rows = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:n]
    return [{"name": e.key[:120], "ms": round(getattr(e, attr) / 1e3, 3), "share": round(getattr(e, attr) / total, 4),
             "calls": e.count} for e in rows]


def versions() -> dict:
    out = {"torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        out["openltx_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception:
        out["openltx_commit"] = None
    for pkg in ("triton", "sageattention", "torchao"):
        try:
            from importlib.metadata import version

            out[pkg] = version(pkg)
        except Exception:
            pass
    return out


def _dense_linears(model) -> dict:
    """Our quantizable Linears and their dense weights (to restore after a quantized variant)."""
    from model_loaders.quant import fp8 as fp8_mod

    return {m: m.weight for name, m in model.named_modules()
            if hasattr(m, "gguf_qtype") and not fp8_mod.keep_high_precision(name)}


def _restore_dense_(linears: dict) -> None:
    for m, weight in linears.items():
        m.weight, m.weight_scale, m.input_scale, m.gguf_qtype, m.gguf_shape = weight, None, None, None, None


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="batch items per forward (guidance passes batched)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--layers", type=int, default=0, help="override the preset's block count")
    ap.add_argument("--peers", default="ltx-core", help="comma list of ltx-core, diffusers, comfyui, or none")
    ap.add_argument("--comfyui", default=None, help="path to a current ComfyUI tree (the comfyui peer)")
    ap.add_argument("--attention", default="auto",
                    help=f"kernel(s), comma list of {', '.join(AB.BACKENDS)}")
    ap.add_argument("--compile", action="store_true", help="regional torch.compile of our transformer block")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: inductor default)")
    ap.add_argument("--quant", default="none", help=f"format(s), comma list of {', '.join(QUANT_FORMATS)}")
    ap.add_argument("--compile-quant", default=None,
                    help="matrix mode: also run these formats compiled (first attention only), e.g. none,fp8,int8")
    ap.add_argument("--gguf-cache-gb", type=float, default=0.0, help="GGUF dequantized-weight cache budget")
    ap.add_argument("--profile", action="store_true", help="record the top kernels of one forward per variant")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting forward")
    args = ap.parse_args(argv)
    attentions, formats = _split(args.attention), _split(args.quant)
    for a in attentions:
        AB.get(a)
    bad = [f for f in formats if f not in QUANT_FORMATS]
    if bad:
        ap.error(f"--quant {bad} not in {QUANT_FORMATS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    preset = PRESETS[args.preset]
    header = preset_header(preset["header"], args.layers)
    cfg = TransformerConfig.from_header(header)
    cuda = args.device.startswith("cuda")
    device = torch.device(args.device)

    from model_loaders.quant import matmul as qmm
    from model_loaders.quant.ops import quantized_operations

    quantized = any(f != "none" for f in formats)
    ops = quantized_operations(TorchOps, dense_dtype=dtype) if quantized else TorchOps
    ours = LTXAVTransformer(cfg, operations=ops, dtype=dtype, device=args.device).eval()
    ours.requires_grad_(False)
    fill_random_(ours, seed=0)
    state = dict(ours.state_dict())
    video, audio = make_inputs(cfg, preset["frames"], preset["width"], preset["height"], preset["text"], dtype,
                               args.device, batch=args.batch)

    def plain():
        with torch.inference_mode():
            return ours(video, audio)

    out = {
        "benchmark": "transformer_forward", "preset": args.preset,
        "config": {"layers": cfg.num_layers, "video_dim": cfg.video_dim, "audio_dim": cfg.audio_dim},
        "resolution": f"{preset['width']}x{preset['height']}x{preset['frames']}", "batch": args.batch,
        "tokens": {"video": video.latent.shape[1], "audio": audio.latent.shape[1], "text": preset["text"]},
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": args.dtype, "versions": versions(),
    }
    reference_out = plain()  # our plain path: what every variant and peer is compared to
    flops = None if args.no_flops else count_flops(plain)
    peak = None
    if cuda:
        peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in torch.cuda.get_device_name(device)), None)
    if flops is not None:
        out["tflop"] = round(flops / 1e12, 2)
        if peak:
            out["bf16_peak_tflops"] = peak / 1e12

    def mfu(seconds: float) -> float | None:
        return round(flops / seconds / peak, 3) if flops and peak else None

    # peers first, on the dense weights (they keep those tensors when ours are quantized)
    peers = {}
    for name in [p for p in _split(args.peers) if p != "none"]:
        import peers as peer_mod

        try:
            peer = peer_mod.build(name, header, cfg, state, dtype, device, args.comfyui)
        except peer_mod.PeerUnavailable as err:
            peers[name] = {"skipped": str(err)}
            continue
        except Exception as err:  # a peer's own failure must not lose the rest of the matrix
            peers[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
            continue

        def run_peer(peer=peer):
            with torch.inference_mode():
                return peer.run(video, audio)

        try:
            first = run_peer()
            entry = {"version": peer.version, "rel_err_vs_ours": rel_err(reference_out, first),
                     "rel_err_video_audio": [rel_err([a], [b]) for a, b in zip(first, reference_out)]}
            del first
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            entry["s"] = round(timed(run_peer, args.iters, args.device)[0], 4)
            entry["mfu"] = mfu(entry["s"])
            if cuda:
                entry["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            peers[name] = entry
        except Exception as err:
            peers[name] = {"version": peer.version, "error": f"{type(err).__name__}: {err}"[:500]}
        del peer
    out["peers"] = peers

    # every kernel on the first format, every further format with the first kernel
    variants = [(formats[0], a, args.compile) for a in attentions]
    variants += [(f, attentions[0], args.compile) for f in formats[1:]]
    for f in _split(args.compile_quant or ""):
        if (f, attentions[0], True) not in variants:
            variants.append((f, attentions[0], True))
    dense = _dense_linears(ours) if quantized else {}
    runs = []
    for fmt, attn, compiled in variants:
        entry = {"quant": fmt, "attention": attn, "compile": compiled}
        try:
            entry.update(_measure(ours, video, audio, reference_out, fmt, attn, compiled, args, qmm, cuda))
            entry["mfu"] = mfu(entry["s"])
            entry["vs_peers"] = {n: round(entry["s"] / p["s"], 3) for n, p in peers.items() if "s" in p}
        except Exception as err:
            entry["error"] = f"{type(err).__name__}: {err}"[:500]
        finally:
            if dense:
                _restore_dense_(dense)
            if cuda:
                torch.cuda.empty_cache()
        runs.append(entry)
    if len(runs) == 1:  # one variant: its figures at the top level, as before
        out.update(runs[0])
        out["ours_s"] = out.pop("s", None)
    else:
        out["variants"] = runs
    print(json.dumps(out))


def _measure(ours, video, audio, reference_out, fmt, attn, compiled, args, qmm, cuda) -> dict:
    """Seconds per forward of one variant of our model (quantizing its Linears for ``fmt``)."""
    if fmt != "none":
        quantize_ours_(ours, fmt)
    attention = AB.get(attn)
    compile_opts = CompileOptions(mode=args.compile_mode) if compiled else None
    settings = qmm.MatmulSettings(
        fp8="off" if fmt == "fp8_upcast" else "auto",
        int8="off" if fmt == "int8_upcast" else "auto",
        gguf_cache_bytes=int(args.gguf_cache_gb * 2**30),
    )

    def run_ours():
        with torch.inference_mode():
            return ours(video, audio, attention=attention, compile=compile_opts)

    entry = {}
    with qmm.active(settings):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        first = run_ours()  # with compile: the compile warm-up
        if cuda:
            torch.cuda.synchronize()
        entry["first_call_s"] = round(time.perf_counter() - t0, 3)
        entry["rel_err_vs_plain"] = rel_err(first, reference_out)
        del first
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        entry["s"] = round(timed(run_ours, args.iters, args.device)[0], 4)
        if cuda:
            entry["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if args.profile:
            entry["top_kernels"] = top_kernels(run_ours, args.device)
    return entry


if __name__ == "__main__":
    main()
