"""The SM clock and its slowing reasons per row, read through an NVML stand-in."""

from __future__ import annotations

import types

from bertbench.measure.clock import IDLE, ClockSample, ClockWatch, summarize


def test_a_steady_clock_is_not_throttled():
    summary = summarize([ClockSample(1980, 0, 1980), ClockSample(1965, 0, 1980), ClockSample(1980, 0, 1980)])
    assert summary.median_mhz == 1980 and not summary.throttled and summary.reasons_text == ""


def test_a_power_cap_reason_marks_the_row_and_is_named():
    summary = summarize([ClockSample(1980, 0, 1980), ClockSample(1965, 0x4 | IDLE, 1980)])
    assert summary.throttled and summary.reasons_text == "0x4"  # idle is not a slowing reason


def test_a_clock_below_90_percent_is_throttled_unless_the_gpu_was_idle():
    assert summarize([ClockSample(1695, 0, 1980)]).throttled
    assert not summarize([ClockSample(345, IDLE, 1980)]).throttled


def test_no_samples_no_figures():
    summary = summarize([])
    assert summary.median_mhz is None and not summary.throttled


class FakeNvml(types.SimpleNamespace):
    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    def __init__(self, clocks, reasons, fail_open=False):
        super().__init__(clocks=list(clocks), reasons=reasons, fail_open=fail_open, shut=False)

    def nvmlInit(self):
        if self.fail_open:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        assert isinstance(uuid, bytes)
        return "handle"

    def nvmlDeviceGetHandleByIndex(self, index):
        return "handle"

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return self.clocks.pop(0)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):  # older nvidia-ml-py names it so
        return self.reasons

    def nvmlShutdown(self):
        self.shut = True


def test_the_watch_reads_clock_reasons_and_the_maximum():
    nvml = FakeNvml([1980, 1700], 0x4)
    watch = ClockWatch("GPU-123", nvml=nvml)
    assert watch.available and watch.max_mhz == 1980
    assert watch.sample() == ClockSample(1980, 0x4, 1980)
    assert watch.sample().sm_mhz == 1700
    watch.close()
    assert nvml.shut and watch.sample() is None


def test_a_gpu_whose_clock_cannot_be_read_leaves_the_columns_empty_with_the_reason():
    watch = ClockWatch(nvml=FakeNvml([], 0, fail_open=True))
    assert not watch.available and watch.sample() is None
    assert "Driver Not Loaded" in watch.reason


def test_newer_nvml_names_the_reasons_clocks_events():
    nvml = FakeNvml([1965], 0)
    nvml.nvmlDeviceGetCurrentClocksEventReasons = lambda handle: 0x20
    assert ClockWatch(nvml=nvml).sample() == ClockSample(1965, 0x20, 1980)
