"""variants.measure: every model's last untimed call gives its memory, kernels and output."""

import math
from typing import ClassVar

import torch

from bertbench.measure import variants
from bertbench.measure.failures import Failure
from bertbench.measure.variants import LOOP, Outcome, measure
from bertbench.spec.config import TimingPlan

CPU = torch.device("cpu")
PLAN = TimingPlan(warmup=2, num_batches=4, min_batches=1, budget_ms=None)


def counting(calls: dict[str, int], name: str, fail_at: int | None = None):
    def run():
        calls[name] += 1
        if calls[name] == fail_at:
            raise RuntimeError(f"{name} broke")
        return calls[name]

    return run


def test_no_call_beyond_warm_up_and_timing_and_known_kernels_are_not_profiled(monkeypatch):
    profiled = []

    def under_profiler(fn):
        profiled.append(fn)
        return fn(), "sdpa_fake_attention"

    monkeypatch.setattr(variants, "attention_kernels", under_profiler)
    calls = {"baseline": 0, "cached": 0, "new": 0}
    known = {"baseline": "", "cached": "sdpa_flash_attention"}
    out = measure(LOOP, {n: counting(calls, n) for n in calls}, CPU, PLAN, known_kernels=known)
    assert calls == {"baseline": 6, "cached": 6, "new": 6}  # 2 untimed + 4 timed each, nothing after
    assert all(isinstance(o, Outcome) and o.latency.count == 4 for o in out.values())
    assert len(profiled) == 1  # only the model whose kernels were not known
    assert [out[n].kernels for n in calls] == ["", "sdpa_flash_attention", "sdpa_fake_attention"]
    assert all(out[n].output == 2 for n in calls)  # the second, observed call's output
    assert math.isnan(out["new"].memory.allocated_mb)  # no allocator statistics on the CPU


def test_a_model_failing_in_its_observed_call_is_a_failure_and_the_others_go_on():
    calls = {"a": 0, "b": 0}
    out = measure(LOOP, {"a": counting(calls, "a", fail_at=2), "b": counting(calls, "b")}, CPU, PLAN, known_kernels={})
    assert isinstance(out["a"], Failure) and "a broke" in out["a"].detail
    assert isinstance(out["b"], Outcome) and out["b"].latency.count == 4 and calls == {"a": 2, "b": 6}


def test_a_model_whose_kernels_are_not_known_pauses_the_session_and_costs_the_others_no_call(monkeypatch):
    """GPU, where b's attention kernels are not yet known: the session pauses for the profiler of
    attention_kernels in b's observed call (two profilers cannot run at once), then holds both
    refill calls. a's observed and refill calls are its two profiled calls; b, with one, gets one
    more of its own from gpu_times. A profiler that fails leaves the row its reason, and the
    memory it released is refilled by a single call of each."""
    from bertbench.measure import timing
    from bertbench.measure.gpu_time import GpuTime

    monkeypatch.setattr(timing, "refills_pool", lambda device: True)
    monkeypatch.setattr(variants, "Session", _FakeSession)
    _FakeSession.sessions = []

    def kernels_read(fn):
        assert not any(s.running for s in _FakeSession.sessions)  # the session is paused
        return fn(), "sdpa_fake_attention"

    monkeypatch.setattr(variants, "attention_kernels", kernels_read)
    calls = {"a": 0, "b": 0}
    given = []

    def fake_gpu_times(live, device, count, profiled_already=None):
        given.append({n: len(m) for n, m in profiled_already.items()})
        for name, call in live.items():  # what is missing of the count's first two calls
            for _ in range(2 - len(profiled_already.get(name, []))):
                call()
        return {n: GpuTime((1.0, 1.0), (5, 5)) for n in live}

    monkeypatch.setattr(variants, "gpu_times", fake_gpu_times)
    plan = TimingPlan(warmup=1, num_batches=4, min_batches=1, budget_ms=None, gpu_calls=3)
    out = measure(LOOP, {n: counting(calls, n) for n in calls}, CPU, plan, known_kernels={"a": ""})
    (session,) = _FakeSession.sessions
    assert session.calls == ["a", "a", "b"] and session.pauses == 1 and not session.open
    assert given == [{"a": 2, "b": 1}]
    assert calls == {"a": 6, "b": 7}  # 1 observed + 1 refill (+ b's own profiled call) + 4 timed
    assert [out[n].kernels for n in calls] == ["", "sdpa_fake_attention"]
    assert all(o.gpu.median == 1.0 and o.gpu_note == "" for o in out.values())

    def broken(live, device, count, profiled_already=None):
        raise RuntimeError("no markers")

    monkeypatch.setattr(variants, "gpu_times", broken)
    calls.update(a=0, b=0)
    out = measure(LOOP, {n: counting(calls, n) for n in calls}, CPU, plan, known_kernels={"a": ""})
    assert calls == {"a": 7, "b": 7}  # 1 observed + the session's refill + the single refill + 4 timed
    assert all(o.gpu is None and o.gpu_note == "GPU time unavailable: RuntimeError: no markers" for o in out.values())


class _FakeSession:
    """Stands in for gpu_time.Session: records which model each bracketed call was and whether
    the session was still open when the timed calls began."""

    sessions: ClassVar[list["_FakeSession"]] = []

    def __init__(self, device):
        self.calls: list[str] = []
        self.open = True
        self.running = False  # a profiler is recording (between a call and a pause)
        self.pauses = 0
        _FakeSession.sessions.append(self)

    def call(self, name, fn):
        assert self.open
        self.running = True
        self.calls.append(name)
        return fn()

    def pause(self):
        self.running = False
        self.pauses += 1

    def close(self):
        self.open = self.running = False
        found: dict[str, list[tuple[float, int]]] = {}
        for name in self.calls:
            found.setdefault(name, []).append((1.0, 5))
        return found

    def discard(self):
        self.open = self.running = False


def test_where_every_models_kernels_are_known_its_observed_and_refill_calls_are_its_profiled_calls(monkeypatch):
    """One session holds each model's observed call and its refill call (a, b, a, b); gpu_times gets
    them and profiles only what is missing; the session is closed before the first timed call."""
    from bertbench.measure import timing
    from bertbench.measure.gpu_time import GpuTime

    monkeypatch.setattr(timing, "refills_pool", lambda device: True)
    monkeypatch.setattr(variants, "Session", _FakeSession)
    _FakeSession.sessions = []
    calls = {"a": 0, "b": 0}
    given = []

    def fake_gpu_times(live, device, count, profiled_already=None):
        assert all(not s.open for s in _FakeSession.sessions)
        given.append((dict(live), profiled_already))
        return {n: GpuTime((1.0, 1.0), (5, 5)) for n in live}

    def timed_call(name):
        def run():
            assert all(not s.open for s in _FakeSession.sessions) or calls[name] < 2
            calls[name] += 1

        return run

    monkeypatch.setattr(variants, "gpu_times", fake_gpu_times)
    plan = TimingPlan(warmup=1, num_batches=4, min_batches=1, budget_ms=None, gpu_calls=3)
    out = measure(LOOP, {n: timed_call(n) for n in calls}, CPU, plan, known_kernels={"a": "", "b": "x"})
    (session,) = _FakeSession.sessions
    assert session.calls == ["a", "b", "a", "b"] and not session.open
    assert calls == {"a": 6, "b": 6}  # 1 observed + 1 refill + 4 timed: the GPU time made no call of its own
    ((live, already),) = given
    assert set(live) == {"a", "b"} and {n: len(m) for n, m in already.items()} == {"a": 2, "b": 2}
    assert all(isinstance(o, Outcome) and o.gpu_note == "" for o in out.values())


def test_a_session_whose_refill_call_fails_is_closed_before_the_timed_calls(monkeypatch):
    from bertbench.measure import timing

    monkeypatch.setattr(timing, "refills_pool", lambda device: True)
    monkeypatch.setattr(variants, "Session", _FakeSession)
    _FakeSession.sessions = []
    calls = {"a": 0, "b": 0}
    plan = TimingPlan(warmup=1, num_batches=4, min_batches=1, budget_ms=None, gpu_calls=3)

    def run_b():
        assert calls["b"] < 2 or not _FakeSession.sessions[0].open
        calls["b"] += 1

    out = measure(LOOP, {"a": counting(calls, "a", fail_at=2), "b": run_b}, CPU, plan, known_kernels={"a": "", "b": ""})
    assert not _FakeSession.sessions[0].open
    assert calls == {"a": 7, "b": 6}  # observed, refill (a broke there, before b made its), single refill, 4 timed
    assert all(o.gpu is None and o.gpu_note == "GPU time unavailable: RuntimeError: a broke" for o in out.values())
