"""Timing whole passes (--dataset): one pass is many forward calls, timed end to end with a single
synchronisation before and after it (on a GPU the calls queue up as a data loader's would), its
peak memory read from the allocator; the passes of every implementation and strategy are timed
in interleaved rounds, each round starting one further along, so a slow spell of the host or the
GPU falls on all of them alike. It knows callables and a device, nothing of models or strategies.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.failures import Failure, release_memory


@dataclass(frozen=True)
class PassTimes:
    """The timed passes of one implementation and strategy."""

    seconds: tuple[float, ...]
    peak_mb: float | None  # GPU: the highest allocated peak of any pass above what was allocated before it

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed_pass(run: Callable[[], object], device: torch.device) -> tuple[float, float | None]:
    """Seconds of one call of run (the whole pass), and its peak allocated memory (MiB, GPU only)."""
    if device.type != "cuda":
        start = time.perf_counter()
        run()
        return time.perf_counter() - start, None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    allocated = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    run()
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return seconds, (torch.cuda.max_memory_allocated(device) - allocated) / 2**20


def time_passes(
    passes: dict[str, Callable[[], object]], device: torch.device, rounds: int
) -> tuple[dict[str, PassTimes], dict[str, Failure]]:
    """`rounds` timed passes of each, interleaved (round r starts at the r-th); a pass that raises
    is a Failure and is not timed again. Python's garbage collector is off while passes run."""
    seconds: dict[str, list[float]] = {key: [] for key in passes}
    peaks: dict[str, list[float]] = {key: [] for key in passes}
    failures: dict[str, Failure] = {}
    keys = list(passes)
    collecting = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds if keys else 0):
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                if key in failures:
                    continue
                try:
                    elapsed, peak = timed_pass(passes[key], device)
                except Exception as e:
                    failures[key] = Failure.of(e)
                else:
                    seconds[key].append(elapsed)
                    peaks[key] += [] if peak is None else [peak]
                    continue
                release_memory(device)  # outside the except block, whose frames held the failed tensors
    finally:
        if collecting:
            gc.enable()
    return {
        key: PassTimes(tuple(values), max(peaks[key]) if peaks[key] else None)
        for key, values in seconds.items()
        if key not in failures
    }, failures
