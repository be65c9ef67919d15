"""A graph replay's time against its kernel sum, each at the clock it ran at.

    python -m scripts.replay_clock BENCHMARK_FLAGS

e.g. `--task qa --model-size base --batch-size 64 --max-seqlen 512 --avg-seqlen 256 --optimization sdpa`
(the GPU test's point). For the baseline and each implementation whose call captures at the one
point the flags name, ROUNDS rounds of four figures per replay, with the median SM clock (NVML):

- events, back-to-back: CUDA events around each of CALLS replays launched one after the other, as the
  benchmark's timed rounds run them (the median);
- events, after idle: the same, each replay launched IDLE_S after the GPU went idle (the median);
- kernels, idle-launched: the kernel sum of one replay launched on an idle GPU, as the benchmark's
  profiled calls run (measure.gpu_time.Session);
- kernels, back-to-back: the kernel sum of CALLS replays launched one after the other, per replay.

Where the board's power cap lowers the clock through back-to-back replays, the back-to-back events and
kernels both read above the idle-launched ones; each method agrees with the other at the same clock.
CUDA only.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from bertbench.arguments import parse_args
from bertbench.flags import UsageError
from bertbench.measure.clock import ClockWatch, for_device
from bertbench.measure.failures import one_line
from bertbench.measure.gpu_time import Session
from bertbench.measure.graphs import capture_graph
from bertbench.measure.timing import latencies
from bertbench.model.holder import BASELINE, TaskModels
from bertbench.spec.config import RunConfig

CALLS, IDLE_S, ROUNDS = 20, 0.05, 3


@dataclass(frozen=True)
class ReplayClock:
    """One round's figures for one graph, in ms per replay, and the median SM clock (MHz) of each run."""

    events_back_to_back: float
    clock_back_to_back: float
    events_after_idle: float
    clock_after_idle: float
    kernels_idle_launched: float
    kernels_back_to_back: float

    def __str__(self) -> str:
        return (
            f"events back-to-back {self.events_back_to_back:.3f} ms (clock {self.clock_back_to_back:.0f} MHz)"
            f" | events after idle {self.events_after_idle:.3f} ms (clock {self.clock_after_idle:.0f} MHz)"
            f" | kernels idle-launched {self.kernels_idle_launched:.3f} ms"
            f" | kernels back-to-back {self.kernels_back_to_back:.3f} ms"
        )


def event_ms(
    replay: Callable[[], object], device: torch.device, idle_s: float, watch: ClockWatch | None
) -> tuple[float, float]:
    """Median CUDA-event time of CALLS replays (measure.timing.latencies), back to back or each
    after idle_s of an idle GPU, and the median SM clock read after them (after each, when idle)."""
    if not idle_s:
        return statistics.median(latencies(replay, device, CALLS)), _mhz(watch)
    times, clocks = [], []
    for _ in range(CALLS):
        torch.cuda.synchronize(device)
        time.sleep(idle_s)
        times.extend(latencies(replay, device, 1))
        clocks.append(_mhz(watch))
    return statistics.median(times), statistics.median(clocks)


def _mhz(watch: ClockWatch | None) -> float:
    sample = watch.sample() if watch is not None else None
    return float(sample.sm_mhz) if sample is not None else math.nan


def replay_clock(replay: Callable[[], object], device: torch.device, watch: ClockWatch | None) -> ReplayClock:
    """One round of the four figures for one captured graph's replay."""
    back_to_back, clock_b2b = event_ms(replay, device, 0, watch)
    after_idle, clock_idle = event_ms(replay, device, IDLE_S, watch)
    session = Session(device)
    session.call("idle", replay)
    session.call("back-to-back", lambda: [replay() for _ in range(CALLS)])
    found = session.close()
    return ReplayClock(
        back_to_back, clock_b2b, after_idle, clock_idle, found["idle"][0][0], found["back-to-back"][0][0] / CALLS
    )


def replays(config: RunConfig) -> Iterator[tuple[str, Callable[[], object] | str]]:
    """Each model's graph at the config's one point, captured and warmed up: its name and its
    replay, or the reason it did not capture (e.g. FlashAttention unpadding a padded batch on
    the host). Run under torch.inference_mode."""
    device = config.torch_device
    (task,), (point,) = config.tasks, config.points
    models = TaskModels(task, config, reference=False)
    try:
        inputs = models.inputs(point, list(config.implementations))
        for key, ready in inputs.graph_ready.items():
            name = config.baseline if key == BASELINE else key
            try:
                replay = capture_graph(ready, device).graph.replay
            except Exception as e:
                yield name, one_line(e)
                continue
            for _ in range(5):
                replay()
            yield name, replay
    finally:  # the models' memory back once the caller is done with the replays, or stops early
        models.close()


def main(argv: list[str]) -> int:
    try:
        config = parse_args(["--use-cuda", "--cuda-graphs", *argv], prog="replay_clock.py")
    except UsageError as e:
        print(f"replay_clock.py: {e}", file=sys.stderr)
        return 2
    (task,), (point,) = config.tasks, config.points
    print(f"{task} batch {point.batch_size} x {point.max_seqlen}, pad {point.pad_fraction:g}", flush=True)
    watch = for_device(config.torch_device)
    try:
        with torch.inference_mode():
            for name, replay in replays(config):
                if isinstance(replay, str):
                    print(f"{name}: no graph ({replay})", flush=True)
                    continue
                for round_ in range(ROUNDS):
                    print(f"{name} round {round_}: {replay_clock(replay, config.torch_device, watch)}", flush=True)
    finally:
        if watch is not None:
            watch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
