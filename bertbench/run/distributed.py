"""One sweep over the GPUs of a host: `torchrun --nproc-per-node N benchmark_bert.py ...`.

Each rank measures a disjoint share of the grid on its own GPU (LOCAL_RANK) and appends to
its own part file; after a barrier rank 0 merges the parts into <task>.csv in grid order.
Without torchrun (WORLD_SIZE unset or 1) nothing here changes what a run does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from bertbench.spec.config import GridPoint, Rank

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# Cost model for balancing and for the time left: a point's forward does work per token that
# grows with its length (the attention term), and every point pays a fixed part besides (the
# launch-bound warm-up and minimum of timed calls, the host probes, the reference). Fitted to an
# H100 run of ./run_bert.sh (10 models a point): 0.85 s a point plus 0.1 s per 16 x 128 batch of
# work, so 128 x 512 takes ~5 x as long as 1 x 128, not ~600 x.
LENGTH_OFFSET = 3072  # ~4 x hidden: the per-token matmul work of bert-base, in units of L
UNIT = 16 * 128 * (128 + LENGTH_OFFSET)  # the work of a 16 x 128 batch
FIXED_COST = 8.5 * UNIT


def point_cost(point: GridPoint) -> float:
    """Expected time of a grid point, up to a constant."""
    return FIXED_COST + point.batch_size * point.max_seqlen * (point.max_seqlen + LENGTH_OFFSET)


def shard(points: list[GridPoint], world_size: int) -> list[list[int]]:
    """Indices of the points each rank measures: every point exactly once, balanced by cost.

    Longest processing time first: the costliest remaining point goes to the least-loaded
    rank; each rank then measures its share in grid order.
    """
    loads = [0.0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(points)), key=lambda i: -point_cost(points[i])):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += point_cost(points[index])
        shares[rank].append(index)
    return [sorted(share) for share in shares]


def start(rank: Rank, device: torch.device) -> None:
    """Join the process group; CUDA events and synchronisations then address this rank's GPU."""
    import torch
    import torch.distributed as dist

    if device.type == "cuda" and device.index is not None:  # cuda:<LOCAL_RANK> under torchrun
        torch.cuda.set_device(device)
    if rank.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shared(rank: Rank, value: T) -> T:
    """Rank 0's value on every rank (e.g. the run id), or the value itself without torchrun."""
    if not rank.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(rank: Rank) -> None:
    if rank.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(rank: Rank) -> None:
    if not rank.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
