"""The GPU's SM clock and why it was held down, read (NVML) after every round of timed calls.

Under the board's power cap an H200's SM clock drops from 1980 MHz to 1695-1965 MHz for
seconds at a time (throttle reason 0x4), and fused kernels read 2-8 % slower in such a
spell. Rather than time long enough to average it away, every row records the median clock
over its rounds, the reasons seen, and a `throttled` flag.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from bertbench.measure.energy import CounterUnavailable, import_nvml, open_gpu

# NVML's clocks-event (throttle) reasons that slow the clock: software power cap 0x4,
# hardware slowdown 0x8, software thermal 0x20, hardware thermal 0x40, power brake 0x80.
# Idle (0x1), an applications-clock setting (0x2) and sync boost (0x10) are left out.
SLOWING = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
IDLE = 0x1
THROTTLED_SHARE = 0.9  # a clock below this share of the maximum, the GPU not idle, is throttled


@dataclass(frozen=True)
class ClockSample:
    sm_mhz: int
    reasons: int  # NVML's clocks-event reasons bitmask at the sample
    max_mhz: int | None = None  # the board's maximum SM clock


@dataclass(frozen=True)
class ClockSummary:
    """The clock over one model's rounds (or two models' together)."""

    median_mhz: float | None
    reasons: int  # the slowing reasons seen, OR-ed
    throttled: bool

    @property
    def reasons_text(self) -> str:
        return f"{self.reasons:#x}" if self.reasons else ""


def summarize(samples: Iterable[ClockSample]) -> ClockSummary:
    samples = list(samples)
    if not samples:
        return ClockSummary(None, 0, False)
    reasons = 0
    for s in samples:
        reasons |= s.reasons & SLOWING
    low = any(s.max_mhz and s.sm_mhz < THROTTLED_SHARE * s.max_mhz and not s.reasons & IDLE for s in samples)
    return ClockSummary(statistics.median(s.sm_mhz for s in samples), reasons, bool(reasons) or low)


class ClockWatch:
    """One GPU's SM clock through NVML. `sample()` is None where NVML cannot be read (no
    nvidia-ml-py, a virtual GPU without clocks): the row's clock columns stay empty."""

    def __init__(self, uuid: str | None = None, device_index: int = 0, nvml: ModuleType | None = None):
        self.nvml = None
        self.max_mhz: int | None = None
        self.reason = ""
        try:
            nvml = nvml if nvml is not None else import_nvml()
            self.handle = open_gpu(nvml, device_index, uuid)
            self.max_mhz = int(nvml.nvmlDeviceGetMaxClockInfo(self.handle, nvml.NVML_CLOCK_SM))
            self.nvml = nvml
            self._reasons = (
                getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
            )
        except CounterUnavailable as e:
            self.reason = str(e)
        except Exception as e:  # NVMLError and its kin: the clock is not readable here
            self.reason = f"NVML cannot read the SM clock: {e}"
            self.nvml = None  # set before the reasons' function was looked up

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def sample(self) -> ClockSample | None:
        if self.nvml is None:
            return None
        try:
            mhz = int(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_SM))
            return ClockSample(mhz, int(self._reasons(self.handle)), self.max_mhz)
        except Exception:
            return None

    def close(self) -> None:
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
            self.nvml = None


def for_device(device) -> ClockWatch | None:
    """A ClockWatch for a torch CUDA device (by UUID, which CUDA_VISIBLE_DEVICES cannot reorder);
    None on the CPU."""
    if device.type != "cuda":
        return None
    import torch

    uuid = None
    with contextlib.suppress(Exception):
        uuid = "GPU-" + str(torch.cuda.get_device_properties(device).uuid)
    return ClockWatch(uuid, device.index or 0)
