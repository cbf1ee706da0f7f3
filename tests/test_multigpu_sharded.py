"""The sequence- / CFG-parallel forward equals the single-process forward (fp32, 1e-5 relative).

Ranks are real processes (``torch.multiprocessing`` spawn) talking over ``torch.distributed``
with the gloo backend on the CPU, 2 and 4 of them, on a tiny transformer with 4 heads per
attention.  Every case runs the full model in each rank as the reference and the sharded
forward (``parallel.sharded``) with one plan; the token counts (18 video, 9 audio, 24 with an
appended keyframe) are not multiples of 2 or 4, so padding and its masks are always in play,
and batch 3 splits unevenly over CFG groups (with 4 groups one group has no item).

Cases: joint audio+video, video only, audio only, an appended keyframe with an
attention-strength mask and per-token timesteps, STG / modality isolation on some items,
STG on every item (the value-only path), LTX-2.0 and LTX-2.3 (gated attention, prompt AdaLN), LTX-2.5
(the learned keyframe marker on latent frame 0 and an appended keyframe: the mask is sharded with the tokens).
Plus unit checks of the plan, the block kernel and the log-sum-exp merge.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

import multigpu_cases as M
from openltx.ltx2 import attention_backends as AB
from openltx.parallel import attention as PA
from openltx.parallel.plan import ParallelPlan, choose, padded

TOL = 1e-5
TIMEOUT = 600

CASES = {
    2: [
        ("2.0", "av", (1, 2, 1)), ("2.0", "av", (1, 1, 2)), ("2.0", "av", (2, 1, 1)),
        ("2.0", "video_only", (1, 2, 1)), ("2.0", "audio_only", (1, 1, 2)),
        ("2.0", "keyframes", (1, 2, 1)), ("2.0", "keyframes", (1, 1, 2)),
        ("2.0", "stg", (2, 1, 1)), ("2.0", "stg", (1, 2, 1)), ("2.0", "stg_all", (1, 1, 2)),
        ("2.3", "av", (1, 2, 1)), ("2.3", "keyframes", (1, 1, 2)),
        ("2.5", "keyframes_25", (1, 2, 1)), ("2.5", "keyframes_25", (1, 1, 2)),
    ],
    4: [
        ("2.0", "av", (1, 4, 1)), ("2.0", "av", (1, 1, 4)), ("2.0", "av", (1, 2, 2)),
        ("2.0", "av", (2, 2, 1)), ("2.0", "av", (4, 1, 1)),
        ("2.0", "video_only", (1, 1, 4)),
        ("2.0", "keyframes", (1, 4, 1)), ("2.0", "keyframes", (1, 2, 2)), ("2.0", "keyframes", (2, 1, 2)),
        ("2.0", "stg", (2, 2, 1)), ("2.0", "stg", (1, 1, 4)),
        ("2.3", "av", (2, 1, 2)), ("2.3", "stg", (1, 4, 1)),
    ],
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(world: int, cases) -> dict:
    """Spawn ``world`` gloo ranks running ``cases``; the per-case errors of every rank."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=M.run_cases, args=(r, world, port, cases, queue), daemon=True) for r in range(world)]
    for p in procs:
        p.start()
    results = {}
    try:
        for _ in procs:
            rank, out = queue.get(timeout=TIMEOUT)
            results[rank] = out
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return results


@pytest.fixture(scope="module")
def worlds():
    return {}


def key(case) -> str:
    version, name, degrees = case
    return f"{version}/{name}/{ParallelPlan(*degrees).describe()}"


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_forward_equals_single_process(world, worlds):
    results = worlds.setdefault(world, run_world(world, CASES[world]))
    assert sorted(results) == list(range(world))
    failures = []
    for case in CASES[world]:
        for rank, out in results.items():
            entry = out[key(case)]
            if "error" in entry:
                failures.append(f"rank {rank} {key(case)}:\n{entry['error']}")
                continue
            for stream in ("video", "audio"):
                if entry[stream] > TOL:
                    failures.append(f"rank {rank} {key(case)} {stream}: relative error {entry[stream]:.3g} > {TOL}")
    assert not failures, "\n".join(failures)
    # The exchanges really happened: Ulysses plans moved bytes by all-to-all, ring plans by P2P.
    for case in CASES[world]:
        plan = ParallelPlan(*case[2])
        stats = results[0][key(case)]["stats"]
        assert (stats.get("all_to_all_bytes", 0) > 0) == (plan.ulysses > 1), key(case)
        assert (stats.get("ring_bytes", 0) > 0) == (plan.ring > 1), key(case)


# ----------------------------------------------------------------------------- plan
def test_automatic_plan():
    assert choose(4, batch=2, heads=(32, 32)) == ParallelPlan(cfg=2, ulysses=2, ring=1)
    assert choose(4, batch=1, heads=(32, 32)) == ParallelPlan(cfg=1, ulysses=4, ring=1)
    assert choose(4, batch=4, heads=(32, 32)) == ParallelPlan(cfg=4, ulysses=1, ring=1)
    assert choose(8, batch=1, heads=(32, 32), gpus_per_node=4) == ParallelPlan(cfg=1, ulysses=4, ring=2)
    assert choose(6, batch=1, heads=(32, 32)) == ParallelPlan(cfg=1, ulysses=2, ring=3)  # 3 does not divide 32
    assert choose(4, batch=3, heads=(2, 2)) == ParallelPlan(cfg=2, ulysses=2, ring=1)
    assert choose(4, batch=1, heads=(32,), ring=2) == ParallelPlan(cfg=1, ulysses=2, ring=2)
    assert choose(4, batch=4, heads=(32,), ulysses=4) == ParallelPlan(cfg=1, ulysses=4, ring=1)
    assert padded(18, 4) == 20 and padded(20, 4) == 20


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cfg": 3}, "cfg degree 3 does not divide the 4 workers"),
        ({"ulysses": 3}, "does not divide"),
        ({"cfg": 1, "ulysses": 2, "ring": 1}, "make cfg x ulysses x ring equal the worker count"),
        ({"cfg": 1, "ulysses": 4}, r"ulysses degree 4 must divide the attention head counts \[2\]"),
        ({"ring": -1}, "must be 0 \\(automatic\\) or positive"),
    ],
)
def test_plan_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose(4, batch=1, heads=(2, 2), **kwargs)


# ----------------------------------------------------------------------------- block kernel
def test_block_kernel_and_merge_against_whole_attention():
    """Two key blocks attended separately and merged equal one attention over all keys,
    also when a row's first block is fully masked (where yunchang's merge cancels)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 8, generator=g)
    k, v = torch.randn(2, 3, 12, 8, generator=g), torch.randn(2, 3, 12, 8, generator=g)
    bias = torch.log(torch.rand(2, 1, 5, 12, generator=g).clamp(min=0.05))
    bias[0, :, 1, :6] = torch.finfo(torch.float32).min  # row 1 of item 0: first block fully masked
    ref = AB.reference_attention(q, k, v, bias)
    out = lse = None
    for cols in (slice(0, 6), slice(6, 12)):
        block = PA.attention_lse(q, k[:, :, cols], v[:, :, cols], bias[..., cols], chunk=2)
        out, lse = PA.merge(out, lse, *block)
    got = out.transpose(1, 2).flatten(2)
    assert ((got - ref).norm() / ref.norm()).item() < 1e-6
    whole = PA.attention_lse(q, k, v, bias)[1]
    assert torch.allclose(lse, whole, atol=1e-5)


def test_kernel_without_role_is_refused():
    kernel = PA.SequenceParallelAttention(None, AB.sdpa_attention, {})
    with pytest.raises(RuntimeError, match="needs the attention's role"):
        kernel(None, None, None, None)
    assert AB.for_role(kernel, "video_text") is AB.sdpa_attention
    assert AB.for_role(AB.sdpa_attention, "video_self") is AB.sdpa_attention  # plain kernels ignore roles
