"""The host's launch speed, probed around every round of timed calls.

Below batch ~16 on the H100 the host, not the GPU, sets a forward's latency: Python and the
driver issue a bert-base forward's few hundred kernels more slowly than the GPU runs them.
The host's speed is not steady: two runs of the QA grid on one machine met slow spells of
seconds during which launch-bound points (and a fast implementation at 64 x 256) took
25-100 % longer, with a tight spread inside the spell, so nothing in the timings showed it.
A probe of a fixed host workload (launches of a one-element kernel on an idle device) before
a point and after each round of its timed calls says how fast the host was while the point was timed, against
the run's typical speed (the median of every probe so far): each row's host_slowdown, and
the manifest's record of the run. It explains a host-bound row (timing.Latency.host_share)
that does not repeat; a GPU-bound row does not depend on it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from bertbench.measure.failures import synchronize

CHUNKS = 7  # the fastest chunk: a slow spell slows them all, an interrupt or a cold cache one
LAUNCHES = 30  # per chunk: ~0.2 ms on the H100's host
WARM_READINGS = 5  # read at the start of a run, so the typical speed is known before the first point


def launch_us(device: torch.device) -> float:
    """Microseconds per launch of a one-element in-place add: the fastest of CHUNKS chunks of
    LAUNCHES, the device idle before (synchronised) and after (a tiny kernel queue never
    blocks the host). On the CPU the same op measures the dispatch speed."""
    x = torch.zeros(1, device=device)
    synchronize(device)
    chunks = []
    for _ in range(CHUNKS):
        start = time.perf_counter()
        for _ in range(LAUNCHES):
            x.add_(1)
        chunks.append((time.perf_counter() - start) * 1e6 / LAUNCHES)
    synchronize(device)
    return min(chunks)


@dataclass
class HostWatch:
    """Every probe of one run, the run's typical launch speed, and the probes of the point
    being measured."""

    device: torch.device
    readings: list[float] = field(default_factory=list)
    point: list[float] = field(default_factory=list)  # the probes since start_point

    def __post_init__(self) -> None:
        for _ in range(WARM_READINGS):
            self.readings.append(launch_us(self.device))

    def read(self) -> None:
        """One probe, counted for the run and for the current point. Call it with the device idle."""
        value = launch_us(self.device)
        self.readings.append(value)
        self.point.append(value)

    def start_point(self) -> None:
        self.point = []
        self.read()

    @property
    def typical_us(self) -> float:
        return statistics.median(self.readings)

    def slowdown(self) -> float:
        """The current point's median probe over the run's typical: 1.0 is a host at its usual
        speed. The median: a spell lasts seconds, longer than a point, while one probe in a few
        reads slow by chance."""
        return statistics.median(self.point or [self.typical_us]) / self.typical_us
