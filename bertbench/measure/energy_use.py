"""Energy per call, with --energy: each model's call repeated back to back for a window the
GPU's energy counter can resolve (energy.MIN_WINDOW_S), the counter read around the window.

A separate window after the timed rounds, not the rounds themselves: those interleave the
models and last tens of milliseconds, while the counter moves in ~100 ms steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.energy import MIN_WINDOW_S, EnergyMeter, EnergyReading


@dataclass(frozen=True)
class Energy:
    reading: EnergyReading
    calls: int  # calls inside the window

    @property
    def joules_per_call(self) -> float | None:
        return self.reading.joules / self.calls if self.reading.joules is not None else None


def measure_energy(
    calls: dict[str, Callable[[], object]], device: torch.device, mode: str, window_s: float = 1.2 * MIN_WINDOW_S
) -> dict[str, Energy]:
    """Each call repeated for at least `window_s` inside one energy reading."""
    if device.type != "cuda":
        unavailable = EnergyReading.unavailable(0.0, "energy is read from a CUDA GPU's counter (NVML)")
        return {key: Energy(unavailable, 0) for key in calls}
    meter = EnergyMeter(device.index or 0, sync=lambda: torch.cuda.synchronize(device))
    readings = {}
    try:
        with torch.inference_mode(mode == "inference"):
            for key, call in calls.items():
                count, start = 0, time.perf_counter()
                meter.start()
                while count < 3 or time.perf_counter() - start < window_s:
                    call()
                    count += 1
                    if count % 8 == 0:  # keep the host from queueing far ahead of the GPU
                        torch.cuda.synchronize(device)
                readings[key] = Energy(meter.stop(), count)
    finally:
        meter.close()
    return readings
