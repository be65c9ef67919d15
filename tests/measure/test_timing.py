import itertools
import math
import time
import warnings

import pytest
import torch

from bertbench.measure.timing import INTERLEAVE_ROUNDS, Latency, latencies, repetitions, round_sizes, time_interleaved
from bertbench.spec.config import TimingPlan

CPU = torch.device("cpu")


def plan(num_batches=50, min_batches=5, budget_ms=100.0, warmup=0):
    return TimingPlan(warmup=warmup, num_batches=num_batches, min_batches=min_batches, budget_ms=budget_ms)


def test_repetition_counts_and_their_rounds():
    calls = []
    assert len(latencies(lambda: calls.append(1), CPU, 7)) == 7 and len(calls) == 7
    assert round_sizes(23, 5) == [5, 5, 5, 4, 4] and round_sizes(3, 5) == [1, 1, 1, 0, 0]
    assert repetitions(10.0, plan()) == 10
    assert repetitions(1000.0, plan()) == 5
    assert repetitions(0.01, plan()) == 50
    assert repetitions(1.0, plan(num_batches=3)) == 3  # never above num_batches
    assert repetitions(1.0, plan(budget_ms=None)) == 50  # no budget: the fixed count


def test_latency_statistics_and_the_figures_derived_from_them():
    t = Latency((4.0, 1.0, 3.0, 2.0, 5.0))
    assert t.median == 3.0 and t.mean == 3.0 and t.count == 5
    assert t.quantile(0.0) == 1.0 and t.quantile(1.0) == 5.0 and math.isclose(t.quantile(0.1), 1.4)
    assert t.rel_iqr == pytest.approx((4 - 2) / 3) and t.noisy
    assert t.per_second(300) == pytest.approx(100_000)  # 300 tokens per 3 ms
    steady = Latency((10.0, 10.1, 9.9, 10.0, 10.05))
    assert steady.rel_iqr < 0.1 and not steady.noisy


def test_calls_are_timed_interleaved_and_a_failing_call_is_set_aside():
    order = []

    def call(name):
        def run():
            order.append(name)
            if name == "b" and order.count("b") > 3:
                raise RuntimeError("broke in round two")

        return run

    timings, failures = time_interleaved({n: call(n) for n in "abc"}, CPU, plan(num_batches=30, budget_ms=None))
    assert set(timings) == {"a", "c"} and timings["a"].count == timings["c"].count == 30
    assert failures["b"].status == "error" and "broke in round two" in failures["b"].detail
    runs = [(name, len(list(group))) for name, group in itertools.groupby(order)]
    assert runs[:4] == [("a", 10), ("b", 3), ("a", 10), ("c", 10)][:1] + runs[1:4]
    assert len([r for r in runs if r[0] == "a"]) == min(INTERLEAVE_ROUNDS, 3)


def test_the_observed_call_is_the_last_untimed_one_and_the_count_follows_the_fastest():
    order = []

    def call(name):
        return lambda: order.append(name)

    def observe(name):  # the caller's own untimed call, e.g. under the profiler: far slower than the call
        order.append(f"observe {name}")
        time.sleep(0.2)

    calls = {"a": call("a"), "b": call("b")}
    budget = plan(num_batches=20, min_batches=1, budget_ms=100.0, warmup=2)
    timings, _ = time_interleaved(calls, CPU, budget, observe=observe)
    assert order[:4] == ["a", "observe a", "b", "observe b"]  # warm-up 2: one plain call, then the observed one
    assert not any(name.startswith("observe") for name in order[4:])  # no call after the timed ones
    # the fastest untimed call (well under 100 ms / 20) sets the count; the observed 200 ms would give 1
    assert timings["a"].count == timings["b"].count == 20
    order.clear()
    timings, _ = time_interleaved(calls, CPU, plan(num_batches=3, budget_ms=None, warmup=0), observe=observe)
    assert order == ["observe a", "observe b", *["a"] * 3, *["b"] * 3]  # --warmup 0: the observed call alone


def test_a_refusing_kernel_says_why_from_the_warnings_it_gave():
    def refuses():  # as SDPA pinned to one backend refuses a padding mask: reasons as warnings, then an error
        warnings.warn(
            "Flash attention kernel not used because: (Triggered internally at sdp_utils.cpp:988.)", stacklevel=2
        )
        warnings.warn(
            "Flash Attention does not support non-null attn_mask. (Triggered internally at sdp.h:262.)", stacklevel=2
        )
        warnings.warn(
            "cuDNN attention has been runtime disabled. (Triggered internally at sdp_utils.cpp:706.)", stacklevel=2
        )
        raise RuntimeError("No available kernel. Aborting execution.")

    def breaks():
        warnings.warn("something else", stacklevel=2)
        raise ValueError("a bug")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes to the user's terminal
        _, failures = time_interleaved({"pinned": refuses, "bug": breaks}, CPU, plan(warmup=1))
    assert failures["pinned"].status == "unavailable"
    assert failures["pinned"].detail == (
        "RuntimeError: No available kernel. Aborting execution. (Flash Attention does not support non-null attn_mask.)"
    )
    assert failures["bug"].status == "error" and failures["bug"].detail == "ValueError: a bug"


def test_where_the_observed_calls_empty_the_pool_every_model_calls_once_more_before_the_rounds(monkeypatch):
    """On a GPU each observed call runs from an emptied allocator pool; timed at once, the next
    model's first calls would allocate afresh. One untimed call of every model, after all the
    observed ones, refills it (CPU: no pool, no extra call)."""
    from bertbench.measure import timing

    order = []
    calls = {n: (lambda n=n: order.append(n)) for n in "ab"}
    observe = lambda name: order.append(f"observe {name}")  # noqa: E731
    fixed = plan(num_batches=2, budget_ms=None, warmup=1)
    time_interleaved(calls, CPU, fixed, observe=observe)
    assert order == ["observe a", "observe b", "a", "a", "b", "b"]
    order.clear()
    monkeypatch.setattr(timing, "refills_pool", lambda device: True)
    time_interleaved(calls, CPU, fixed, observe=observe)
    assert order == ["observe a", "observe b", "a", "b", "a", "a", "b", "b"]
    order.clear()
    time_interleaved(calls, CPU, fixed)  # nothing observed, nothing emptied
    assert order == ["a", "b", "a", "a", "b", "b"]


def test_a_refill_that_makes_the_calls_replaces_the_extra_ones_and_one_that_cannot_leaves_them(monkeypatch):
    """variants.measure's refill is the GPU time's profiled calls: where it made them, no model calls
    once more; where it could not (it says False), the single calls follow."""
    from bertbench.measure import timing

    monkeypatch.setattr(timing, "refills_pool", lambda device: True)
    order = []
    calls = {n: (lambda n=n: order.append(n)) for n in "ab"}
    observe = lambda name: order.append(f"observe {name}")  # noqa: E731
    fixed = plan(num_batches=1, budget_ms=None, warmup=1)

    def profiled(live):
        order.append(f"profiled {','.join(live)}")
        return True

    time_interleaved(calls, CPU, fixed, observe=observe, refill=profiled)
    assert order == ["observe a", "observe b", "profiled a,b", "a", "b"]
    order.clear()
    time_interleaved(calls, CPU, fixed, observe=observe, refill=lambda live: False)
    assert order == ["observe a", "observe b", "a", "b", "a", "b"]
