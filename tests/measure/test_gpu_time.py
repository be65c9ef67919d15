"""GPU time from the device's activity record: one call's kernels between its two markers, each
activity counted once, annotations and whatever ran outside a bracket never. The profiler itself
needs a GPU (tests/test_gpu.py)."""

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


def _timeline(calls: list[list[int]], between: int = 0) -> list[DeviceEvent]:
    """A marker before and after each call's kernels (durations in µs), an annotation spanning each
    call, and `between` µs of a kernel outside the brackets after each call, listed out of order."""
    events, t = [], 0
    for durations in calls:
        events.append(DeviceEvent(f"void at::cuda::{MARKER}(long)", "kernel", t, 1_000))
        t += 5_000
        start = t
        for d in durations:
            events.append(DeviceEvent("ampere_fp16_gemm", "kernel", t, d * 1_000))
            t += d * 1_000 + 2_000
        events.append(DeviceEvent("bertbench call", "gpu_user_annotation", start, t - start))
        events.append(DeviceEvent(MARKER, "kernel", t, 1_000))
        t += 2_000
        if between:
            events.append(DeviceEvent("warm-up gemm", "kernel", t, between * 1_000))
            t += between * 1_000 + 2_000
    return events[::-1]


def test_each_call_is_the_sum_of_its_own_activities():
    per_call = split_calls(_timeline([[100, 50], [100, 50, 25], [7]]), 3)
    assert per_call == [(0.15, 2), (0.175, 3), (0.007, 1)]


def test_what_runs_outside_a_calls_brackets_is_no_calls():
    assert split_calls(_timeline([[100], [50]], between=900), 2) == [(0.1, 1), (0.05, 1)]


def test_copies_and_fills_count_and_annotations_do_not():
    events = _timeline([[10]])
    events.append(DeviceEvent("Memcpy HtoD", "gpu_memcpy", 6_000, 3_000))
    events.append(DeviceEvent("Memset", "gpu_memset", 6_500, 1_000))
    events.append(DeviceEvent("cudaLaunchKernel", "cuda_runtime", 6_000, 50_000))
    assert split_calls(events, 1) == [(0.014, 3)]


def test_a_record_without_every_marker_is_unavailable_not_a_guess():
    with pytest.raises(GpuTimeUnavailable, match="2 of 4 marker kernels"):
        split_calls(_timeline([[10]]), 2)


def test_gpu_time_median_and_spread():
    gpu = GpuTime((2.0, 1.0, 1.1), (5, 5, 5))
    assert gpu.median == 1.1 and gpu.spread == pytest.approx(1.0 / 1.1)


def test_no_gpu_time_on_the_cpu_or_when_none_is_asked():
    assert gpu_times({"a": lambda: None}, torch.device("cpu")) == {}
    assert gpu_times({"a": lambda: None}, torch.device("cpu"), 0) == {}


class _FakeProfiler:
    """Stands in for the profiler: each session records what was launched inside it, and the
    device's record of a session is a timeline of those calls with the durations `durations`
    gives each model's n-th call (µs)."""

    def __init__(self, monkeypatch, durations: dict[str, list[int]]):
        from bertbench.measure import gpu_time

        self.sessions: list[list[str]] = []
        self.durations = durations
        made: dict[str, int] = {}
        fake = self

        class Session:
            def __enter__(self):
                fake.sessions.append([])
                return self

            def __exit__(self, *exc):
                return False

        def device_events(prof):
            calls = []
            for name in fake.sessions[-1]:
                if name != "marker":
                    calls.append([fake.durations[name][made.get(name, 0)]])
                    made[name] = made.get(name, 0) + 1
            return _timeline(calls)

        monkeypatch.setattr(gpu_time, "profiled", lambda activities: Session())
        monkeypatch.setattr(gpu_time.torch.cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(gpu_time.torch.cuda, "_sleep", lambda cycles: fake.sessions[-1].append("marker"))
        monkeypatch.setattr(gpu_time, "_device_events", device_events)
        self.calls = {name: (lambda n=name: fake.sessions[-1].append(n)) for name in durations}

    def launched(self) -> list[list[str]]:
        return [[n for n in session if n != "marker"] for session in self.sessions]


def test_calls_are_profiled_in_turn_and_each_model_gets_its_own(monkeypatch):
    """gpu_times launches the models interleaved (a, b, a, b) and hands each its own calls back."""
    fake = _FakeProfiler(monkeypatch, {"a": [10, 10], "b": [20, 20]})
    out = gpu_times(fake.calls, torch.device("cuda"), 2)
    assert fake.launched() == [["a", "b", "a", "b"]]
    assert out["a"].calls_ms == (0.01, 0.01) and out["b"].calls_ms == (0.02, 0.02)


def test_two_calls_that_agree_settle_the_figure_and_no_third_is_made(monkeypatch):
    fake = _FakeProfiler(monkeypatch, {"a": [1000, 1005], "b": [2000, 2010]})
    out = gpu_times(fake.calls, torch.device("cuda"), 3)
    assert fake.launched() == [["a", "b", "a", "b"]]
    assert out["a"].median == pytest.approx(1.0025) and out["b"].calls_ms == (2.0, 2.01)


def test_a_model_whose_two_calls_disagree_gets_a_third_in_a_session_of_its_own(monkeypatch):
    """The median of three: b's calls 2.0 and 2.2 ms differ by 10 %, a third of 2.01 ms settles it."""
    fake = _FakeProfiler(monkeypatch, {"a": [1000, 1000], "b": [2000, 2200, 2010]})
    out = gpu_times(fake.calls, torch.device("cuda"), 3)
    assert fake.launched() == [["a", "b", "a", "b"], ["b"]]
    assert out["a"].calls_ms == (1.0, 1.0)
    assert out["b"].calls_ms == (2.0, 2.2, 2.01) and out["b"].median == 2.01


def test_more_calls_are_made_only_while_they_disagree_and_never_past_the_count(monkeypatch):
    fake = _FakeProfiler(monkeypatch, {"a": [1000, 1300, 1100, 1000, 1000, 999], "b": [500, 700, 900, 1100, 1300]})
    out = gpu_times(fake.calls, torch.device("cuda"), 5)
    assert fake.launched() == [["a", "b", "a", "b"], ["a", "b"], ["a", "b"], ["a", "b"]]
    assert len(out["a"].calls_ms) == 5 and len(out["b"].calls_ms) == 5
    assert out["a"].median == 1.0


def test_calls_profiled_already_count_and_only_what_is_missing_is_profiled(monkeypatch):
    """variants.measure's session holds each model's observed and refill calls: a model whose two
    agree gets no call here, one whose two disagree a third, one with a single call a second."""
    fake = _FakeProfiler(monkeypatch, {"a": [], "b": [2010], "c": [3000, 3000]})
    already = {"a": [(1.0, 5), (1.001, 5)], "b": [(2.0, 5), (2.2, 5)], "c": [(3.0, 5)]}
    out = gpu_times(fake.calls, torch.device("cuda"), 3, already)
    assert fake.launched() == [["b", "c"]]
    assert out["a"].calls_ms == (1.0, 1.001) and out["b"].median == 2.01 and out["c"].calls_ms == (3.0, 3.0)


def test_a_session_leaves_out_a_call_that_raised_and_reads_the_others(monkeypatch):
    from bertbench.measure.gpu_time import Session

    fake = _FakeProfiler(monkeypatch, {"a": [1000, 1000], "b": [2000]})
    session = Session(torch.device("cuda"))
    session.call("a", fake.calls["a"])

    def broken():
        fake.calls["b"]()
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        session.call("b", broken)
    session.call("a", fake.calls["a"])
    assert session.close() == {"a": [(1.0, 1), (1.0, 1)]}


def test_a_paused_session_reads_each_stretch_and_close_gives_them_all(monkeypatch):
    """pause() stops the profiler between calls (attention_kernels' profiler runs then); the next
    call starts a new one, and close() hands back every stretch's calls in order."""
    from bertbench.measure import gpu_time
    from bertbench.measure.gpu_time import GpuTimeUnavailable, Session

    fake = _FakeProfiler(monkeypatch, {"a": [1000, 3000], "b": [2000]})
    session = Session(torch.device("cuda"))
    session.call("a", fake.calls["a"])
    session.pause()
    session.pause()  # nothing recording: nothing to read
    session.call("b", fake.calls["b"])
    session.call("a", fake.calls["a"])
    assert session.close() == {"a": [(1.0, 1), (3.0, 1)], "b": [(2.0, 1)]}
    assert fake.launched() == [["a"], ["b", "a"]]

    def unreadable(prof):
        raise GpuTimeUnavailable("the profiler recorded 1 of 2 marker kernels")

    session = Session(torch.device("cuda"))
    session.call("a", fake.calls["a"])
    monkeypatch.setattr(gpu_time, "_device_events", unreadable)
    session.pause()  # amid a model's calls: never raises there
    with pytest.raises(GpuTimeUnavailable, match="1 of 2 marker"):
        session.close()


def test_a_count_of_one_profiles_one_call_of_each(monkeypatch):
    fake = _FakeProfiler(monkeypatch, {"a": [1000], "b": [3000]})
    out = gpu_times(fake.calls, torch.device("cuda"), 1)
    assert fake.launched() == [["a", "b"]]
    assert out["b"].calls_ms == (3.0,)


def test_the_record_keeps_the_devices_kernels_copies_and_fills_and_reads_no_other_name():
    from bertbench.measure.gpu_time import _device_events

    class Event:
        def __init__(self, name, activity):
            self._name, self._activity = name, activity

        def activity_type(self):
            return self._activity

        def name(self):
            if self._activity not in ("kernel", "gpu_memcpy", "gpu_memset"):
                raise AssertionError(f"read the name of a {self._activity} event")
            return self._name

        def start_ns(self):
            return 1

        def duration_ns(self):
            return 2

    class Prof:
        class profiler:
            class kineto_results:
                @staticmethod
                def events():
                    return [
                        Event("cudaLaunchKernel", "cuda_runtime"),
                        Event("gemm", "kernel"),
                        Event("call", "gpu_user_annotation"),
                        Event("Memcpy HtoD", "gpu_memcpy"),
                        Event("Memset", "gpu_memset"),
                        Event("aten::add", "cpu_op"),
                    ]

    assert [(e.name, e.activity) for e in _device_events(Prof)] == [
        ("gemm", "kernel"),
        ("Memcpy HtoD", "gpu_memcpy"),
        ("Memset", "gpu_memset"),
    ]
