"""Multi-GPU scaling: seconds per sharded forward vs rank count, traffic per forward, a GPU model.

    python benchmarks/multigpu.py                       # small preset, 1 / 2 / 4 gloo CPU ranks
    python benchmarks/multigpu.py --preset mid --ranks 1,2 --iters 2

Measured (this machine, CPU ranks over ``torch.distributed`` gloo, ``parallel.sharded``):
for every rank count and plan (Ulysses, ring, CFG parallel, the automatic choice) the seconds
per forward, the output's relative difference from the single-process forward and the bytes
each rank sent, counted inside the collectives (``SequenceParallelAttention`` counts the
all-to-all and ring traffic; the final all-gather is computed from its buffer shapes).

Modelled (no multi-GPU device here): the same traffic for the real 19B shapes, from a formula
checked against the counters above (``traffic_formula_max_rel_diff``), and the FLOPs per
forward, from a per-Linear token map measured with hooks on the small model and checked
against ``torch.utils.flop_counter`` (``flop_formula_rel_diff``).  Seconds per forward on N
GPUs = FLOPs / N / (peak x MFU) + bytes per rank / link bandwidth, with no overlap of
communication and compute (an upper bound on the communication cost; ring steps do overlap in
``parallel.attention``).  Peak and MFU default to the H200 bf16 figures of
``results/transformer_19b_h200.json`` (989 TFLOP/s dense, MFU 0.48 for one 19B forward); the
link bandwidths are stated assumptions (``LINKS``), not measurements.

Prints ONE JSON line.  CPU timings: every process (the single-process baseline too) runs ``--threads``
threads (default 1); more ranks than cores measure time-sharing, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# The sharded forward imports the pack with relative imports: register it as a bare package
# ("openltx") the way the Ray workers do, without ComfyUI.
sys.path.insert(0, str(ROOT / "parallel"))
from bootstrap import register_pack  # noqa: E402  (standard library only)

sys.path.pop(0)
register_pack("openltx", str(ROOT))

from common import SMALL_MID_PRESETS, fill_random_  # noqa: E402
from openltx.ltx2 import positions as P  # noqa: E402
from openltx.ltx2.config import TransformerConfig, official_19b_header  # noqa: E402
from openltx.ltx2.inputs import StreamInput  # noqa: E402
from openltx.ltx2.transformer import LTXAVTransformer  # noqa: E402
from openltx.parallel.plan import ParallelPlan, choose, padded  # noqa: E402

PRESETS = SMALL_MID_PRESETS

# Assumed achievable per-GPU bandwidth of the exchanges (bytes/s, one direction), not measured here.
LINKS = {
    "nvlink4_sxm": 360e9,  # H100 / H200 SXM: NVLink 4 is 450 GB/s per direction; ~80% reached by NCCL all-to-all
    "pcie5_x16": 40e9,  # GPUs with peer-to-peer over PCIe 5.0 x16 (64 GB/s raw)
    "pcie4_x16": 20e9,  # PCIe 4.0 x16 (32 GB/s raw), e.g. 2-4 workstation cards
    "pcie4_no_p2p": 10e9,  # consumer cards without peer-to-peer: staged through host memory
    "ib_ndr_400g": 45e9,  # across machines: one 400 Gb/s InfiniBand NIC per GPU
    "ethernet_100g": 11e9,  # across machines: 100 GbE shared by the machine's GPUs
}
H200_PEAK_BF16 = 989e12
H200_MFU_19B = 0.48  # results/transformer_19b_h200.json: 198.8 TFLOP in 0.418 s

# Attention modules whose keys are sharded (they exchange tokens): name -> (query stream, key stream).
SHARDED_ATTENTIONS = {
    "attn1": ("video", "video"),
    "audio_attn1": ("audio", "audio"),
    "audio_to_video_attn": ("video", "audio"),
    "video_to_audio_attn": ("audio", "video"),
}
# Text cross-attentions: local queries, the replicated prompt as keys.
TEXT_ATTENTIONS = {"attn2": "video", "audio_attn2": "audio"}


# ----------------------------------------------------------------------------- the model and its inputs
def preset_header(overrides: dict) -> dict:
    """The official 19B ``config.transformer`` with a preset's overrides (as ``common.preset_header``,
    imported through the ``openltx`` package so the ranks and this process share one ``ltx2``)."""
    return {**official_19b_header(), **overrides}


def build(header: dict, dtype=torch.float32, device="cpu", seed: int = 0) -> LTXAVTransformer:
    cfg = TransformerConfig.from_header(header, source="benchmark")
    model = LTXAVTransformer(cfg, dtype=dtype, device=device).eval().requires_grad_(False)
    if device != "meta":
        fill_random_(model, seed)
    return model


def make_inputs(cfg: TransformerConfig, frames: int, width: int, height: int, text: int, batch: int, seed: int = 1):
    """Joint video + audio inputs of one model call (``batch`` guidance passes, per-sample sigma)."""
    g = torch.Generator().manual_seed(seed)
    f, h, w = (frames - 1) // 8 + 1, height // 32, width // 32
    tv, ta = f * h * w, P.audio_latent_steps(frames, 24.0)
    sig = torch.linspace(0.9, 0.3, batch)
    cv = cfg.caption_channels if cfg.has_caption_projection else cfg.video_dim
    ca = cfg.caption_channels if cfg.has_caption_projection else cfg.audio_dim
    video = StreamInput(torch.randn(batch, tv, cfg.in_channels, generator=g), sig[:, None].expand(batch, tv).clone(),
                        sig, P.video_positions(batch, f, h, w, 24.0), torch.randn(batch, text, cv, generator=g))
    audio = StreamInput(torch.randn(batch, ta, cfg.audio_in_channels, generator=g),
                        sig[:, None].expand(batch, ta).clone(), sig, P.audio_positions(batch, ta),
                        torch.randn(batch, text, ca, generator=g))
    return video, audio


def tokens_of(frames: int, width: int, height: int) -> tuple[int, int]:
    return ((frames - 1) // 8 + 1) * (height // 32) * (width // 32), P.audio_latent_steps(frames, 24.0)


def heads_of(cfg: TransformerConfig) -> tuple[int, ...]:
    return tuple(h for h, on in ((cfg.num_attention_heads, cfg.has_video), (cfg.audio_num_attention_heads, cfg.has_audio)) if on)


# ----------------------------------------------------------------------------- traffic formula
def inner_widths(model: LTXAVTransformer) -> dict[str, int]:
    """Width of q (= heads x head dim) of each sharded attention, from block 0's weights."""
    block = model.transformer_blocks[0]
    return {name: getattr(block, name).to_q.weight.shape[0] for name in SHARDED_ATTENTIONS}


def traffic(widths: dict, layers: int, out_channels: dict, tokens: dict, batch: int, plan: ParallelPlan,
            elem: int) -> dict:
    """Bytes one rank sends in one forward (no perturbations), by kind.

    Per block and sharded attention, with ``n`` = padded tokens / sp and ``w`` its q width:
    Ulysses moves (u-1)/u of q, k, v and the output: ``(u-1)/u * b * w * (2 n_q + 2 n_k)``; the
    ring passes k and v of the Ulysses span (``b * w * n_k`` each) on ``r - 1`` steps.  The
    final all-gather sends this rank's ``(b, n, C)`` output to the ``world - 1`` others.
    """
    b = -(-batch // plan.cfg)
    n = {s: padded(t, plan.sp) // plan.sp for s, t in tokens.items()}
    a2a = ring = 0.0
    if plan.sp > 1:
        for name, (qs, ks) in SHARDED_ATTENTIONS.items():
            w = widths[name]
            a2a += (plan.ulysses - 1) / plan.ulysses * b * w * (2 * n[qs] + 2 * n[ks]) * elem
            ring += (plan.ring - 1) * 2 * b * w * n[ks] * elem
    gather = sum((plan.world - 1) * b * n[s] * out_channels[s] * elem for s in tokens)
    return {"all_to_all": a2a * layers, "ring": ring * layers, "gather": gather}


# ----------------------------------------------------------------------------- FLOP formula
def linear_rows(model: LTXAVTransformer, video, audio) -> dict[str, str]:
    """Which token count feeds each Linear (``video`` / ``audio`` / ``text`` / ``sample``), measured
    with forward hooks on one call whose counts differ (block ``i`` names as block 0)."""
    batch = video.latent.shape[0]
    counts = {"video": video.latent.shape[1] * batch, "audio": audio.latent.shape[1] * batch,
              "text": video.context.shape[1] * batch, "sample": batch}
    if len(set(counts.values())) != len(counts):
        raise ValueError(f"token counts must differ to tell the Linears apart: {counts}")
    by_count = {v: k for k, v in counts.items()}
    seen: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            key = _block_zero(name)

            def hook(mod, args, _out, key=key):
                rows = args[0].numel() // mod.in_features
                if rows not in by_count:
                    raise ValueError(f"{key}: {rows} rows match no token count {counts}")
                seen[key] = by_count[rows]

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(video, audio)
    finally:
        for h in handles:
            h.remove()
    return seen


def _block_zero(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "transformer_blocks":
        parts[1] = "0"
    return ".".join(parts)


def flops(model: LTXAVTransformer, rows: dict[str, str], tokens: dict, text: int, batch: int) -> float:
    """FLOPs of one forward: 2 x in x out per Linear row, 4 x w per query-key pair of each attention."""
    count = {"video": tokens["video"], "audio": tokens["audio"], "text": text, "sample": 1}
    total = 0.0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            total += 2 * module.in_features * module.out_features * count[rows[_block_zero(name)]]
    block = model.transformer_blocks[0]
    per_block = 0.0
    for name, (qs, ks) in SHARDED_ATTENTIONS.items():
        per_block += 4 * getattr(block, name).to_q.weight.shape[0] * tokens[qs] * tokens[ks]
    for name, qs in TEXT_ATTENTIONS.items():
        per_block += 4 * getattr(block, name).to_q.weight.shape[0] * tokens[qs] * text
    return batch * (total + per_block * len(model.transformer_blocks))


# ----------------------------------------------------------------------------- the ranks
def _rank(rank: int, world: int, port: int, job: dict, results) -> None:
    """One gloo rank: every plan of ``job``; rank 0 puts timings and outputs into ``results``."""
    import torch.distributed as dist

    from openltx.parallel.mesh import forget_meshes
    from openltx.parallel.sharded import sharded_forward

    torch.set_num_threads(job["threads"])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = []
    try:
        model = build(job["header"])
        video, audio = make_inputs(model.config, *job["shape"], job["batch"])
        for degrees in job["plans"]:
            plan = ParallelPlan(*degrees)
            stats: dict = {}
            with torch.inference_mode():
                got = sharded_forward(model, video, audio, plan=plan, stats=stats)  # warm-up (and groups)
                seconds = []
                for _ in range(job["iters"]):
                    stats.clear()
                    dist.barrier()
                    start = time.perf_counter()
                    got = sharded_forward(model, video, audio, plan=plan, stats=stats)
                    dist.barrier()
                    seconds.append(time.perf_counter() - start)
            sent = [None] * world
            dist.all_gather_object(sent, {k: stats.get(k, 0) for k in ("all_to_all_bytes", "ring_bytes")})
            if rank == 0:
                out.append({"plan": degrees, "seconds": sorted(seconds)[len(seconds) // 2], "sent": sent,
                            "video": got[0].numpy().copy(), "audio": got[1].numpy().copy()})  # by value
    except Exception:
        out = {"error": traceback.format_exc()}
    finally:
        dist.destroy_process_group()
        forget_meshes()
    if rank == 0:
        results.put(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(world: int, job: dict) -> list:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, world, job["port"], job, queue)) for r in range(world)]
    for p in procs:
        p.start()
    try:
        result = queue.get(timeout=job["timeout"])
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    if isinstance(result, dict):
        raise RuntimeError(f"rank 0 of {world} failed:\n{result['error']}")
    return result


def plans_for(world: int, batch: int, heads: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Ulysses only, ring only, CFG only (when the batch allows) and the automatic choice."""
    common = math.gcd(*heads)
    plans = []
    if common % world == 0:
        plans.append((1, world, 1))
    plans.append((1, 1, world))
    if batch >= world:
        plans.append((world, 1, 1))
    auto = choose(world, batch, heads)
    auto = (auto.cfg, auto.ulysses, auto.ring)
    if auto not in plans:
        plans.append(auto)
    return plans


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# ----------------------------------------------------------------------------- the GPU model
def gpu_model(widths: dict, rows: dict, cfg19: TransformerConfig, model19, link_names: list[str], peak: float,
              mfu: float, ranks: list[int]) -> list[dict]:
    """Modelled seconds per forward of the 19B transformer (bf16) on N GPUs, per link."""
    cases = [("768x512x121", 121, 768, 512, 1), ("768x512x121", 121, 768, 512, 4),
             ("1920x1088x241", 241, 1920, 1088, 1), ("1920x1088x241", 241, 1920, 1088, 4)]
    out = []
    channels = {"video": cfg19.out_channels, "audio": cfg19.audio_out_channels}
    for label, frames, width, height, batch in cases:
        tv, ta = tokens_of(frames, width, height)
        tokens = {"video": tv, "audio": ta}
        work = flops(model19, rows, tokens, 1024, batch)
        one = work / (peak * mfu)
        row = {"resolution": label, "batch": batch, "tokens": tokens, "tflop": round(work / 1e12, 1),
               "one_gpu_s": round(one, 3), "gpus": []}
        for n in ranks:
            if n == 1:
                continue
            plan = choose(n, batch, heads_of(cfg19))
            padded_tokens = {s: padded(t, plan.sp) for s, t in tokens.items()}
            per_rank = flops(model19, rows, padded_tokens, 1024, -(-batch // plan.cfg)) / plan.sp
            sent = traffic(widths, cfg19.num_layers, channels, tokens, batch, plan, 2)
            total = sum(sent.values())
            compute = per_rank / (peak * mfu)
            links = {}
            for link in link_names:
                seconds = compute + total / LINKS[link]
                links[link] = {"s": round(seconds, 3), "speedup": round(one / seconds, 2)}
            row["gpus"].append({"n": n, "plan": plan.describe(), "sent_gb_per_rank": round(total / 1e9, 3),
                                "compute_s": round(compute, 3), "links": links})
        out.append(row)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--ranks", default="1,2,4", help="comma list of rank counts (gloo CPU processes)")
    ap.add_argument("--batch", type=int, default=2, help="guidance passes batched into one call (CFG: 2)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--links", default=",".join(LINKS), help=f"modelled links, of {', '.join(LINKS)}")
    ap.add_argument("--peak-tflops", type=float, default=H200_PEAK_BF16 / 1e12)
    ap.add_argument("--mfu", type=float, default=H200_MFU_19B)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per process, the single-process baseline included (several threads per rank "
                    "on shared cores make OpenMP spin: the timings then measure contention)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per rank count")
    args = ap.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",") if r.strip()]
    links = [x.strip() for x in args.links.split(",") if x.strip()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    preset = PRESETS[args.preset]
    header = preset_header(preset["header"])
    shape = (preset["frames"], preset["width"], preset["height"], preset["text"])
    torch.set_num_threads(args.threads)
    model = build(header)
    cfg = model.config
    video, audio = make_inputs(cfg, *shape, args.batch)
    tokens = {"video": video.latent.shape[1], "audio": audio.latent.shape[1]}
    with torch.inference_mode():
        ref = model(video, audio)  # also the warm-up
        seconds = []
        for _ in range(args.iters):
            start = time.perf_counter()
            model(video, audio)
            seconds.append(time.perf_counter() - start)
        single = sorted(seconds)[len(seconds) // 2]  # the median, as the ranks report
    # The FLOP formula, calibrated (token map) on batch 1 and checked on this call.
    rows = linear_rows(model, *make_inputs(cfg, *shape, 1))
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(video, audio)
    counted = float(counter.get_total_flops())
    formula = flops(model, rows, tokens, shape[3], args.batch)
    widths = inner_widths(model)
    channels = {"video": cfg.out_channels, "audio": cfg.audio_out_channels}

    measured = [{"ranks": 1, "plan": "single process", "seconds": round(single, 4)}]
    worst = 0.0
    for world in ranks:
        if world == 1:
            continue
        job = dict(header=header, shape=shape, batch=args.batch, iters=args.iters, threads=args.threads, port=free_port(),
                   timeout=args.timeout, plans=plans_for(world, args.batch, heads_of(cfg)))
        for item in run_world(world, job):
            plan = ParallelPlan(*item["plan"])
            counted_sent = {"all_to_all": max(s["all_to_all_bytes"] for s in item["sent"]),
                            "ring": max(s["ring_bytes"] for s in item["sent"])}
            predicted = traffic(widths, cfg.num_layers, channels, tokens, args.batch, plan, 4)
            for kind in ("all_to_all", "ring"):
                if predicted[kind] or counted_sent[kind]:
                    worst = max(worst, abs(counted_sent[kind] - predicted[kind]) / max(predicted[kind], 1.0))
            measured.append({
                "ranks": world, "plan": plan.describe(), "seconds": round(item["seconds"], 4),
                "speedup": round(single / item["seconds"], 3),
                "rel_err": max(rel(torch.from_numpy(item["video"]), ref[0]), rel(torch.from_numpy(item["audio"]), ref[1])),
                "sent_bytes_per_rank": {**counted_sent, "gather": int(predicted["gather"])},
            })

    model19 = build(preset_header({}), dtype=torch.bfloat16, device="meta")
    recorded = ROOT / "benchmarks" / "results" / "transformer_19b_h200.json"
    check19 = None
    if recorded.exists():  # torch's flop counter on the H200 run vs this formula at the same shape
        rec = json.loads(recorded.read_text())
        tv, ta = rec["tokens"]["video"], rec["tokens"]["audio"]
        mine = flops(model19, rows, {"video": tv, "audio": ta}, rec["tokens"]["text"], 1) / 1e12
        check19 = {"recorded_tflop": rec["tflop_ours"], "formula_tflop": round(mine, 2)}
    ranks_model = sorted(set(ranks) | {2, 4, 8})
    print(json.dumps({
        "benchmark": "multigpu_scaling",
        "preset": args.preset,
        "config": {"layers": cfg.num_layers, "video_dim": cfg.video_dim, "audio_dim": cfg.audio_dim,
                   "heads": heads_of(cfg)},
        "resolution": f"{shape[1]}x{shape[2]}x{shape[0]}", "batch": args.batch, "tokens": tokens,
        "dtype": "fp32", "device": f"cpu ({cores} cores, {args.threads} thread(s) per process), gloo", "torch": torch.__version__,
        "measured": measured,
        "traffic_formula_max_rel_diff": worst,
        "flops": {"counted": counted, "formula": formula, "flop_formula_rel_diff": abs(formula - counted) / counted,
                  "19b_768x512x121": check19},
        "gpu_model": {
            "model": "19B transformer, bf16, batch = guidance passes in one call, text 1024 tokens",
            "assumptions": {"peak_tflops": args.peak_tflops, "mfu": args.mfu, "overlap": "none",
                            "link_bytes_per_s": {k: LINKS[k] for k in links}},
            "cases": gpu_model(inner_widths(model19), rows, model19.config, model19, links, args.peak_tflops * 1e12,
                               args.mfu, ranks_model),
        },
    }))


if __name__ == "__main__":
    main()
