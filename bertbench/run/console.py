"""What a run says on the console: what is about to run, where it is (a tqdm bar), and a table of what it measured."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from bertbench.spec.config import RunConfig
from bertbench.spec.figures import NOISY_REL_IQR
from bertbench.spec.schema import Row
from bertbench.spec.timings import EXTRA_TIMINGS

GPU_MEANS = "GPU speedup: which kernels are faster (their summed durations, which the host's speed does not move)"
E2E_MEANS = "end-to-end speedup: what this Python host delivers per call (the loop's median latency)"


def summarize(rows: list[Row]) -> str:
    """A short table: every row for a small run, else medians per task, implementation and seqlen,
    with how many rows are noisy (rel_iqr above 0.1) and which statuses other than ok occurred.
    Where the rows have a GPU time, its speedup leads and the end-to-end one stands beside it."""
    if not rows:
        return "no rows written"
    gpu = any(r.gpu_ms is not None for r in rows)
    if len(rows) <= 16:
        header = (
            f"{'task':<20} {'implementation':<18} {'batch':>5} {'seqlen':>6} {'pad':>5} {'real':>5} "
            + (f"{'base gpu':>9} {'gpu ms':>9} {'gpu spd%':>9} " if gpu else "")
            + f"{'base ms':>9} {'ms':>9} {'speedup%':>9} {'mem saved%':>10}  status"
        )
        lines = [
            f"{r.task:<20} {r.attn_implementation:<18} {r.batch_size:>5} {r.max_seqlen:>6} {r.pad_fraction:>5.2f} "
            f"{_num(r.pad_fraction_real):>5} "
            + (
                f"{_num(r.gpu_ms_baseline, '.3f'):>9} {_num(r.gpu_ms, '.3f'):>9} {_num(r.speedup_gpu_pct, '+.1f'):>9} "
                if gpu
                else ""
            )
            + f"{_num(r.latency_ms_baseline):>9} {_num(r.latency_ms):>9} "
            f"{_num(r.speedup_pct, '+.1f'):>9} {_num(r.mem_saved_pct, '+.1f'):>10}  {r.status}"
            + (" noisy" if r.noisy else "")
            + (" host-bound" if r.host_bound else "")
            + (" throttled" if r.throttled else "")
            + (f" ({r.detail})" if r.detail else "")
            for r in rows
        ]
        return "\n".join([header, *lines, *_footnotes(rows, gpu)])
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.task, r.attn_implementation, r.max_seqlen), []).append(r)
    lines = [
        f"{'task':<20} {'implementation':<18} {'seqlen':>6} {'ok/points':>9} {'noisy':>5} "
        + (f"{'median GPU speedup%':>20} " if gpu else "")
        + f"{'median speedup%':>16} {'median mem saved%':>18}  other statuses"
    ]
    for (task, name, seqlen), group in groups.items():
        ok = [r for r in group if r.status == "ok"]
        others = sorted({r.status for r in group} - {"ok"})
        lines.append(
            f"{task:<20} {name:<18} {seqlen:>6} {f'{len(ok)}/{len(group)}':>9} {sum(bool(r.noisy) for r in ok):>5} "
            + (f"{_num(_median([r.speedup_gpu_pct for r in ok]), '+.1f'):>20} " if gpu else "")
            + f"{_num(_median([r.speedup_pct for r in ok]), '+.1f'):>16} "
            f"{_num(_median([r.mem_saved_pct for r in ok]), '+.1f'):>18}  {', '.join(others)}"
        )
    return "\n".join([*lines, *_footnotes(rows, gpu)])


def _footnotes(rows: list[Row], gpu: bool) -> list[str]:
    lines = [f"{GPU_MEANS}; {E2E_MEANS}"] if gpu else []
    noisy = sum(bool(r.noisy) for r in rows)
    if noisy:
        lines.append(
            f"{noisy} of {len(rows)} rows are noisy (interquartile range above {NOISY_REL_IQR * 100:g} % of the "
            "median): read them loosely"
        )
    host_bound = sum(bool(r.host_bound) for r in rows)
    if host_bound:
        lines.append(
            f"{host_bound} of {len(rows)} rows are host-bound (the GPU waited for the host): their latency follows "
            "this host's speed, not the GPU's" + ("; their GPU speedup does not" if gpu else "")
        )
    throttled = sum(bool(r.throttled) for r in rows)
    if throttled:
        lines.append(
            f"{throttled} of {len(rows)} rows ran with the SM clock throttled (throttle_reasons, sm_clock_mhz): "
            "their kernels ran slower than the board's maximum clock allows"
        )
    return lines


def _median(values: list[float | None]) -> float:
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _num(value: float | None, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def describe(config: RunConfig) -> str:
    """What is about to run, so a CPU-sized default is never mistaken for the real grid."""
    lines = []
    if config.device == "cpu":
        note = "no CUDA GPU in use: running on the CPU"
        if config.cpu_sized:
            note += " with CPU-sized defaults (tiny preset, small grid, few batches; set flags to override)"
        lines.append(note)
    sizes = sorted({p.batch_size for p in config.points})
    seqlens = sorted({p.max_seqlen for p in config.points})
    pads = sorted({p.pad_fraction for p in config.points})
    plan = config.timing
    count = (
        f"{plan.num_batches} timed batches"
        if plan.budget_ms is None
        else f"{plan.min_batches}-{plan.num_batches} timed batches filling ~{plan.budget_ms:g} ms"
    )
    lines.append(
        f"tasks {', '.join(config.tasks)} | model {config.model_name} | {', '.join(config.implementations)} "
        f"vs {config.baseline} | {config.device} {config.dtype} | {len(config.points)} grid points: batch sizes "
        f"{sizes}, max seqlens {seqlens}, pad fractions {pads} | {plan.warmup} warm-up + {count} "
        f"-> {config.output_dir}/"
    )
    also = [f"{t.flag} ({t.label})" for t in EXTRA_TIMINGS if t.name in config.timings]
    if also:
        lines.append(f"also timing every model as {' and '.join(also)} (inference only; set-up time kept out)")
    return "\n".join(lines)


class Progress:
    """Where a sweep (or a capacity search) is and when it will end: a tqdm bar on a terminal; where
    the stream is not one, a plain line per finished point (lines=False: nothing). Closed on every
    path (use it as a context manager), the bar's line ends before anything printed after it.

    The bar runs over the summed cost of the points, not their count (the points done / total are
    shown beside it), and its rate, from which tqdm reckons the time left, is what the finished
    points cost, scaled by the cost model the torchrun sharding balances with (distributed.point_cost
    x models timed); the first point, which carries the device's set-up, is left out of the rate
    ("?" until the second point). The plain lines reckon the time left the same way.
    """

    def __init__(
        self,
        costs: list[float],
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.perf_counter,
        unit: str = "points",
        lines: bool = True,
    ):
        self.costs, self.stream, self.enabled = costs, stream or sys.stdout, enabled and bool(costs)
        self.total, self.done_cost, self.done, self.unit = sum(costs), 0.0, 0, unit
        self.clock = clock
        self.start = clock()
        self.first = (0.0, 0.0)  # the first point's seconds and cost
        self.tty = self.stream.isatty()
        self.lines = self.enabled and lines and not self.tty
        drawn = self.enabled and self.tty
        columns, rows = _size(self.stream) if drawn else (None, None)
        self.bar = _CostBar(
            f"0/{len(costs)}",
            total=self.total,
            file=self.stream,
            disable=not drawn,
            leave=True,
            ncols=columns,
            nrows=rows,
            unit=unit,
            bar_format="{percentage:3.0f}%|{bar:16}| {points} {unit} [{elapsed}<{remaining}] {desc}",  # 80 columns
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the bar's line (an interrupt's message then starts on a line of its own)."""
        self.bar.close()

    def now(self, label: str) -> None:
        """What is being measured now: the bar's description."""
        self.bar.set_description_str(label)

    def advance(self, label: str) -> None:
        """One more point done; label names it in the plain line."""
        self.done_cost += self.costs[self.done]
        self.done += 1
        if not self.enabled:
            return
        elapsed = self.clock() - self.start
        if self.done == 1:  # it carries the device's one-off set-up: ~3 s against ~1 s for the next ones
            self.first = (elapsed, self.done_cost)
        per_cost = (elapsed - self.first[0]) / (self.done_cost - self.first[1]) if self.done > 1 else math.nan
        finished = self.done == len(self.costs)
        if self.lines:
            left = per_cost * (self.total - self.done_cost) if not finished else 0.0
            status = f"{self.done}/{len(self.costs)} {self.unit}, {_clock(elapsed)} elapsed, about {_clock(left)} left"
            print(f"{label}: {status}", file=self.stream, flush=True)
        # tqdm's rate: cost per second; 0 shows "?", infinity "00:00" once every point is done
        self.bar.cost_rate = math.inf if finished else (1 / per_cost if per_cost > 0 else 0.0)
        self.bar.points = f"{self.done}/{len(self.costs)}"
        self.bar.update(self.costs[self.done - 1])


class _CostBar(tqdm):
    """A tqdm bar whose rate is Progress's (the first point left out), with the points done / total."""

    cost_rate = 0.0

    def __init__(self, points: str, **kwargs: object):
        self.points = points  # before tqdm's first drawing, in its __init__
        super().__init__(**kwargs)

    @property
    def format_dict(self) -> dict:
        return {**super().format_dict, "rate": self.cost_rate, "points": self.points}


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and rows; 80 x 24 where it says 0 x 0 (a pseudo-terminal nobody
    sized, as under `script`), which tqdm takes for no room at all and so draws nothing."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # not a file (a test's stream that says it is a tty)
        return 80, 24
    return size.columns or 80, size.lines or 24


def _clock(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def time_share(timed_s: float, wall_s: float) -> str:
    """The end-of-run line: how much of the wall time the timed calls themselves took."""
    share = 100 * timed_s / wall_s if wall_s > 0 else 0.0
    line = (
        f"timed calls took {timed_s:.1f} s of {wall_s:.1f} s wall time ({share:.0f} %); the rest is loading, "
        "the warm-up call (memory, kernels, output), the float32 reference and the host probes"
    )
    return line
