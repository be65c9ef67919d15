"""A run's whole configuration as plain data: the grid points and every resolved setting.

RunConfig is built once from the command line (cli.parse_args), logged once (the run's
manifest, environment.write_manifest) and passed on; nothing changes it afterwards. No
torch import at module level: the command line is checked before PyTorch loads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bertbench.spec.catalog import preset_name

if TYPE_CHECKING:
    import torch

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
DTYPES = tuple(TORCH_DTYPES)

# The seed's grid, and the smaller one (with the tiny preset) a CPU-only machine runs by default.
GPU_SWEEP = {"batch_sizes": (1, 2, 4, 8, 16, 32, 64, 128), "seqlens": (128, 256, 512)}
CPU_SWEEP = {"batch_sizes": (1, 2, 4, 8), "seqlens": (32, 64, 128)}
PAD_FRACTIONS = (0.0, 0.1, 0.2, 0.5, 0.75)
LENGTH_DISTRIBUTIONS = ("normal", "uniform", "lognormal", "file")  # model.batches.sample_lengths draws each
# Timing defaults are a budget (triton's do_bench way): about budget_ms of timed calls per model
# and point, between min_batches and num_batches calls; --num-batches alone fixes the count.
GPU_DEFAULTS = {
    "model_size": "base",
    "batch_size": 64,
    "max_seqlen": 512,
    "warmup": 1,
    "num_batches": 50,
    "min_batches": 5,
    "budget_ms": 40.0,
}
CPU_DEFAULTS = {
    "model_size": "tiny",
    "batch_size": 8,
    "max_seqlen": 128,
    "warmup": 1,
    "num_batches": 10,
    "min_batches": 3,
    "budget_ms": 30.0,
}


@dataclass(frozen=True)
class GridPoint:
    batch_size: int
    max_seqlen: int
    avg_seqlen: float

    @property
    def pad_fraction(self) -> float:
        """The nominal padding: 1 - avg / max seqlen (the realised one is on every row)."""
        return round(1 - self.avg_seqlen / self.max_seqlen, 4)


@dataclass(frozen=True)
class TimingPlan:
    """How long to time one model: what the timing protocol needs, and nothing else."""

    warmup: int  # untimed calls first
    num_batches: int  # timed calls: exactly this many, or at most this many under a budget
    min_batches: int  # fewest timed calls under a budget
    budget_ms: float | None  # None: always num_batches
    gpu_calls: int = 3  # GPU: profiled calls for the GPU time, before the timed ones (0: none)


@dataclass(frozen=True)
class DatasetPlan:
    """--dataset: a whole-dataset pass instead of the grid (run.dataset_run)."""

    sequences: int  # how many lengths are drawn (with --lengths: the file's first, in file order)
    strategies: tuple[str, ...]  # batching strategies (model.strategies.STRATEGIES), in the order given
    tokens_per_batch: int  # the packed strategy's token budget
    passes: int  # timed passes of each implementation x strategy, interleaved


DATASET_SEQUENCES = {"cuda": 2048, "cpu": 64}  # --sequences without --lengths, by device type
DATASET_PASSES = 3


@dataclass(frozen=True)
class RunConfig:
    tasks: tuple[str, ...]
    model_size: str
    model_path: str | None
    implementations: tuple[str, ...]
    baseline: str
    device: str
    dtype: str
    points: tuple[GridPoint, ...]
    seqlen_stdev: float
    length_distribution: str  # normal, uniform, lognormal or file (model.batches.sample_lengths)
    use_mask: bool
    packed: bool
    mode: str
    timings: tuple[str, ...]  # the extra timings asked for, by name (spec.timings.EXTRA_TIMINGS)
    energy: bool  # also read the GPU's energy counter over a window of each model's calls
    capacity_limit: int | None  # --capacity: search the largest batch up to this, instead of timing
    timing: TimingPlan
    seed: int
    output_dir: Path
    resume: bool
    cpu_sized: bool  # CPU-sized defaults were applied
    quiet: bool = False  # --quiet: no progress bar or progress lines
    lengths: tuple[int, ...] | None = None  # --lengths: the file's lengths (distribution "file")
    lengths_file: str | None = None
    lengths_sha256: str | None = None
    dataset: DatasetPlan | None = None  # --dataset: a whole-dataset pass instead of the grid
    model_family: str = "bert"  # spec.catalog.FAMILIES: the preset's or the checkpoint's (config.model_type)

    @property
    def cuda_graphs(self) -> bool:
        return "graph" in self.timings

    @property
    def compile(self) -> bool:
        return "compiled" in self.timings

    @property
    def model_name(self) -> str:
        return self.model_path or preset_name(self.model_size)

    @property
    def torch_device(self) -> torch.device:
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, TORCH_DTYPES[self.dtype])

    def as_dict(self) -> dict:
        """The configuration as JSON-ready data (paths as strings)."""
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        if self.lengths is not None:  # the file is named by its hash; its lengths summarised, not listed
            data["lengths"] = {"count": len(self.lengths), "min": min(self.lengths), "max": max(self.lengths),
                               "mean": sum(self.lengths) / len(self.lengths)}  # fmt: skip
        return data


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_from_environment() -> Rank:
    """The rank torchrun gives this process (its RANK, WORLD_SIZE and LOCAL_RANK)."""
    return Rank(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )
