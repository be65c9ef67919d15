"""Standings per task and regime: the fastest and the leanest configuration, and by how much.

A configuration is an implementation (packed or not), the baseline, and each of them replayed
from a CUDA graph or compiled where the rows carry those timings. A regime is a set of grid
points (small / large batch, short / long sequences, low / high padding, inference / train).
Within a regime, configurations are ranked by the geometric mean of their median latencies over
the points where every configuration compared was measured (one measured at fewer than half of
the regime's points is left out, and named). A margin counts ("beyond noise") only when the two
configurations' p10-p90 intervals, each the geometric mean of p10 and of p90 over those points,
do not overlap; the count of single points where they do not overlap is given beside it. Where a
row lacks p10/p90 (older rows for the baseline, CUDA-graph and compiled timings always) its median
stands in ("one-sided"), and without any recorded spread the margin is "no spread recorded".
Peak memory has no spread: a memory margin counts above MEM_MARGIN_PCT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bertbench.report.load import GRID, TaskData
from bertbench.spec.figures import mem_saved_pct, speedup_pct
from bertbench.spec.timings import EXTRA_TIMINGS

MEM_MARGIN_PCT = 1.0
GPU_MARGIN_PCT = 2.0  # GPU time has no recorded spread; two runs agree within ~1 % (results/h200/repeat)
COVERAGE = 0.5  # a configuration measured at fewer of a regime's points is not compared
VARIANTS = (("", "latency_ms"), *((f" + {t.label}", f"latency_ms_{t.name}") for t in EXTRA_TIMINGS))
SPLITS = (  # column, (low label, high label), (low threshold, high threshold) or None for the grid's min/max
    ("batch_size", ("small batch", "large batch"), (8, 32)),
    ("max_seqlen", ("short sequences", "long sequences"), (128, 512)),
    ("pad_fraction", ("low padding", "high padding"), (0.1, 0.5)),
)
SYMBOL = {"batch_size": "batch", "max_seqlen": "seqlen", "pad_fraction": "pad"}


@dataclass
class Margin:
    other: str
    pct: float  # speedup over the other, (other / winner - 1) x 100; memory: saved, (1 - winner / other) x 100
    verdict: str  # beyond noise, within noise, no spread recorded (memory: beyond / within MEM_MARGIN_PCT)
    one_sided: bool = False  # one of the two records no p10/p90: its median stood in
    clear: int = 0  # points where the winner's p90 is below the other's p10
    worse: int = 0  # points where the winner's p10 is above the other's p90
    points: int = 0  # points compared (0: no spread compared)

    def text(self, name: bool = True) -> str:
        details = ["one-sided"] if self.one_sided else []
        if self.points:
            details.append(f"clear at {self.clear}/{self.points} points" + (f", worse at {self.worse}" if self.worse
                                                                            else ""))  # fmt: skip
        what = f" over {self.other}" if name else ""
        return f"{self.pct:+.1f} %{what}: {self.verdict}" + (f" ({'; '.join(details)})" if details else "")


@dataclass
class Finding:
    regime: str
    points: int  # grid points of the regime
    compared: int = 0  # points where every configuration compared was measured
    fastest: str | None = None
    over_runner_up: Margin | None = None
    over_baseline: Margin | None = None
    fastest_gpu: str | None = None  # by GPU time (the sum of the kernels' durations), where the rows have it
    gpu_over_runner_up: Margin | None = None
    gpu_over_baseline: Margin | None = None
    leanest: str | None = None
    lean_over_runner_up: Margin | None = None
    lean_over_baseline: Margin | None = None
    left_out: list[str] = field(default_factory=list)


def measurements(d: TaskData) -> pd.DataFrame:
    """One row per grid point and configuration: median ms, p10, p90, peak memory, GPU time."""
    r = d.rows
    name = r["attn_implementation"].astype(str) + r["packed"].map({True: " packed"}).fillna("")
    base = r.drop_duplicates(subset=list(GRID))
    parts = []
    for suffix, column in VARIANTS:
        loop = suffix == ""
        for rows, config, col, mem in ((r, name, column, "mem_mb"), (base, d.baseline_series, f"{column}_baseline",
                                                                        "mem_mb_baseline")):  # fmt: skip
            frame = rows[list(GRID)].copy()
            frame["config"] = config + suffix
            frame["ms"] = rows.get(col, np.nan)
            frame["p10"] = rows[f"{col}_p10"] if loop and f"{col}_p10" in rows else np.nan
            frame["p90"] = rows[f"{col}_p90"] if loop and f"{col}_p90" in rows else np.nan
            frame["mem"] = rows[mem] if loop else np.nan
            gpu = col.replace("latency_ms", "gpu_ms")  # gpu_ms[_graph|_compiled][_baseline]
            frame["gpu"] = rows.get(gpu, np.nan)
            parts.append(frame)
    every = pd.concat(parts, ignore_index=True)
    return every[every["ms"].notna() & (every["ms"] > 0)]


def regimes(rows: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(label, mask) per regime: all points, then each split the grid has two sides of, then the modes."""
    found = [("all points", pd.Series(True, index=rows.index))]
    for column, (low_name, high_name), (low, high) in SPLITS:
        values = sorted(rows[column].unique())
        if len(values) < 2:
            continue
        low = max([v for v in values if v <= low], default=values[0])  # the grid's own values, or its ends
        high = min([v for v in values if v >= high], default=values[-1])
        if low >= high:
            low, high = values[0], values[-1]
        scale, unit = (100, " %") if column == "pad_fraction" else (1, "")
        lows, highs = rows[column] <= low, rows[column] >= high
        low_is = "≤ " if rows.loc[lows, column].nunique() > 1 else ""
        high_is = "≥ " if rows.loc[highs, column].nunique() > 1 else ""
        found.append((f"{low_name} ({SYMBOL[column]} {low_is}{low * scale:g}{unit})", lows))
        found.append((f"{high_name} ({SYMBOL[column]} {high_is}{high * scale:g}{unit})", highs))
    modes = list(dict.fromkeys(rows["mode"]))
    if len(modes) > 1:
        found += [(mode, rows["mode"] == mode) for mode in modes]
    return found


def _geo(values: pd.Series) -> float:
    return float(np.exp(np.log(values.clip(lower=1e-6)).mean()))


def margin(table: pd.DataFrame, winner: str, other: str, value: str = "ms") -> Margin:
    """How far `other` is behind `winner` over the compared points, and whether that is beyond their noise."""
    w, o = table.xs(winner, level="config"), table.xs(other, level="config")
    if value == "mem":  # memory saved against the other, as mem_saved_pct
        pct = mem_saved_pct(_geo(o[value]), _geo(w[value]))
        return Margin(other, pct, f"{'beyond' if pct > MEM_MARGIN_PCT else 'within'} {MEM_MARGIN_PCT:g} %")
    if value == "gpu":  # no spread recorded: a fixed margin, as for memory
        pct = speedup_pct(_geo(o[value]), _geo(w[value]))
        return Margin(other, pct, f"{'beyond' if pct > GPU_MARGIN_PCT else 'within'} {GPU_MARGIN_PCT:g} %")
    pct = speedup_pct(_geo(o[value]), _geo(w[value]))  # speedup over the other
    recorded = [x["p10"].notna().all() and x["p90"].notna().all() for x in (w, o)]
    if not any(recorded):
        return Margin(other, pct, "no spread recorded")
    w_lo, w_hi, o_lo, o_hi = (x[q].fillna(x["ms"]) for x in (w, o) for q in ("p10", "p90"))
    beyond = _geo(w_hi) < _geo(o_lo)
    verdict = "beyond noise" if beyond else "within noise"
    return Margin(other, pct, verdict, not all(recorded), int((w_hi < o_lo).sum()), int((w_lo > o_hi).sum()), len(w))


def _rank(long: pd.DataFrame, value: str, baseline: str, finding: Finding) -> tuple[str, Margin | None, Margin | None]:
    """The best configuration by `value` over the points where all compared ones were measured."""
    per_point = long.set_index([*GRID, "config"]).sort_index()
    points = long.groupby("config").size()
    n_points = long[list(GRID)].drop_duplicates().shape[0]
    kept = points[points >= COVERAGE * n_points].index
    finding.left_out += [f"{c} ({points[c]}/{n_points} points)" for c in points.index if c not in kept]
    table = per_point[per_point.index.get_level_values("config").isin(kept)]
    counts = table.groupby(level=list(GRID)).size()
    common = counts[counts == len(kept)].index
    table = table[table.index.droplevel("config").isin(common)]
    if table.empty:
        return "", None, None
    finding.compared = len(common)
    order = table.groupby(level="config")[value].apply(_geo).sort_values()
    best = str(order.index[0])
    runner = margin(table, best, str(order.index[1]), value) if len(order) > 1 else None
    baseline += next((suffix for suffix, _ in VARIANTS[1:] if best.endswith(suffix)), "")  # timed the same way
    over_base = margin(table, best, baseline, value) if baseline in order.index and baseline != best else None
    return best, runner, over_base


def findings(d: TaskData, loop_only: bool = False) -> list[Finding]:
    """Per regime, the fastest and leanest configuration; loop_only: the Python loop's timings alone."""
    long = measurements(d)
    if loop_only:
        long = long[~long["config"].str.endswith(tuple(suffix for suffix, _ in VARIANTS[1:]))]
    out = []
    for label, mask in regimes(d.rows):
        chosen = d.rows[mask][list(GRID)].drop_duplicates()
        mine = long.merge(chosen, on=list(GRID))
        f = Finding(label, len(chosen))
        if mine.empty:
            out.append(f)
            continue
        f.fastest, f.over_runner_up, f.over_baseline = _rank(mine, "ms", d.baseline_series, f)
        gpu = mine[mine["gpu"].notna() & (mine["gpu"] > 0)]
        if not gpu.empty:
            ignored = Finding(label, len(chosen))
            f.fastest_gpu, f.gpu_over_runner_up, f.gpu_over_baseline = _rank(gpu, "gpu", d.baseline_series, ignored)
        mem = mine[mine["mem"].notna() & (mine["mem"] > 0)]
        if not mem.empty:
            ignored = Finding(label, len(chosen))
            f.leanest, f.lean_over_runner_up, f.lean_over_baseline = _rank(mem, "mem", d.baseline_series, ignored)
        f.left_out = list(dict.fromkeys(f.left_out))
        out.append(f)
    return out


def headlines(tasks: dict[str, list[Finding]]) -> list[str]:
    """One line per regime across tasks: who is fastest where, by how much, whether beyond noise; then memory."""
    lines = []
    regimes_seen = dict.fromkeys(f.regime for found in tasks.values() for f in found)
    for regime in regimes_seen:
        entries = [(task, f) for task, found in tasks.items() for f in found if f.regime == regime and f.fastest]
        gpu = [(task, f) for task, f in entries if f.fastest_gpu]
        if gpu:  # the kernels' answer leads; what this host delivers per call beside it
            lines.append(
                f"{regime}, GPU time: "
                + _headline(gpu, len(tasks), "fastest_gpu", "gpu_over_runner_up", "gpu_over_baseline", "fastest")
            )
        if entries:
            label = f"{regime}, end to end" if gpu else regime
            lines.append(f"{label}: " + _headline(entries, len(tasks), "fastest", "over_runner_up", "over_baseline"))
    lean = [(task, f) for task, found in tasks.items() for f in found[:1] if f.leanest]  # all points
    if lean:
        lines.append("peak memory, all points: " + _headline(lean, len(tasks), "leanest", "lean_over_runner_up",
                                                              "lean_over_baseline"))  # fmt: skip
    return lines


def _headline(
    entries: list[tuple[str, Finding]], n_tasks: int, best: str, runner: str, base: str, word: str = ""
) -> str:
    """`best`, `runner`, `base`: the Finding's fields; `word` names the winner in the text (default: `best`)."""

    def tasks_text(ts: list[str]) -> str:
        return f"all {len(ts)} tasks" if len(ts) == n_tasks > 1 else ", ".join(ts)

    winners: dict[str, list[str]] = {}
    runners: dict[str, list[str]] = {}
    for task, f in entries:
        winners.setdefault(getattr(f, best), []).append(task)
        if (m := getattr(f, runner)) is not None:
            runners.setdefault(m.other, []).append(task)
    text = "; ".join(f"**{w}** {word or best} in {tasks_text(ts)}" for w, ts in winners.items())
    firsts = [m for _, f in entries if (m := getattr(f, runner)) is not None]
    if firsts:
        who = "; ".join(f"{r} in {tasks_text(ts)}" for r, ts in runners.items())
        text += f"; over the runner-up ({who}) {_span(firsts)} ({_noise(firsts)})"
    bases = [m for _, f in entries if (m := getattr(f, base)) is not None and m != getattr(f, runner)]
    if bases:
        text += f"; over the baseline {_span(bases)} ({_noise(bases)})"
    return text


def _noise(margins: list[Margin]) -> str:
    judged = [m for m in margins if m.verdict != "no spread recorded"]
    if not judged:
        return "no spread recorded"
    text, n = judged[0].verdict, len(judged)
    if n > 1:
        beyond, what = sum(m.verdict.startswith("beyond") for m in judged), text.split(" ", 1)[1]  # noise, or 1 %
        text = f"beyond {what} in {'all ' + str(n) if beyond == n else f'{beyond} of {n}'}"
        text = text if beyond else f"within {what} in all {n}"
    return text + (", one-sided" if any(m.one_sided for m in judged) else "")


def _span(margins: list[Margin]) -> str:
    low, high = min(m.pct for m in margins), max(m.pct for m in margins)
    return f"{low:+.0f} %" if math.isclose(round(low), round(high)) else f"{low:+.0f} … {high:+.0f} %"
