"""GPU time from the device's activity record: one call's kernels between two markers, each
activity counted once, annotations never. The profiler itself needs a GPU (tests/test_gpu.py)."""

from __future__ import annotations

import pytest
import torch

from bertbench.measure.gpu_time import (
    MARKER,
    DeviceEvent,
    GpuTime,
    GpuTimeUnavailable,
    gpu_times,
    split_calls,
)


def _timeline(calls: list[list[int]]) -> list[DeviceEvent]:
    """A marker before each call's kernels (durations in µs) and one after the last, plus an
    annotation spanning each call, listed out of order."""
    events, t = [], 0
    for durations in calls:
        events.append(DeviceEvent(f"void at::cuda::{MARKER}(long)", "kernel", t, 1_000))
        t += 5_000
        start = t
        for d in durations:
            events.append(DeviceEvent("ampere_fp16_gemm", "kernel", t, d * 1_000))
            t += d * 1_000 + 2_000
        events.append(DeviceEvent("bertbench call", "gpu_user_annotation", start, t - start))
    events.append(DeviceEvent(MARKER, "kernel", t + 10_000, 1_000))
    return events[::-1]


def test_each_call_is_the_sum_of_its_own_activities():
    per_call = split_calls(_timeline([[100, 50], [100, 50, 25], [7]]), 3)
    assert per_call == [(0.15, 2), (0.175, 3), (0.007, 1)]


def test_copies_and_fills_count_and_annotations_do_not():
    events = _timeline([[10]])
    events.append(DeviceEvent("Memcpy HtoD", "gpu_memcpy", 6_000, 3_000))
    events.append(DeviceEvent("Memset", "gpu_memset", 6_500, 1_000))
    events.append(DeviceEvent("cudaLaunchKernel", "cuda_runtime", 6_000, 50_000))
    assert split_calls(events, 1) == [(0.014, 3)]


def test_a_record_without_every_marker_is_unavailable_not_a_guess():
    with pytest.raises(GpuTimeUnavailable, match="2 of 3 marker kernels"):
        split_calls(_timeline([[10]]), 2)


def test_gpu_time_median_and_spread():
    gpu = GpuTime((2.0, 1.0, 1.1), (5, 5, 5))
    assert gpu.median == 1.1 and gpu.spread == pytest.approx(1.0 / 1.1)


def test_no_gpu_time_on_the_cpu_or_when_none_is_asked():
    assert gpu_times({"a": lambda: None}, torch.device("cpu")) == {}
    assert gpu_times({"a": lambda: None}, torch.device("cpu"), 0) == {}


def test_calls_are_profiled_in_turn_and_each_model_gets_its_own(monkeypatch):
    """gpu_times launches the models interleaved (a, b, a, b) and hands each its own calls back."""
    from bertbench.measure import gpu_time

    launched = []

    class Profile:
        profiler = None

    class Session:
        def __enter__(self):
            return Profile

        def __exit__(self, *exc):
            return False

    durations = {"a": 10, "b": 20}
    monkeypatch.setattr(gpu_time, "profiled", lambda activities: Session())
    monkeypatch.setattr(gpu_time.torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(gpu_time.torch.cuda, "_sleep", lambda cycles: launched.append("marker"))
    monkeypatch.setattr(
        gpu_time, "_device_events", lambda prof: _timeline([[durations[n]] for n in launched if n != "marker"])
    )
    calls = {"a": lambda: launched.append("a"), "b": lambda: launched.append("b")}
    out = gpu_times(calls, torch.device("cuda"), 2)
    assert [n for n in launched if n != "marker"] == ["a", "b", "a", "b"]
    assert out["a"].calls_ms == (0.01, 0.01) and out["b"].calls_ms == (0.02, 0.02)
