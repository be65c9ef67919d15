"""The timing protocol: warm up, then time calls in interleaved rounds, as raw milliseconds.

After triton.testing.do_bench: one pair of CUDA events per timed call and a single
synchronisation at the end of a run of calls (time.perf_counter on the CPU), a count set
by a time budget, and quantiles rather than the mean alone. It knows callables, a device
and a TimingPlan: nothing of tasks, models or baselines.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.clock import ClockSample
from bertbench.measure.failures import Failure, release_memory
from bertbench.spec.config import TimingPlan
from bertbench.spec.figures import HOST_BOUND_SHARE, NOISY_REL_IQR

INTERLEAVE_ROUNDS = 5
MIN_ROUND_CALLS = 10


@dataclass(frozen=True)
class Latency:
    """A value object built from raw per-call latencies (ms); every statistic derives from them."""

    latencies_ms: tuple[float, ...]
    host_ms: tuple[float, ...] = ()  # on a GPU: how long the host took to enqueue each call
    clocks: tuple[ClockSample, ...] = ()  # on a GPU: the SM clock after each round (clock.ClockWatch)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def total_s(self) -> float:
        return sum(self.latencies_ms) / 1e3

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        position = q * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    @property
    def rel_iqr(self) -> float:
        """Interquartile range over the median: the spread torch.utils.benchmark reports."""
        return (self.quantile(0.75) - self.quantile(0.25)) / self.median

    @property
    def noisy(self) -> bool:
        return self.rel_iqr > NOISY_REL_IQR

    @property
    def host_share(self) -> float | None:
        """The host's fastest enqueue of one call over the median latency (GPU only). Near 1 the
        GPU waited for the host (a launch-bound call, or one that synchronises with the host
        inside, as FlashAttention-2 unpadding a batch does), so the latency follows the host's
        speed, which differs between runs; well below 1 the GPU sets it. The fastest: a call
        enqueued behind a full launch queue waits for the GPU."""
        return min(self.host_ms) / self.median if self.host_ms else None

    @property
    def host_bound(self) -> bool | None:
        share = self.host_share
        return None if share is None else share >= HOST_BOUND_SHARE

    def per_second(self, items: float) -> float:
        """Throughput: `items` per median call, per second."""
        return items / (self.median * 1e-3)


def repetitions(estimate_ms: float, plan: TimingPlan) -> int:
    """Timed calls for one measurement: all of num_batches, or as many as fill the budget."""
    if plan.budget_ms is None:
        return plan.num_batches
    fill = math.ceil(plan.budget_ms / max(estimate_ms, 1e-3))
    return max(min(fill, plan.num_batches), min(plan.min_batches, plan.num_batches))


def latencies(
    fn: Callable[[], object], device: torch.device, count: int, host: list[float] | None = None
) -> tuple[float, ...]:
    """Milliseconds of each of `count` calls of fn; on a GPU the host's enqueue time of each
    call is appended to `host` too."""
    return _cuda_latencies(fn, count, host) if device.type == "cuda" else _cpu_latencies(fn, count)


def round_sizes(count: int, rounds: int) -> list[int]:
    """`count` calls split as evenly as possible over `rounds` rounds."""
    return [count // rounds + (i < count % rounds) for i in range(rounds)]


def _cuda_latencies(fn: Callable[[], object], count: int, host: list[float] | None) -> tuple[float, ...]:
    """One pair of events around each call, one synchronisation after the last."""
    if count == 0:
        return ()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    enqueued = []
    for start, end in zip(starts, ends, strict=True):
        begin = time.perf_counter()
        start.record()
        fn()
        end.record()
        enqueued.append((time.perf_counter() - begin) * 1e3)
    torch.cuda.synchronize()
    if host is not None:
        host.extend(enqueued)
    return tuple(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))


def _cpu_latencies(fn: Callable[[], object], count: int) -> tuple[float, ...]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return tuple(out)


def refills_pool(device: torch.device) -> bool:
    """Whether the observed calls leave the caching allocator's pool emptied (variants.measure
    returns it before each model's observed call, for its reserved peak): CUDA only. Timed at
    once, each model's first calls then allocate afresh (cudaMalloc waits for the GPU): on the
    H200 in train mode at 32 x 512 that added 3.7 ms to sdpa's median and 7.5 ms to
    FlashAttention-2's over their kernels' 28 ms, and one untimed call of every model first
    took it away (docs/methodology.md)."""
    return device.type == "cuda"


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    device: torch.device,
    plan: TimingPlan,
    between: Callable[[], object] | None = None,
    observe: Callable[[str], object] | None = None,
    clock: Callable[[], ClockSample | None] | None = None,
    refill: Callable[[dict[str, Callable[[], object]]], bool] | None = None,
) -> tuple[dict[str, Latency], dict[str, Failure]]:
    """Warm up and time every call, interleaved; a call that raises becomes a Failure.

    `observe(name)`, where given, makes the last untimed call of that model itself (at least
    one: with plan.warmup 0 it is the only one), so that its caller reads what one call
    leaves (variants.measure: peak memory, kernels, output) without a call of its own. The
    number of timed calls is set from the fastest untimed call: one-off set-up costs of a new
    shape and the profiler only add to a call. Where the observed calls emptied the allocator's
    pool (refills_pool), each model makes one more untimed call after every model's warm-up;
    `refill(calls)`, where given, makes those calls instead (variants.measure: the profiled
    calls of the GPU time) and says whether it did, else the single calls follow.

    The timed calls of each model are split into up to INTERLEAVE_ROUNDS rounds of at least
    MIN_ROUND_CALLS consecutive calls, and each round visits every model in turn, so a slow
    spell of the host or the GPU falls on all models alike instead of on one measurement.
    Rounds are kept long because below batch ~16 the host sets the latency and a
    synchronisation every few calls slows it (by up to 20 % on the H100:
    docs/evidence/adaptive_budget.md). `between` runs after every round of calls,
    on an idle device (host.HostWatch.read: how fast the host was meanwhile); `clock` after
    each model's round (clock.ClockWatch.sample: the SM clock it ran at). Python's garbage
    collector is off while calls are timed, as timeit has it.
    """
    timed: dict[str, list[float]] = {}
    host: dict[str, list[float]] = {}
    clocks: dict[str, list[ClockSample]] = {}
    rounds: dict[str, list[int]] = {}
    failures: dict[str, Failure] = {}
    warned: dict[str, list[warnings.WarningMessage]] = {}  # the warnings of a warm-up under way

    def attempt(name: str, action: Callable[..., None], *args) -> None:
        try:
            action(name, *args)
            return
        except Exception as e:
            failures[name] = Failure.of(e).because(warned.get(name, []))
        timed.pop(name, None)
        release_memory(device)  # outside the except block, whose frames held the failed tensors

    def warm_up(name: str) -> None:
        with warnings.catch_warnings(record=True) as warned[name]:  # a failure's reasons; else quiet
            warnings.simplefilter("always")
            warm = list(latencies(calls[name], device, max(plan.warmup - (observe is not None), 0)))
            if observe is not None:
                begin = time.perf_counter()
                observe(name)
                warm.append((time.perf_counter() - begin) * 1e3)
        del warned[name]
        count = repetitions(min(warm), plan) if warm else plan.num_batches
        rounds[name] = round_sizes(count, max(1, min(INTERLEAVE_ROUNDS, count // MIN_ROUND_CALLS)))
        timed[name], host[name], clocks[name] = [], [], []

    def time_round(name: str, index: int) -> None:
        if index < len(rounds[name]):
            timed[name].extend(latencies(calls[name], device, rounds[name][index], host[name]))
            if clock is not None and (sample := clock()) is not None:
                clocks[name].append(sample)

    for name in calls:
        attempt(name, warm_up)
    refilling = observe is not None and refills_pool(device) and bool(timed)
    # the allocator's pool holds every model's blocks again before any is timed
    if refilling and (refill is None or not refill({name: calls[name] for name in timed})):
        for name in list(timed):
            attempt(name, lambda n: calls[n]())
    collecting = gc.isenabled()
    gc.disable()
    try:
        for index in range(INTERLEAVE_ROUNDS):
            if not any(index < len(rounds[name]) for name in timed):
                break
            for name in list(timed):
                attempt(name, time_round, index)
            if between is not None:
                between()
    finally:
        if collecting:
            gc.enable()
    return {
        name: Latency(tuple(values), tuple(host[name]), tuple(clocks[name])) for name, values in timed.items()
    }, failures
