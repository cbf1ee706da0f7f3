"""How a world of ranks is split: CFG degree x Ulysses degree x ring degree.

``choose`` picks the degrees for one model call (automatic, or checks the user's overrides):

1. **CFG** first: the largest divisor of the world size that is at most the call's batch (the
   guidance passes batched into it).  Its ranks exchange nothing during the forward.
2. The rest is **sequence parallel**: ``sp = world / cfg`` ranks per CFG group.
3. **Ulysses** takes the largest divisor of ``sp`` that divides the head count of every
   sequence-parallel attention (video self, audio self, a2v / v2a: 32 heads each in the
   released models) and fits in one node (all-to-all wants the fast intra-node links);
   **ring** takes the rest (``sp / ulysses``): across nodes, or where heads run out.

Tokens are padded to a multiple of ``sp`` (``padded``); the padding is masked as keys and its
outputs are dropped, so any token count works, at the cost of the padded fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ParallelPlan:
    """Degrees of one call: ``cfg * ulysses * ring == world``."""

    cfg: int = 1
    ulysses: int = 1
    ring: int = 1

    @property
    def sp(self) -> int:
        """Ranks sharing one sequence (one CFG group)."""
        return self.ulysses * self.ring

    @property
    def world(self) -> int:
        return self.cfg * self.sp

    def describe(self) -> str:
        return f"cfg {self.cfg} x ulysses {self.ulysses} x ring {self.ring}"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def padded(tokens: int, sp: int) -> int:
    """``tokens`` rounded up to a multiple of ``sp`` (every rank holds the same shard length)."""
    return -(-tokens // sp) * sp


def choose(
    world: int,
    batch: int,
    heads: tuple[int, ...],
    *,
    cfg: int = 0,
    ulysses: int = 0,
    ring: int = 0,
    gpus_per_node: int | None = None,
) -> ParallelPlan:
    """The plan for a call of ``batch`` items on ``world`` ranks (0 = choose that degree).

    Args:
        heads: head counts of the sequence-parallel attentions (Ulysses splits heads).
        gpus_per_node: ranks per machine; Ulysses stays inside one when it can.
    Raises:
        ValueError naming the degree that does not fit and what would.
    """
    if world < 1:
        raise ValueError(f"world size must be at least 1, got {world}")
    for name, value in (("cfg", cfg), ("ulysses", ulysses), ("ring", ring)):
        if value < 0:
            raise ValueError(f"{name} degree must be 0 (automatic) or positive, got {value}")
    if cfg:
        if world % cfg:
            raise ValueError(f"cfg degree {cfg} does not divide the {world} workers; use one of {_divisors(world)}")
    else:
        fixed = (ulysses or 1) * (ring or 1)
        choices = [d for d in _divisors(world) if d <= max(1, batch) and (world // d) % fixed == 0]
        if not choices:
            raise ValueError(
                f"ulysses x ring = {fixed} does not divide the {world} workers; choose degrees whose product divides {world}"
            )
        cfg = max(choices)
    sp = world // cfg
    common = math.gcd(*heads) if heads else 1
    if ulysses and ring:
        if ulysses * ring != sp:
            raise ValueError(
                f"ulysses {ulysses} x ring {ring} = {ulysses * ring}, but {world} workers with cfg {cfg} leave {sp} "
                "ranks per sequence; make cfg x ulysses x ring equal the worker count (or set some to 0 = automatic)"
            )
    elif ulysses:
        if sp % ulysses:
            raise ValueError(f"ulysses degree {ulysses} does not divide the {sp} ranks per sequence (cfg {cfg})")
        ring = sp // ulysses
    elif ring:
        if sp % ring:
            raise ValueError(f"ring degree {ring} does not divide the {sp} ranks per sequence (cfg {cfg})")
        ulysses = sp // ring
    else:
        limit = gpus_per_node if gpus_per_node else sp
        fits = [d for d in _divisors(sp) if common % d == 0 and d <= limit]
        ulysses = max(fits)
        ring = sp // ulysses
    if common % ulysses:
        raise ValueError(
            f"ulysses degree {ulysses} must divide the attention head counts {sorted(set(heads))}; "
            f"use a divisor of {common} and put the rest on the ring degree"
        )
    return ParallelPlan(cfg=cfg, ulysses=ulysses, ring=ring)
