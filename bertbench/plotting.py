"""Charts from the result CSVs: speedup, memory saved and throughput against batch size.

Whatever the CSVs hold is drawn: the categories (implementations, seqlens, pad fractions,
batch sizes) come from the data. Within one task only the latest row of each grid point
and implementation is drawn, and only rows of the setup (model, dtype, device, baseline)
of the task's most recent row; rows that are not `ok` are left out and summarised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from bertbench.schema import EXTRA_MEASUREMENTS, KEY_COLUMNS, without_gpu_index

NEEDED = (
    "timestamp", "task", "model", "attn_implementation", "baseline", "device", "dtype", "batch_size", "max_seqlen",
    "avg_seqlen", "pad_fraction", "seqlen_stdev", "use_mask", "real_tokens", "latency_ms_baseline", "latency_ms",
    "speedup_pct", "mem_saved_pct", "tokens_per_s", "status", "detail",
)  # fmt: skip
SETUP = ("model", "dtype", "device", "baseline")
POINT = tuple(c for c in KEY_COLUMNS if c != "task" and c not in EXTRA_MEASUREMENTS)  # one file holds one task
METRICS = {  # file stem: (column, axis label)
    "speedup": ("speedup_pct", "speedup vs baseline (%)"),
    "mem_saved": ("mem_saved_pct", "peak memory saved vs baseline (%)"),
    "throughput": ("tokens_per_s", "real tokens per second"),
}
# Drawn only when the rows carry them (--cuda-graphs, --compile): each against the baseline
# timed the same way. file stem: (column, axis label, latency column)
EXTRA_METRICS = {
    "speedup_graph": ("speedup_graph_pct", "speedup vs baseline, both CUDA graphs (%)", "latency_ms_graph"),
    "speedup_compiled": ("speedup_compiled_pct", "speedup vs baseline, both compiled (%)", "latency_ms_compiled"),
}
MARKERS = "osD^vP*Xhp<>"
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]


class PlotError(Exception):
    """Bad input to plot.py: reported as one line, exit code 2."""


@dataclass
class TaskData:
    task: str
    rows: pd.DataFrame  # the ok rows drawn
    setup: dict[str, str]
    skipped: pd.DataFrame  # rows not drawn (status other than ok)
    other_setups: int  # rows of other setups, not drawn

    @property
    def title(self) -> str:
        s = self.setup
        return f"{self.task} | {s['model']} | {s['dtype']} | {s['device']} | baseline {s['baseline']}"


def load_results(results_dir: Path) -> list[TaskData]:
    if not results_dir.is_dir():
        raise PlotError(f"{results_dir}: no such results directory")
    paths = sorted(results_dir.glob("*.csv"))
    if not paths:
        raise PlotError(f"{results_dir}: no <task>.csv files to plot")
    return [_task_data(path) for path in paths]


def _task_data(path: Path) -> TaskData:
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise PlotError(f"{path}: missing columns {', '.join(missing)}")
    if frame.empty:
        raise PlotError(f"{path}: no rows")
    for column, default in (("packed", False), ("mode", "inference")):  # columns older versions lacked
        if column not in frame.columns:
            frame[column] = default
    frame["device"] = frame["device"].astype(str).map(without_gpu_index)  # rows from every GPU of a host
    latest = frame.iloc[-1]
    setup = {key: str(latest[key]) for key in SETUP}
    same_setup = np.logical_and.reduce([frame[k].astype(str) == v for k, v in setup.items()])
    mine = frame[same_setup]
    mine = mine.drop_duplicates(subset=list(POINT), keep="last")  # rows are appended in time order
    ok = mine["status"] == "ok"
    return TaskData(path.stem, mine[ok].copy(), setup, mine[~ok].copy(), int((~same_setup).sum()))


def summary(data: list[TaskData]) -> str:
    """What was drawn and what was left out, and why."""
    lines = []
    for d in data:
        lines.append(f"{d.task}: {len(d.rows)} rows drawn ({d.title})")
        if d.other_setups:
            lines.append(f"  {d.other_setups} rows of other setups (model, dtype, device or baseline) not drawn")
        for (status, name, detail), group in d.skipped.groupby(["status", "attn_implementation", "detail"]):
            lines.append(f"  left out {len(group)} {status} rows of {name}: {detail}")
    return "\n".join(lines)


def plot_all(data: list[TaskData], plots_dir: Path, fmt: str = "png") -> list[Path]:
    matplotlib.use("Agg")  # headless: files only
    sns.set_theme(style="whitegrid", context="paper")
    written = []
    for d in data:
        out = plots_dir / d.task
        out.mkdir(parents=True, exist_ok=True)
        written += plot_task(d, out, fmt)
    return written


def _series(d: TaskData) -> pd.DataFrame:
    """Rows to draw per metric: the implementations, plus the baseline's own throughput."""
    packed = d.rows["packed"].astype(str) == "True"
    train = d.rows["mode"] == "train"
    name = (
        d.rows["attn_implementation"]
        + packed.map({True: " packed", False: ""})
        + train.map({True: " train", False: ""})
    )
    rows = d.rows.assign(series=name)
    for column, _, latency in EXTRA_METRICS.values():
        if latency in rows and f"{latency}_baseline" in rows:
            rows[column] = (rows[f"{latency}_baseline"] / rows[latency] - 1) * 100
    base = rows.drop_duplicates(subset=["batch_size", "max_seqlen", "pad_fraction"]).assign(
        series=f"{d.setup['baseline']} (baseline)",
        tokens_per_s=lambda f: f["real_tokens"] / f["latency_ms_baseline"] * 1e3,
        speedup_pct=np.nan,
        mem_saved_pct=np.nan,
    )
    base[[c for c, _, _ in EXTRA_METRICS.values() if c in base]] = np.nan
    return pd.concat([rows, base], ignore_index=True)


def metrics_of(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The charts to draw: the three always, a CUDA-graph or compiled speedup where measured."""
    extra = {stem: (c, label) for stem, (c, label, _) in EXTRA_METRICS.items() if c in frame and frame[c].notna().any()}
    return {**METRICS, **extra}


def plot_task(d: TaskData, out: Path, fmt: str) -> list[Path]:
    frame = _series(d)
    seqlens = sorted(frame["max_seqlen"].unique()) if not frame.empty else []
    pads = sorted(frame["pad_fraction"].unique())
    series = list(dict.fromkeys(frame["series"]))
    colors = dict(zip(pads, sns.color_palette("viridis", n_colors=max(len(pads), 1)), strict=False))
    styles = {s: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]) for i, s in enumerate(series)}
    metrics = metrics_of(frame)
    limits = {stem: _limits(frame, column) for stem, (column, _) in metrics.items()}
    written = []
    for seqlen in seqlens:
        for stem in metrics:
            fig, ax = plt.subplots(figsize=(7, 4.5))
            _draw(ax, frame[frame["max_seqlen"] == seqlen], metrics[stem], colors, styles, limits[stem])
            ax.set_title(f"{d.task}, max seqlen {seqlen}\n{d.title}", fontsize=9)
            _legends(fig, colors, styles, series_for(stem, series), beside=True)
            path = out / f"seqlen_{seqlen}_{stem}.{fmt}"
            fig.savefig(path, bbox_inches="tight", dpi=150)
            plt.close(fig)
            written.append(path)
    written.append(_combined(d, frame, seqlens, metrics, colors, styles, limits, out / f"combined.{fmt}"))
    return written


def series_for(stem: str, series: list[str]) -> list[str]:
    """The baseline has a throughput line only: its speedup and memory saved are 0 by definition."""
    return series if stem == "throughput" else [s for s in series if not s.endswith("(baseline)")]


def _combined(d, frame, seqlens, metrics, colors, styles, limits, path: Path) -> Path:
    nrows = max(len(seqlens), 1)
    fig, axes = plt.subplots(nrows, len(metrics), figsize=(5 * len(metrics), 3.4 * nrows), squeeze=False)
    for i, seqlen in enumerate(seqlens):
        for j, stem in enumerate(metrics):
            _draw(axes[i][j], frame[frame["max_seqlen"] == seqlen], metrics[stem], colors, styles, limits[stem])
            axes[i][j].set_title(f"max seqlen {seqlen}: {stem.replace('_', ' ')}", fontsize=10)
    if not seqlens:
        for ax in axes[0]:
            _note(ax, "no ok rows to draw")
    fig.suptitle(d.title, fontsize=12)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    _legends(fig, colors, styles, list(styles), beside=False)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return path


def _limits(frame: pd.DataFrame, column: str) -> tuple[float, float] | None:
    """One y-range per metric within a task, so its charts can be compared at a glance."""
    values = frame[column].dropna()
    if values.empty:
        return None
    low, high = min(values.min(), 0.0), max(values.max(), 0.0)
    pad = (high - low) * 0.06 or 1.0
    return (low - pad, high + pad)


def _draw(ax, frame: pd.DataFrame, metric: tuple[str, str], colors: dict, styles: dict, limits) -> None:
    column, label = metric
    drawn = False
    for (name, pad), group in frame.groupby(["series", "pad_fraction"], sort=False):
        group = group.dropna(subset=[column]).sort_values("batch_size")
        if group.empty:
            continue
        linestyle, marker = styles[name]
        ax.plot(group["batch_size"], group[column], color=colors[pad], linestyle=linestyle, marker=marker,
                markersize=4, linewidth=1.4)  # fmt: skip
        drawn = True
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("batch size")
    ax.set_ylabel(label)
    if not drawn:
        reason = "peak memory is not measured on the CPU" if column == "mem_saved_pct" else "no ok rows"
        _note(ax, reason)
        return
    if column == "tokens_per_s":
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="black", linewidth=0.8)
        if limits is not None:
            ax.set_ylim(*limits)


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def _legends(fig, colors: dict, styles: dict, series: list[str], beside: bool) -> None:
    """Colour is the pad fraction, line style and marker the implementation: two short legends
    to the right of a single chart, or one row under a grid figure."""
    pad_handles = [Line2D([], [], color=c, linewidth=2, label=f"pad {p:.0%}") for p, c in colors.items()]
    impl_handles = [
        Line2D([], [], color="dimgray", linestyle=styles[s][0], marker=styles[s][1], label=s) for s in series
    ]
    if beside:
        beside_kw = {"bbox_to_anchor": (1.0, 0.5), "frameon": False}
        fig.add_artist(fig.legend(handles=impl_handles, title="implementation", loc="lower left", **beside_kw))
        fig.legend(handles=pad_handles, title="padding", loc="upper left", **beside_kw)
    else:
        handles = impl_handles + pad_handles
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 8),
                   frameon=False)  # fmt: skip
