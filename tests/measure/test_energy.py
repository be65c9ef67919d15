"""Energy readings from a fake NVML counter and a fake clock: each rule that marks a reading
unavailable, and the real pynvml path where the package is missing."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from bertbench.measure import energy
from bertbench.measure.energy import CounterUnavailable, EnergyMeter, EnergyReading, NvmlCounter


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeNvmlError(Exception):
    pass


class FakeNvml:
    """The few pynvml calls the counter makes; the energy advances with the fake clock."""

    NVMLError = FakeNvmlError

    def __init__(self, clock: FakeClock, watts: float = 300.0, limit_mw: int = 700_000, energy_error: str = ""):
        self.clock, self.watts, self.limit_mw, self.energy_error = clock, watts, limit_mw, energy_error
        self.opened: list = []
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetHandleByIndex(self, index):
        self.opened.append(index)
        return SimpleNamespace(index=index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.opened.append(uuid)
        return SimpleNamespace(uuid=uuid)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy_error:
            raise FakeNvmlError(self.energy_error)
        return int(5_000_000 + self.clock.now * self.watts * 1000)  # millijoules since the driver loaded

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        if self.limit_mw is None:
            raise FakeNvmlError("Not Supported")
        return self.limit_mw


def meter(nvml: FakeNvml, clock: FakeClock, **kwargs) -> EnergyMeter:
    return EnergyMeter(counter=NvmlCounter(1, nvml=nvml), clock=clock, **kwargs)


def test_an_ok_reading_gives_joules_power_and_joules_per_token():
    clock = FakeClock()
    nvml = FakeNvml(clock, watts=250.0)
    syncs = []
    m = meter(nvml, clock, sync=lambda: syncs.append(clock.now))
    m.start()
    clock.now += 2.0
    reading = m.stop()
    assert reading.status == "ok" and reading.ok
    assert reading.joules == pytest.approx(500.0) and reading.seconds == pytest.approx(2.0)
    assert reading.mean_power_w == pytest.approx(250.0)
    assert reading.joules_per_1k_tokens(tokens_per_call=1000, calls=50) == pytest.approx(10.0)
    assert syncs == [100.0, 102.0]  # the device is waited for at both ends of the window
    assert nvml.opened == [1]
    m.close()
    assert nvml.shut


def test_the_context_manager_sets_the_reading():
    clock = FakeClock()
    with meter(FakeNvml(clock), clock) as m:
        clock.now += 1.5
    assert m.reading.status == "ok" and m.reading.joules == pytest.approx(450.0)


def test_a_window_shorter_than_the_minimum_is_unavailable():
    clock = FakeClock()
    m = meter(FakeNvml(clock), clock)
    m.start()
    clock.now += 0.2
    reading = m.stop()
    assert reading.status == "unavailable" and reading.joules is None and reading.mean_power_w is None
    assert "200 ms" in reading.detail and "1000 ms" in reading.detail
    assert reading.seconds == pytest.approx(0.2)
    assert reading.joules_per_1k_tokens(100, 10) is None
    m = meter(FakeNvml(clock), clock, min_window_s=0.1)
    m.start()
    clock.now += 0.2
    assert m.stop().ok  # the minimum is a parameter


def test_power_above_the_boards_limit_is_unavailable():
    clock = FakeClock()
    m = meter(FakeNvml(clock, watts=800.0, limit_mw=700_000), clock)
    m.start()
    clock.now += 2.0
    reading = m.stop()
    assert reading.status == "unavailable" and "800 W" in reading.detail and "700 W" in reading.detail
    m = meter(FakeNvml(clock, watts=760.0, limit_mw=700_000), clock)  # within the 10 % margin
    m.start()
    clock.now += 2.0
    assert m.stop().ok


def test_an_unreadable_power_limit_skips_that_check():
    clock = FakeClock()
    m = meter(FakeNvml(clock, watts=5000.0, limit_mw=None), clock)
    m.start()
    clock.now += 1.0
    assert m.stop().ok


def test_a_counter_that_does_not_advance_is_unavailable():
    clock = FakeClock()
    m = meter(FakeNvml(clock, watts=0.0), clock)
    m.start()
    clock.now += 3.0
    reading = m.stop()
    assert reading.status == "unavailable" and "did not advance" in reading.detail


def test_an_unsupported_counter_is_unavailable_with_nvmls_reason():
    clock = FakeClock()
    m = meter(FakeNvml(clock, energy_error="Not Supported"), clock)
    m.start()
    clock.now += 2.0
    reading = m.stop()
    assert reading.status == "unavailable" and reading.seconds == pytest.approx(2.0)
    assert "total-energy counter" in reading.detail and "Not Supported" in reading.detail


def test_a_gpu_nvml_cannot_open_is_unavailable():
    clock = FakeClock()
    nvml = FakeNvml(clock)

    def refuse(index):
        raise FakeNvmlError("Invalid Argument")

    nvml.nvmlDeviceGetHandleByIndex = refuse
    with pytest.raises(CounterUnavailable, match="GPU 3: Invalid Argument"):
        NvmlCounter(3, nvml=nvml)


def test_a_uuid_names_the_gpu_instead_of_the_index():
    clock = FakeClock()
    nvml = FakeNvml(clock)
    NvmlCounter(0, uuid="GPU-1234", nvml=nvml)
    assert nvml.opened == [b"GPU-1234"]


def test_without_pynvml_every_reading_is_unavailable_and_still_timed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with pytest.raises(CounterUnavailable, match="nvidia-ml-py"):
        energy.import_nvml()
    clock = FakeClock()
    m = EnergyMeter(0, clock=clock)
    m.start()
    clock.now += 2.0
    reading = m.stop()
    assert reading.status == "unavailable" and "pynvml is not installed" in reading.detail
    assert reading.seconds == pytest.approx(2.0)
    m.close()


def test_stop_before_start_is_a_mistake():
    clock = FakeClock()
    with pytest.raises(RuntimeError, match="before start"):
        meter(FakeNvml(clock), clock).stop()


def test_joules_per_token_needs_tokens():
    reading = EnergyReading(10.0, 2.0, 5.0, "ok", "")
    assert reading.joules_per_1k_tokens(0, 10) is None and reading.joules_per_1k_tokens(10, 0) is None
    assert reading.joules_per_1k_tokens(500, 4) == pytest.approx(5.0)


def test_on_a_gpu_with_pynvml_a_busy_second_reads_plausibly():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    try:
        energy.import_nvml()
    except CounterUnavailable as e:
        pytest.skip(str(e))
    x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    with EnergyMeter(torch.cuda.current_device(), sync=torch.cuda.synchronize) as m:
        deadline = m.clock() + 1.2
        while m.clock() < deadline:
            for _ in range(20):
                x = (x @ x).clamp_(-1, 1)
            torch.cuda.synchronize()
    print(m.reading)
    assert m.reading.ok, m.reading.detail
    assert 30 < m.reading.mean_power_w < 1000
