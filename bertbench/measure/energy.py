"""Energy per token: the GPU's own energy counter read around a stretch of timed calls.

NVML keeps a running total of the board's energy since the driver loaded
(nvmlDeviceGetTotalEnergyConsumption, millijoules, Volta and newer). Two reads around a
stretch of calls give its joules, and joules / tokens is the energy cost of a token, which a
faster kernel need not improve (it may draw more power). The reading covers the whole board,
idle draw included, for the wall time between the reads: the caller should pass `sync` so
queued kernels finish inside the window and none of another stretch leak into it.

A reading is marked unavailable, with why, rather than given where it cannot be trusted:
  - pynvml (the nvidia-ml-py package) is missing, or NVML or the counter answers an error
    (NVML_ERROR_NOT_SUPPORTED on boards and virtual GPUs without it);
  - the window is shorter than MIN_WINDOW_S: the counter moves in steps, every 100 ms on
    an H100 (polled under load: 24 updates 97-103 ms apart; Yang et al., "Part-time
    Power Measurements", arXiv 2312.02741, found A100 and H100 power averaged over 25 ms of
    each 100 ms), so a window of one second holds ten updates and a step either side moves
    the result by about 10 % at most; a shorter window mostly measures the step;
  - the energy is not positive (the counter did not advance: a stale or frozen counter);
  - the mean power is above POWER_LIMIT_MARGIN x the board's enforced power limit
    (nvmlDeviceGetEnforcedPowerLimit), which a board does not sustain: the counter or the
    clock is wrong.
The counter and the clock are injectable, so that every rule is tested without a GPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

MIN_WINDOW_S = 1.0
POWER_LIMIT_MARGIN = 1.1


class CounterUnavailable(RuntimeError):
    """The energy counter cannot be read here; the message says why."""


class EnergyCounter(Protocol):
    def total_energy_mj(self) -> int:
        """The board's energy since the driver loaded, millijoules; raises CounterUnavailable."""
        ...

    def power_limit_w(self) -> float | None:
        """The board's enforced power limit in watts, or None when it cannot be read."""
        ...


def import_nvml() -> ModuleType:
    """pynvml, from the optional package nvidia-ml-py; CounterUnavailable where it is missing."""
    try:
        import pynvml
    except ImportError as e:
        raise CounterUnavailable(f"pynvml is not installed (pip install nvidia-ml-py): {e}") from e
    return pynvml


def open_gpu(nvml: ModuleType, device_index: int = 0, uuid: str | None = None):
    """NVML started and the GPU's handle: by `uuid` where given (see NvmlCounter), else by index.
    Raises nvml.NVMLError."""
    nvml.nvmlInit()
    if uuid is not None:
        return nvml.nvmlDeviceGetHandleByUUID(uuid.encode())  # bytes: every pynvml takes them
    return nvml.nvmlDeviceGetHandleByIndex(device_index)


class NvmlCounter:
    """One GPU's NVML energy counter.

    device_index is NVML's index, which is CUDA's only where CUDA_VISIBLE_DEVICES does not
    reorder or hide GPUs; `uuid` (NVML's form, "GPU-" + str(torch.cuda.get_device_properties(i).uuid))
    names the same GPU in both, and wins where given.
    """

    def __init__(self, device_index: int = 0, uuid: str | None = None, nvml: ModuleType | None = None):
        self.nvml = nvml if nvml is not None else import_nvml()
        try:
            self.handle = open_gpu(self.nvml, device_index, uuid)
        except self.nvml.NVMLError as e:
            raise CounterUnavailable(f"NVML could not open GPU {uuid or device_index}: {e}") from e

    def total_energy_mj(self) -> int:
        try:
            return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.nvml.NVMLError as e:
            raise CounterUnavailable(f"the GPU's total-energy counter cannot be read: {e}") from e

    def power_limit_w(self) -> float | None:
        try:
            return self.nvml.nvmlDeviceGetEnforcedPowerLimit(self.handle) / 1000
        except self.nvml.NVMLError:
            return None

    def close(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


@dataclass(frozen=True)
class EnergyReading:
    """The energy of one window of calls; joules and power are None unless status is ok."""

    joules: float | None
    seconds: float
    mean_power_w: float | None
    status: str  # ok or unavailable
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def joules_per_1k_tokens(self, tokens_per_call: int, calls: int) -> float | None:
        """Joules per thousand tokens for `calls` calls of `tokens_per_call` tokens each (real
        tokens, so padding is paid for, not credited), or None where the reading is not ok."""
        if self.joules is None or tokens_per_call <= 0 or calls <= 0:
            return None
        return self.joules / (tokens_per_call * calls) * 1000

    @classmethod
    def unavailable(cls, seconds: float, detail: str) -> EnergyReading:
        return cls(None, seconds, None, "unavailable", detail)


class EnergyMeter:
    """Reads the energy counter at start() and stop(); also a context manager whose `reading`
    is set on exit.

    Without a counter it opens NVML's for device_index; where that fails the meter still
    times its windows, and every reading is unavailable with the reason.
    """

    def __init__(
        self,
        device_index: int = 0,
        *,
        uuid: str | None = None,
        counter: EnergyCounter | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sync: Callable[[], None] | None = None,
        min_window_s: float = MIN_WINDOW_S,
    ):
        self.clock, self.sync, self.min_window_s = clock, sync, min_window_s
        self.reason: str | None = None
        self.counter = counter
        if counter is None:
            try:
                self.counter = NvmlCounter(device_index, uuid)
            except CounterUnavailable as e:
                self.reason = str(e)
        self._start: tuple[float, int | None] | None = None
        self.reading: EnergyReading | None = None

    def _read(self) -> int | None:
        if self.reason is not None or self.counter is None:
            return None
        try:
            return self.counter.total_energy_mj()
        except CounterUnavailable as e:
            self.reason = str(e)
            return None

    def start(self) -> None:
        if self.sync is not None:
            self.sync()
        energy = self._read()
        self._start = (self.clock(), energy)

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise RuntimeError("EnergyMeter.stop() before start()")
        if self.sync is not None:
            self.sync()
        energy = self._read()
        seconds = self.clock() - self._start[0]
        start_energy, self._start = self._start[1], None
        if self.reason is not None or start_energy is None or energy is None:
            return EnergyReading.unavailable(seconds, self.reason or "the energy counter could not be read")
        return self._judge((energy - start_energy) / 1000, seconds)

    def _judge(self, joules: float, seconds: float) -> EnergyReading:
        if seconds < self.min_window_s:
            return EnergyReading.unavailable(
                seconds,
                f"window of {seconds * 1e3:.0f} ms is shorter than {self.min_window_s * 1e3:.0f} ms: "
                "the counter moves in 100 ms steps, too coarse for it",
            )
        if joules <= 0:
            return EnergyReading.unavailable(seconds, f"the energy counter did not advance ({joules:.3f} J)")
        power = joules / seconds
        limit = self.counter.power_limit_w() if self.counter is not None else None
        if limit is not None and power > POWER_LIMIT_MARGIN * limit:
            return EnergyReading.unavailable(
                seconds,
                f"mean power {power:.0f} W is above {POWER_LIMIT_MARGIN} x the board's {limit:.0f} W limit: "
                "the counter cannot be trusted",
            )
        return EnergyReading(joules, seconds, power, "ok", f"{joules:.2f} J over {seconds:.2f} s")

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.reading = self.stop()

    def close(self) -> None:
        close = getattr(self.counter, "close", None)
        if close is not None:
            close()
