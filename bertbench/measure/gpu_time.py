"""GPU time: what the device itself spent on one call, from the durations of the kernels it
ran (CUPTI, through torch.profiler), apart from the timed loop.

On a fast GPU the latency of a call is often set by the Python host that launches its few
hundred kernels; it moves between runs with the host's speed, and can rank implementations
against their kernels' own cost. The sum of the kernels' durations (and the copies and fills
the call asked of the GPU) does not depend on the host: it answers which kernels are faster.

Before the timed rounds (variants.measure: where they refill the allocator's pool after the
warm-up), each model's call runs `count` more times inside one profiler
session (CUDA activity only: no CPU operator is recorded, so the host pays little), the
models in turn (as the timed rounds interleave them: a spell of the power cap, which lowers
the SM clock for seconds, falls on all of them alike), the GPU idle before each call and a
marker kernel (torch.cuda._sleep(0)) launched between calls; the device's activities between
two markers are one call's. Kernels of one stream never overlap,
and only device activities are counted (the profiler's annotations, which span kernels, are
not), so nothing is counted twice. The median call is the row's figure.

Two calls of each model first; a third (up to `count`) only for a model whose two differ by more
than AGREE. The median of three calls lies between any two of them, so where two agree within
1 % their mean is within 0.5 % of the median a third call would give: the third call, a third of
the profiled calls and of the record to read, is made only where it could move the figure.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity

from bertbench.measure.probes import profiled

GPU_CALLS = 3  # profiled calls per model at most: kernel sums repeat within 1 % (docs/methodology.md)
FIRST_CALLS = 2  # profiled calls of every model; more (up to the count) only where these disagree
AGREE = 0.01  # (slowest - fastest) / median within which a model's calls so far settle its figure
MARKER = "spin_kernel"  # the kernel torch.cuda._sleep launches (ATen's Sleep.cu)
COUNTED = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})  # device activities, as kineto names them


@dataclass(frozen=True)
class DeviceEvent:
    name: str
    activity: str  # kineto's activity type: kernel, gpu_memcpy, gpu_memset, gpu_user_annotation, ...
    start_ns: int
    duration_ns: int


@dataclass(frozen=True)
class GpuTime:
    """The device time of each profiled call of one model (ms) and how many activities each ran."""

    calls_ms: tuple[float, ...]
    activities: tuple[int, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.calls_ms)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median of the profiled calls."""
        return (max(self.calls_ms) - min(self.calls_ms)) / self.median if self.median else 0.0


def split_calls(events: Iterable[DeviceEvent], calls: int) -> list[tuple[float, int]]:
    """Milliseconds and activity count of each of `calls` calls, from the device's activities of
    a session that launched a marker before every call and one after the last."""
    ordered = sorted((e for e in events if e.activity in COUNTED), key=lambda e: e.start_ns)
    markers = [i for i, e in enumerate(ordered) if MARKER in e.name]
    if len(markers) != calls + 1:
        raise GpuTimeUnavailable(f"the profiler recorded {len(markers)} of {calls + 1} marker kernels")
    out = []
    for start, end in itertools.pairwise(markers):
        inside = ordered[start + 1 : end]
        out.append((sum(e.duration_ns for e in inside) / 1e6, len(inside)))
    return out


class GpuTimeUnavailable(RuntimeError):
    """The kernels' durations could not be read; the message says why."""


def gpu_times(
    calls: dict[str, Callable[[], object]], device: torch.device, count: int = GPU_CALLS
) -> dict[str, GpuTime]:
    """Each call's GpuTime from at most `count` profiled calls: FIRST_CALLS of every model in one
    profiler session, then one more call of each model whose calls so far spread by more than
    AGREE, in a session of their own, until they agree or reach `count`. Empty on the CPU or with
    count 0; GpuTimeUnavailable when the profiler's record cannot be read."""
    if device.type != "cuda" or count <= 0 or not calls:
        return {}
    measured: dict[str, list[tuple[float, int]]] = {name: [] for name in calls}
    live, rounds = list(calls), min(count, FIRST_CALLS)
    while live:
        for name, found in _profiled_rounds({name: calls[name] for name in live}, device, rounds).items():
            measured[name].extend(found)
        live = [name for name in live if len(measured[name]) < count and _gpu_time(measured[name]).spread > AGREE]
        rounds = 1
    return {name: _gpu_time(m) for name, m in measured.items()}


def _gpu_time(measured: list[tuple[float, int]]) -> GpuTime:
    return GpuTime(tuple(ms for ms, _ in measured), tuple(n for _, n in measured))


def _profiled_rounds(
    calls: dict[str, Callable[[], object]], device: torch.device, rounds: int
) -> dict[str, list[tuple[float, int]]]:
    """`rounds` calls of each, in turn (a, b, c, a, b, c, ...), in one profiler session: each
    model's milliseconds and activity count per call."""
    order = [name for _ in range(rounds) for name in calls]
    with profiled([ProfilerActivity.CUDA]) as prof:
        for name in order:
            torch.cuda.synchronize(device)
            torch.cuda._sleep(0)
            calls[name]()
        torch.cuda.synchronize(device)
        torch.cuda._sleep(0)
        torch.cuda.synchronize(device)
    per_call = split_calls(_device_events(prof), len(order))
    mine: dict[str, list[tuple[float, int]]] = {name: [] for name in calls}
    for name, measured in zip(order, per_call, strict=True):
        mine[name].append(measured)
    return mine


def _device_events(prof) -> list[DeviceEvent]:
    """The counted device activities of the session: the host's runtime calls and the device's
    annotations are left out before their names are read (a session holds thousands)."""
    events = prof.profiler.kineto_results.events()
    if events and not hasattr(events[0], "activity_type"):  # older PyTorch: annotations or kernels
        cuda = torch.autograd.DeviceType.CUDA
        events = [e for e in events if e.device_type() == cuda]
        kinds = ["gpu_user_annotation" if e.is_user_annotation() else "kernel" for e in events]
    else:
        kinds = [e.activity_type() for e in events]
    return [
        DeviceEvent(e.name(), kind, e.start_ns(), e.duration_ns())
        for e, kind in zip(events, kinds, strict=True)
        if kind in COUNTED
    ]
