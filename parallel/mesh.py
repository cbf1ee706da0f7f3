"""Process groups of a ``ParallelPlan`` and this rank's place in them.

Layout (yunchang's ``set_seq_parallel_pg`` with ``use_ulysses_low=True``, which creates the
groups): global rank ``= cfg_index * sp + sp_rank`` and ``sp_rank = ring_rank * ulysses +
ulysses_rank``.  Ulysses groups are runs of ``ulysses`` consecutive ranks (one machine's GPUs
when ranks are numbered per machine), ring groups stride across them.  Sequence shard
``sp_rank`` holds tokens ``[sp_rank * n, (sp_rank + 1) * n)``, so after a Ulysses exchange a
rank holds the contiguous span ``ring_rank`` of ``ulysses * n`` tokens.

``torch.distributed`` requires every rank to create every group in the same order; ``mesh``
does that once per plan and keeps the result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch.distributed as dist

from .plan import ParallelPlan


def import_yunchang():
    """The ``yunchang`` package (imported once, its ``torch.jit.script`` deprecation warnings hushed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import yunchang
            import yunchang.comm.all_to_all  # noqa: F401
            import yunchang.globals  # noqa: F401
            import yunchang.ring.utils  # noqa: F401
    except ImportError as err:  # pragma: no cover - the worker reports it
        raise ImportError(
            "multi-GPU LTX-2 needs the yunchang package (sequence-parallel attention primitives): pip install yunchang"
        ) from err
    return yunchang


def _yunchang():
    yunchang = import_yunchang()
    return yunchang.set_seq_parallel_pg, yunchang.globals.PROCESS_GROUP


@dataclass
class Mesh:
    """This rank's groups for one plan."""

    plan: ParallelPlan
    rank: int
    ulysses_group: object
    ring_group: object
    sp_group: object  # all ranks of this CFG group (agreement on interruption)

    @property
    def cfg_index(self) -> int:
        return self.rank // self.plan.sp

    @property
    def sp_rank(self) -> int:
        return self.rank % self.plan.sp

    @property
    def ulysses_rank(self) -> int:
        return self.sp_rank % self.plan.ulysses

    @property
    def ring_rank(self) -> int:
        return self.sp_rank // self.plan.ulysses


_MESHES: dict[ParallelPlan, Mesh] = {}


def mesh(plan: ParallelPlan) -> Mesh:
    """The ``Mesh`` of ``plan`` in the default process group (created on first use, collectively)."""
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call init_process_group first")
    world, rank = dist.get_world_size(), dist.get_rank()
    if plan.world != world:
        raise ValueError(f"plan {plan.describe()} needs {plan.world} ranks, the process group has {world}")
    if plan in _MESHES:
        return _MESHES[plan]
    set_seq_parallel_pg, groups = _yunchang()
    set_seq_parallel_pg(plan.ulysses, plan.ring, rank, world, use_ulysses_low=True)
    sp_group = None
    for index in range(plan.cfg):
        ranks = list(range(index * plan.sp, (index + 1) * plan.sp))
        group = dist.new_group(ranks)
        if rank in ranks:
            sp_group = group
    made = Mesh(plan, rank, groups.ULYSSES_PG, groups.RING_PG, sp_group)
    _MESHES[plan] = made
    return made


def forget_meshes() -> None:
    """Drop the cached groups (after ``destroy_process_group``)."""
    _MESHES.clear()
