"""GPU time: what the device itself spent on one call, from the durations of the kernels it
ran (CUPTI, through torch.profiler), apart from the timed loop.

On a fast GPU the latency of a call is often set by the Python host that launches its few
hundred kernels; it moves between runs with the host's speed, and can rank implementations
against their kernels' own cost. The sum of the kernels' durations (and the copies and fills
the call asked of the GPU) does not depend on the host: it answers which kernels are faster.

A Session is one profiler session (CUDA activity only: no CPU operator is recorded, so the
host pays little) whose calls are each bracketed by two marker kernels (torch.cuda._sleep(0)),
the GPU idle before each: the device's activities between a call's two markers are that call's,
and whatever runs outside a bracket is not counted. Kernels of one stream never overlap, and
only device activities are counted (the profiler's annotations, which span kernels, are not),
so nothing is counted twice. The median call is the row's figure.

variants.measure makes every model's observed call and its refill call (the untimed calls
before the timed rounds) inside one session, so the two profiled calls cost no call of their
own; gpu_times profiles calls of its own where that is not possible. The models run in turn (as
the timed rounds interleave them: a spell of the power cap, which lowers the SM clock for
seconds, falls on all of them alike). A third call (up to `count`) is made only for a model
whose two differ by more than AGREE: the median of three calls lies between any two of them, so
where two agree within 1 % their mean is within 0.5 % of the median a third call would give.
"""

from __future__ import annotations

import contextlib
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
    a session that launched a marker before and after every call (Session.call)."""
    ordered = sorted((e for e in events if e.activity in COUNTED), key=lambda e: e.start_ns)
    markers = [i for i, e in enumerate(ordered) if MARKER in e.name]
    if len(markers) != 2 * calls:
        raise GpuTimeUnavailable(f"the profiler recorded {len(markers)} of {2 * calls} marker kernels")
    out = []
    for start, end in zip(markers[::2], markers[1::2], strict=True):
        inside = ordered[start + 1 : end]
        out.append((sum(e.duration_ns for e in inside) / 1e6, len(inside)))
    return out


class GpuTimeUnavailable(RuntimeError):
    """The kernels' durations could not be read; the message says why."""


class Session:
    """One profiler session whose calls are bracketed by marker kernels, each launched on an idle
    GPU; started by its first call, read by close(). A call that raises is left out. pause()
    stops the profiler between two calls, for a profiler of another kind (probes.attention_kernels:
    two cannot run at once); the next call starts it again, and close() reads every stretch."""

    def __init__(self, device: torch.device):
        self.device = device
        self._stack = contextlib.ExitStack()
        self._prof = None
        self._order: list[str | None] = []  # each bracketed call's model; None where the call raised
        self._found: dict[str, list[tuple[float, int]]] = {}  # the stretches read so far
        self._error: GpuTimeUnavailable | None = None  # a stretch that could not be read

    def call(self, name: str, fn: Callable[[], object]) -> object:
        if self._prof is None:
            self._prof = self._stack.enter_context(profiled([ProfilerActivity.CUDA]))
        torch.cuda.synchronize(self.device)
        torch.cuda._sleep(0)
        self._order.append(None)
        try:
            output = fn()
        finally:
            torch.cuda._sleep(0)
        self._order[-1] = name
        return output

    def pause(self) -> None:
        """Stop the profiler and read its stretch; the next call starts a new one. A stretch that
        cannot be read is reported by close(), never here, amid a model's call."""
        try:
            self._read()
        except GpuTimeUnavailable as e:
            self._error = self._error or e

    def close(self) -> dict[str, list[tuple[float, int]]]:
        """Stop the session; each model's milliseconds and activity count per call, in call order.
        GpuTimeUnavailable when the record cannot be read."""
        self._read()
        if self._error is not None:
            raise self._error
        found, self._found = self._found, {}
        return found

    def _read(self) -> None:
        prof, self._prof = self._prof, None
        if prof is None:
            return
        order, self._order = self._order, []
        try:
            torch.cuda.synchronize(self.device)
        finally:
            self._stack.close()
        for name, measured in zip(order, split_calls(_device_events(prof), len(order)), strict=True):
            if name is not None:
                self._found.setdefault(name, []).append(measured)

    def discard(self) -> None:
        """Stop the session unread (a measurement that ended another way)."""
        self._prof = None
        self._order = []
        self._stack.close()


def gpu_times(
    calls: dict[str, Callable[[], object]],
    device: torch.device,
    count: int = GPU_CALLS,
    profiled_already: dict[str, list[tuple[float, int]]] | None = None,
) -> dict[str, GpuTime]:
    """Each call's GpuTime from at most `count` profiled calls, `profiled_already` (a closed
    Session's record) counted among them: FIRST_CALLS of every model, the models in turn in one
    session, then one more call of each model whose calls so far spread by more than AGREE, in
    a session of their own, until they agree or reach `count`. Empty on the CPU or with count 0;
    GpuTimeUnavailable when the profiler's record cannot be read."""
    if device.type != "cuda" or count <= 0 or not calls:
        return {}
    measured = {name: list((profiled_already or {}).get(name, ())) for name in calls}
    while wanted := {name: n for name in calls if (n := _wanted(measured[name], count))}:
        session = Session(device)
        try:
            for turn in range(max(wanted.values())):
                for name in [name for name, n in wanted.items() if turn < n]:
                    session.call(name, calls[name])
        except BaseException:
            session.discard()
            raise
        for name, found in session.close().items():
            measured[name].extend(found)
    return {name: _gpu_time(m) for name, m in measured.items()}


def _wanted(measured: list[tuple[float, int]], count: int) -> int:
    """How many more calls of a model to profile: up to FIRST_CALLS, then one while they disagree."""
    first = min(count, FIRST_CALLS)
    if len(measured) < first:
        return first - len(measured)
    return int(len(measured) < count and _gpu_time(measured).spread > AGREE)


def _gpu_time(measured: list[tuple[float, int]]) -> GpuTime:
    return GpuTime(tuple(ms for ms, _ in measured), tuple(n for _, n in measured))


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
