"""How a model's call is timed, as data: in a Python loop, replayed from a CUDA graph, or
compiled. One skeleton (measure) serves all three; a Variant says only how a call is
prepared, what its set-up cost, and where its kernels and output come from.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

from bertbench.measure import timing
from bertbench.measure.clock import ClockSample
from bertbench.measure.failures import Failure, one_line, release_memory, return_cached, synchronize
from bertbench.measure.gpu_time import FIRST_CALLS, GpuTime, Session, gpu_times
from bertbench.measure.graphs import capture_graph
from bertbench.measure.probes import PeakMemory, attention_kernels, run_with_peak_memory
from bertbench.measure.timing import Latency, time_interleaved
from bertbench.spec.config import RunConfig, TimingPlan

Call = Callable[[], object]


@dataclass(frozen=True)
class Prepared:
    call: Call  # what is timed
    setup_s: float | None = None  # capture or compile wall time, never inside the latency
    kernels: str | None = None  # known from the preparation (a capture); else profiled after timing
    output: object | None = None  # a graph's static output, rewritten by every replay


@dataclass(frozen=True)
class Outcome:
    """One model measured one way at one point."""

    latency: Latency
    memory: PeakMemory
    output: object  # the model output of the last call, for parity
    kernels: str  # fused attention operators that ran (measure.attention_kernels)
    setup_s: float | None
    gpu: GpuTime | None = None  # the device time of a call, from its kernels (GPU only)
    gpu_note: str = ""  # why there is none on a GPU


@dataclass(frozen=True)
class Variant:
    """One way of timing a call; VARIANTS lists them in the order a point measures them."""

    name: str  # loop, graph or compiled: the suffix of its columns
    label: str  # how a detail names it
    prepare: Callable[[Call, torch.device], Prepared]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    failure_prefix: str = ""
    enabled: Callable[[RunConfig], bool] | None = None  # whether a run asks for it; None: config.timings names it
    replays: bool = False  # replays the loop's kernels: graph-ready calls, outputs copied, the same kernels asked
    setup_column: str | None = None  # a row column for its set-up seconds (compile_s)


def _loop(call: Call, device: torch.device) -> Prepared:
    return Prepared(call)


def _graph(call: Call, device: torch.device) -> Prepared:
    graph = capture_graph(call, device)
    return Prepared(graph.graph.replay, graph.seconds, graph.kernels, graph.output)


def _compiled(call: Call, device: torch.device) -> Prepared:
    fn = torch.compile(call, dynamic=False)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return Prepared(fn, time.perf_counter() - start)


@contextlib.contextmanager
def _dynamo_fresh() -> Iterator[None]:
    """Dynamo's caches cleared per point, and its recompile limit an error instead of silently
    running the uncompiled code."""
    torch._dynamo.reset()
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            yield
    finally:
        torch._dynamo.reset()


LOOP = Variant("loop", "loop", _loop, enabled=lambda config: True)
GRAPH = Variant("graph", "cuda graph", _graph, failure_prefix="capture failed: ", replays=True)
COMPILED = Variant(
    "compiled",
    "torch.compile",
    _compiled,
    _dynamo_fresh,
    "compile failed: ",
    setup_column="compile_s",
)
VARIANTS: list[Variant] = [LOOP, GRAPH, COMPILED]  # the loop first: only what ran there goes on to the others


def register(variant: Variant) -> Variant:
    """Add a variant: its switch, key column and labels are its entry in spec.timings, its
    columns latency_ms_<name>[_baseline], speedup_<name>_pct and attention_kernels_<name> in
    spec.schema.Row."""
    if any(v.name == variant.name for v in VARIANTS):
        raise ValueError(f"timing variant {variant.name!r} is registered already")
    VARIANTS.append(variant)
    return variant


def variants_of(config: RunConfig) -> list[Variant]:
    return [v for v in VARIANTS if (v.enabled(config) if v.enabled else v.name in config.timings)]


def measure(
    variant: Variant,
    calls: dict[str, Call],
    device: torch.device,
    plan: TimingPlan,
    inference: bool = True,
    known_kernels: Mapping[str, str] | None = None,
    between: Callable[[], object] | None = None,
    clock: Callable[[], ClockSample | None] | None = None,
) -> dict[str, Outcome | Failure]:
    """Prepare every call and time them interleaved. The last untimed call of each (see
    time_interleaved's `observe`) also gives its peak memory, its output and, unless
    `known_kernels` already holds them (e.g. "" for the baseline, whose kernels no column
    holds), the attention kernels it ran: the profiler costs 15-50 ms a call. A model that
    fails at any step becomes a Failure and the others go on. `between`, `clock`: see
    time_interleaved.

    The GPU time (gpu_time; none on the CPU) is profiled before the timed rounds, where the pool
    is refilled after the observed calls: each model's observed call and its refill call run
    inside one profiler session (gpu_time.Session) and are its first two profiled calls, so the
    GPU time costs no call of its own. A model whose attention kernels are not known yet has
    its observed call read by the profiler of attention_kernels instead (the session pauses for
    it), and one more call of its own profiled after the refill: one model that cannot run at
    this seqlen and mask (sdpa-flash with a padding mask) so costs no call of the others."""
    known = known_kernels or {}
    results: dict[str, Outcome | Failure] = {}
    prepared: dict[str, Prepared] = {}
    seen: dict[str, tuple[object, str, PeakMemory]] = {}  # name -> output, kernels, memory of the observed call
    session: Session | None = None  # the observed and refill calls' profiler session, where they share one

    def bracketed(name: str, call: Call) -> Call:
        return call if session is None else lambda: session.call(name, call)

    def observe(name: str) -> None:
        p = prepared[name]
        if p.kernels is not None:  # a replay rewrites the static output the capture recorded; no new memory
            bracketed(name, p.call)()
            synchronize(device)
            seen[name] = p.output, p.kernels, PeakMemory.unmeasured()
            return
        return_cached(device)  # each model's peak reserved memory from a pool it did not inherit
        if name in known:
            output, memory = run_with_peak_memory(bracketed(name, p.call), device)
            seen[name] = output, known[name], memory
        else:
            if session is not None:  # one profiler at a time
                session.pause()
            (output, kernels), memory = run_with_peak_memory(lambda: attention_kernels(p.call), device)
            seen[name] = output, kernels, memory

    with torch.inference_mode(inference), variant.context():
        for name, call in calls.items():
            try:
                prepared[name] = variant.prepare(call, device)
                continue
            except Exception as e:
                results[name] = _failure(variant, e)
            release_memory(device)
        gpu: dict[str, GpuTime] = {}
        gpu_note = ""
        if timing.refills_pool(device) and plan.gpu_calls >= FIRST_CALLS:
            session = Session(device)

        def profile(live: dict[str, Call]) -> bool:
            """The GPU time's profiled calls, made where the pool is refilled: no call of their own."""
            nonlocal gpu_note, session
            if plan.gpu_calls <= 0:
                return False
            try:
                observed = {}
                if session is not None:  # each model's observed call is its first profiled call (if known)
                    for name, call in live.items():
                        session.call(name, call)
                    observed, session = session.close(), None
                gpu.update(gpu_times(live, device, plan.gpu_calls, observed))
                return True
            except Exception as e:  # the timings stand; the rows say why the GPU time does not
                gpu_note = f"GPU time unavailable: {one_line(e)}"
            if session is not None:  # never open during the timed calls
                session.discard()
                session = None
            release_memory(device)  # which empties the pool: the single refill calls follow
            return False

        try:
            timings, failures = time_interleaved(
                {n: p.call for n, p in prepared.items()}, device, plan, between, observe, clock, profile
            )
        finally:
            if session is not None:  # no model reached its refill call
                session.discard()
        results.update(failures)
        if not gpu and not gpu_note:  # the pool was not refilled (the CPU): profiled after the timed rounds
            try:
                gpu = gpu_times({n: prepared[n].call for n in timings}, device, plan.gpu_calls)
            except Exception as e:
                gpu_note = f"GPU time unavailable: {one_line(e)}"
                release_memory(device)
        for name, latency in timings.items():
            output, kernels, memory = seen[name]
            results[name] = Outcome(latency, memory, output, kernels, prepared[name].setup_s, gpu.get(name), gpu_note)
    prepared.clear()  # the caller returns the allocator's cache once it has dropped the outputs too
    seen.clear()
    return {name: results[name] for name in calls}


def _failure(variant: Variant, error: BaseException) -> Failure:
    if type(error).__name__ == "FailOnRecompileLimitHit":
        limit = torch._dynamo.config.recompile_limit
        return Failure(
            "error", f"{variant.failure_prefix}recompiled more than {limit} times (beyond that it would run uncompiled)"
        )
    failure = Failure.of(error)
    if failure.status == "unavailable" and variant.replays:  # NotCapturable: the reason is the detail
        return failure
    return Failure(failure.status, f"{variant.failure_prefix}{one_line(error)}")
