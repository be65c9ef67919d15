"""Charts of one results folder: per task, per max seqlen and metric, one panel per pad fraction.

seaborn lays out the panels (a FacetGrid: pad fractions wrapped three a row; in combined, max seqlens by
metrics); its hue is the series, in one colour and marker each (Okabe-Ito's colours, then Paul Tol's muted
ones: `all` names 8 series on Hopper; safe for colour-blind readers, told apart by their markers in grey
print too) the same in every chart of a run; the baseline is black. Bars span p10-p90 over the timed
calls; a speedup's bar spans baseline p10 / impl. p90 to baseline p90 / impl. p10, so it crosses 0
exactly where the two latencies' p10-p90 ranges overlap (older rows, without the baseline's p10/p90, get
the impl.'s spread only, and the chart says so). Hollow: a noisy or host-bound row (spec/figures.py). A
black x on the axis: the baseline failed there (oom, error). Metrics with no data (CPU peak memory, GPU
time): no file, no column.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from bertbench.report.files import save_figure
from bertbench.report.load import TaskData

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt
import seaborn as sns  # imports pyplot: after the backend is chosen
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullLocator

from bertbench.spec.figures import HOST_BOUND_SHARE, NOISY_REL_IQR, per_second, speedup_pct
from bertbench.spec.timings import EXTRA_TIMINGS

OKABE_ITO = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442")  # as to_hex writes
SERIES_COLORS = (*OKABE_ITO, "#882255", "#44aa99", "#999933", "#aa4499")
BASELINE_COLOR = "#000000"
MARKERS = "osD^vPXh<>p"
PAD_STYLES = ("-", (0, (4, 2)))  # combined.png: the grid's lowest and highest pad fraction
DPI = 130
HOLLOW = {"noisy": f"noisy (IQR > {NOISY_REL_IQR * 100:g} % of median)",
          "launch_bound": "host-bound (the host set the latency)"}  # fmt: skip
RC = {"svg.fonttype": "none", "svg.hashsalt": "bertbench", "font.size": 8, "axes.titlesize": 8.5,
      "axes.labelsize": 8, "legend.fontsize": 7.5, "xtick.labelsize": 7, "ytick.labelsize": 7}  # fmt: skip
CHART_FILE = re.compile(r"(seqlen_\d+_[a-z_]+|combined)\.(png|svg)")


@dataclass(frozen=True)
class Metric:
    stem: str  # file name part
    column: str
    label: str  # y axis; {b} is the baseline
    log: bool = False
    bars: bool = False  # p10-p90 bars
    baseline_line: bool = False  # the baseline is a series of its own (throughput)
    title: str = ""


METRICS = (
    Metric("speedup_gpu", "speedup_gpu_pct", "GPU-time speedup\nvs {b} (%)", title="speedup, GPU time (kernels)"),
    Metric("speedup", "speedup_pct", "speedup vs {b} (%)", bars=True, title="speedup"),
    *(Metric(f"speedup_{t.name}", f"speedup_{t.name}_pct", f"speedup vs {{b}},\n{t.both} (%)",
             title=f"speedup, {t.both.removeprefix('both ')}") for t in EXTRA_TIMINGS),
    Metric("mem_saved", "mem_saved_pct", "peak memory saved\nvs {b} (%)", title="memory saved"),
    Metric("throughput", "tokens_per_s", "real tokens per second", log=True, bars=True, baseline_line=True,
           title="throughput"),
)  # fmt: skip


@dataclass(frozen=True)
class Style:
    color: str
    marker: str


def series_styles(data: list[TaskData]) -> dict[str, Style]:
    """One colour and marker per series, the same in every chart of the run; baselines black."""
    names = dict.fromkeys(s for d in data for s in d.rows.get("series", []))
    styles = {n: Style(SERIES_COLORS[i % len(SERIES_COLORS)], MARKERS[i % len(MARKERS)]) for i, n in enumerate(names)}
    for d in data:
        for mode in ("", " train"):
            styles[d.baseline_series + mode] = Style(BASELINE_COLOR, "*")
    return styles


def metrics_of(d: TaskData) -> list[Metric]:
    """The charts with something to draw: speedups where a baseline ran, memory where measured."""
    return [m for m in METRICS if d.rows[m.column].notna().any()]


def metric_frame(d: TaskData, m: Metric) -> pd.DataFrame:
    """The points of one metric: series, grid point, value y, bar ends lo/hi, hollow, baseline_status."""
    r = d.rows
    y = r[m.column]
    lo = hi = pd.Series(np.nan, index=r.index)
    noisy = pd.Series(False, index=r.index)
    host_bound = r["launch_bound"].eq(True) | r["host_bound"].eq(True)  # by the graph's replay, or the enqueue time
    launch_bound = host_bound & (m.stem in ("speedup", "throughput"))
    if m.stem == "speedup":
        base_lo = r["latency_ms_baseline_p10"].fillna(r["latency_ms_baseline"])
        base_hi = r["latency_ms_baseline_p90"].fillna(r["latency_ms_baseline"])
        lo, hi = speedup_pct(base_lo, r["latency_ms_p90"]), speedup_pct(base_hi, r["latency_ms_p10"])
        noisy = r["noisy"].eq(True)
    elif m.stem == "throughput":
        lo, hi = per_second(r["real_tokens"], r["latency_ms_p90"]), per_second(r["real_tokens"], r["latency_ms_p10"])
        noisy = (r["rel_iqr"] > NOISY_REL_IQR).where(r["rel_iqr"].notna(), r["noisy"].eq(True)).astype(bool)
    frame = pd.DataFrame({
        "series": r["series"], "batch_size": r["batch_size"], "max_seqlen": r["max_seqlen"],
        "pad_fraction": r["pad_fraction"], "pad_real": r["pad_fraction_real"], "mode": r["mode"], "y": y,
        "lo": lo, "hi": hi, "noisy": noisy,
        "launch_bound": launch_bound, "baseline_status": r["baseline_status"].fillna("ok"),
    })  # fmt: skip
    if m.baseline_line:
        base = r[r["latency_ms_baseline"].notna()].drop_duplicates(subset=["batch_size", "max_seqlen",
                                                                            "pad_fraction", "mode"])  # fmt: skip
        y, lo, hi = (per_second(base["real_tokens"], base[f"latency_ms_baseline{s}"]) for s in ("", "_p90", "_p10"))
        frame = pd.concat([frame, pd.DataFrame({
            "series": d.baseline_series + (base["mode"] == "train").map({True: " train", False: ""}),
            "batch_size": base["batch_size"], "max_seqlen": base["max_seqlen"], "pad_fraction": base["pad_fraction"],
            "pad_real": base["pad_fraction_real"], "mode": base["mode"], "y": y, "lo": lo, "hi": hi,
            "noisy": base["rel_iqr_baseline"] > NOISY_REL_IQR,
            "launch_bound": base["host_share_baseline"] >= HOST_BOUND_SHARE,
            "baseline_status": "ok",
        })], ignore_index=True)  # fmt: skip
    return frame


def _limits(frame: pd.DataFrame, m: Metric) -> tuple[float, float]:
    """One y-range per metric within a task, so that its charts compare at a glance."""
    values = pd.concat([frame["y"], frame["lo"], frame["hi"]]).dropna()
    values = values[np.isfinite(values)]
    if m.log:
        values = values[values > 0]
        return float(values.min()) / 1.4, float(values.max()) * 1.4
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    pad = (high - low) * 0.06 or 1.0
    return low - pad, high + pad


def pad_label(frame: pd.DataFrame, pad: float) -> str:
    """'pad 50 %', with the realised padding where the rows carry it: 'pad 50 % (real 49.8 %)'."""
    real = frame.loc[frame["pad_fraction"] == pad, "pad_real"].dropna()
    text = f"pad {pad * 100:g} %"
    if real.empty or round(real.mean() * 100, 1) == round(pad * 100, 1):
        return text
    return f"{text} (real {real.mean() * 100:.1f} %)"


MAX_WORKERS: int | None = None  # processes drawing at once; None: one a CPU core


def plot_all(data: list[TaskData], plots_dir: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """The charts of every task with ok rows under plots_dir/<task>/, replacing those an earlier run
    left there. The tasks are drawn in parallel processes, one a task (at most one a CPU core):
    matplotlib draws in one thread, ~0.75 s a chart."""
    styles = series_styles(data)
    jobs = []
    for d in data:
        if d.rows.empty:
            continue
        out = plots_dir / d.task
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():  # charts of an earlier run: this one may not write them all again
            if CHART_FILE.fullmatch(old.name) and old.suffix[1:] in formats:
                old.unlink()
        jobs.append((d, out))
    workers = min(len(jobs), MAX_WORKERS or os.cpu_count() or 1)
    if workers >= 2:
        try:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_leave_sigint_to_parent) as pool:
                drawn = [pool.submit(_plot_task, d, out, formats, styles) for d, out in jobs]
                return [path for future in drawn for path in future.result()]
        except BrokenProcessPool:  # a worker could not start (a caller's script without a __main__ guard)
            pass  # drawn here instead
    return [path for d, out in jobs for path in _plot_task(d, out, formats, styles)]


def _leave_sigint_to_parent() -> None:
    """A worker ignores Ctrl-C (sent to the whole process group): the parent says it in one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _plot_task(d: TaskData, out: Path, formats: tuple[str, ...], styles: dict[str, Style]) -> list[Path]:
    with plt.rc_context(RC):
        return plot_task(d, out, formats, styles)


def plot_task(d: TaskData, out: Path, formats: tuple[str, ...], styles: dict[str, Style]) -> list[Path]:
    metrics = metrics_of(d)
    frames = {m.stem: metric_frame(d, m) for m in metrics}
    limits = {m.stem: _limits(frames[m.stem], m) for m in metrics}
    written = []
    for seqlen in sorted(d.rows["max_seqlen"].unique()):
        for m in metrics:
            frame = frames[m.stem][frames[m.stem]["max_seqlen"] == seqlen]
            if frame["y"].notna().any():
                fig = _seqlen_figure(d, m, frame, int(seqlen), styles, limits[m.stem])
                written += _save(fig, out / f"seqlen_{int(seqlen)}_{m.stem}", formats)
    fig = _combined(d, metrics, frames, styles, limits)
    return [*written, *_save(fig, out / "combined", formats)]


def _save(fig, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = [stem.with_suffix(f".{fmt}") for fmt in formats]
    for path in paths:
        save_figure(fig, path, bbox_inches="tight", dpi=DPI, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths


class _Grid(sns.FacetGrid):  # seaborn's facets; hue: the series, in the run's colour and marker of each
    def __init__(self, frame: pd.DataFrame, styles: dict[str, Style], **facets) -> None:
        order = [s for s in styles if s in set(frame["series"])]
        super().__init__(frame, hue="series", hue_order=order, palette={s: styles[s].color for s in order},
                         hue_kws={"marker": [styles[s].marker for s in order]}, despine=False, **facets)  # fmt: skip

    def tight_layout(self, *args, **kwargs) -> _Grid:  # laid out once, when complete: not after __init__ and
        return self  # each map_* as seaborn does (each pass measures every text of the figure)


def _dodge(frame: pd.DataFrame, styles: dict[str, Style], by: str) -> pd.DataFrame:
    """x: the batch size, each line (series, pad fraction) of a panel shifted a little, so bars stay apart."""
    parts = []
    for _, panel in frame.groupby(by, sort=False):
        lines = [(s, p) for s in styles if s in set(panel["series"]) for p in sorted(panel["pad_fraction"].unique())]
        k = np.array([lines.index(line) for line in zip(panel["series"], panel["pad_fraction"], strict=True)])
        parts.append(panel.assign(x=panel["batch_size"] * 2 ** ((k - (len(lines) - 1) / 2) * 0.06)))
    return pd.concat(parts) if parts else frame.assign(x=frame["batch_size"])


def _seqlen_figure(d: TaskData, m: Metric, frame: pd.DataFrame, seqlen: int, styles, limits) -> plt.Figure:
    pads = sorted(frame.loc[frame["y"].notna(), "pad_fraction"].unique())
    frame = _dodge(frame[frame["pad_fraction"].isin(pads)], styles, "pad_fraction")
    ncols = min(len(pads), 3)
    nrows, spare = -(-len(pads) // ncols), len(pads) % ncols
    g = _Grid(frame, styles, col="pad_fraction", col_order=pads, col_wrap=ncols)
    g.figure.set_size_inches(2.7 * ncols + (0 if spare else 1.9), 2.3 * nrows + 0.5)  # the legend: beside, or in a slot
    g.map_dataframe(_series, linestyles=dict.fromkeys(pads, "-"))
    for i, (pad, ax) in enumerate(g.axes_dict.items()):
        _finish(ax, frame[frame["pad_fraction"] == pad], m, limits)
        ax.set_title(pad_label(frame, pad))
        ax.tick_params(axis="y", which="both", labelleft=i % ncols == 0)  # seaborn hides the major labels only
    g.set_axis_labels("batch size", m.label.format(b=d.setup["baseline"]))
    s = d.setup
    g.figure.suptitle(f"{d.task} · {s['model']} · {s['dtype']} · {s['device']} · max seqlen {seqlen}", fontsize=9)
    g.figure.tight_layout()
    place = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}
    if spare:
        free, right, last = (g.axes[i].get_position() for i in (spare, ncols - 1, -1))
        place = {"loc": "center", "bbox_to_anchor": ((free.x0 + right.x1) / 2, (last.y0 + last.y1) / 2)}
    g.figure.legend(handles=_handles(frame, styles, {}), frameon=False, **place)
    if m.bars:
        g.figure.text(0.01, -0.01, caption(d, [m]), fontsize=6.5, color="dimgray", ha="left", va="top")
    return g.figure


def _combined(d: TaskData, metrics: list[Metric], frames: dict, styles, limits) -> plt.Figure:
    """Every metric (columns) at every max seqlen (rows), at the grid's lowest and highest pad fraction."""
    seqlens = sorted(d.rows["max_seqlen"].unique())
    pads = sorted({d.rows["pad_fraction"].min(), d.rows["pad_fraction"].max()})
    linestyles = dict(zip(pads, PAD_STYLES, strict=False))
    frame = pd.concat([_dodge(frames[m.stem][frames[m.stem]["pad_fraction"].isin(pads)], styles, "max_seqlen")
                       .assign(metric=m.stem) for m in metrics], ignore_index=True)  # fmt: skip
    g = _Grid(frame, styles, row="max_seqlen", row_order=seqlens, col="metric", col_order=[m.stem for m in metrics],
              sharey=False)  # fmt: skip
    g.figure.set_size_inches(3.3 * len(metrics), 2.5 * len(seqlens) + 0.9)
    g.map_dataframe(_series, linestyles=linestyles)
    by_stem = {m.stem: m for m in metrics}
    for (seqlen, stem), ax in g.axes_dict.items():
        m, panel = by_stem[stem], frame[(frame["max_seqlen"] == seqlen) & (frame["metric"] == stem)]
        if panel["y"].notna().any():
            _finish(ax, panel, m, limits[stem])
        else:
            ax.text(0.5, 0.5, "not measured at this seqlen", transform=ax.transAxes, ha="center", color="gray")
        ax.set_title(f"max seqlen {int(seqlen)}: {m.title}")
        ax.set_ylabel(m.label.format(b=d.setup["baseline"]))
    g.set_xlabels("batch size")
    s = d.setup
    g.figure.suptitle(f"{d.task} · {s['model']} · {s['dtype']} · {s['device']} · baseline {s['baseline']}", fontsize=10)
    handles = _handles(frame, styles, {f"pad {p * 100:g} %": ls for p, ls in linestyles.items()})
    g.figure.tight_layout()
    legend = g.figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 5),
                             frameon=False, title=caption(d, metrics) or None, title_fontsize=6.5)  # fmt: skip
    legend.get_title().set_color("dimgray")
    return g.figure


def _series(data: pd.DataFrame, *, linestyles: dict, color, marker: str, label: str) -> None:
    """One series in one panel, its colour and marker from seaborn's hue: a line per pad fraction,
    p10-p90 bars where the frame has them, hollow markers for noisy and host-bound points."""
    ax, color = plt.gca(), to_hex(color)
    for pad, group in data.dropna(subset=["y"]).sort_values("batch_size").groupby("pad_fraction"):
        x, y = group["x"], group["y"]
        ax.plot(x, y, color=color, linestyle=linestyles[pad], linewidth=1.2)
        if group[["lo", "hi"]].notna().any(axis=None):
            low, high = (y - group["lo"]).clip(lower=0), (group["hi"] - y).clip(lower=0)
            ax.errorbar(x, y, yerr=[low.fillna(0), high.fillna(0)], fmt="none", ecolor=color, elinewidth=0.8,
                        capsize=1.5, alpha=0.75)  # fmt: skip
        hollow = (group["noisy"] | group["launch_bound"]).to_numpy(dtype=bool)
        for mask, face in ((~hollow, color), (hollow, "white")):
            if mask.any():
                ax.plot(x[mask], y[mask], linestyle="none", marker=marker, markersize=4.2, markerfacecolor=face,
                        markeredgecolor=color, markeredgewidth=1.0)  # fmt: skip


def _finish(ax, panel: pd.DataFrame, m: Metric, limits) -> None:
    """A black x where the baseline failed, the axes' scales, ticks, the shared y-range and the grid."""
    failed = panel[(panel["baseline_status"] != "ok") & (panel["y"].isna() | m.baseline_line)]
    if not failed.empty:  # the implementation ran, the baseline did not: nothing to compare with
        at = failed["batch_size"].unique()
        ax.plot(at, [0.03] * len(at), linestyle="none", marker="x", color=BASELINE_COLOR, markersize=6,
                transform=ax.get_xaxis_transform(), clip_on=False)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sorted(panel["batch_size"].unique()))
    if m.log:
        ax.set_yscale("log")
    else:
        ax.axhline(0, color="black", linewidth=0.7)
    ax.set_ylim(*limits)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _handles(frame: pd.DataFrame, styles: dict[str, Style], pads: dict[str, object]) -> list:
    drawn = frame[frame["y"].notna()]
    handles = [Line2D([], [], color=s.color, marker=s.marker, markersize=4.5, label=name)
               for name, s in styles.items() if name in set(drawn["series"])]  # fmt: skip
    handles += [Line2D([], [], color="dimgray", linestyle=ls, label=label) for label, ls in pads.items()]
    why = [text for column, text in HOLLOW.items() if drawn[column].any()]
    if why:
        handles.append(Line2D([], [], color="dimgray", marker="o", markerfacecolor="white", linestyle="none",
                              label="hollow: " + "\nor ".join(why)))  # fmt: skip
    failed = frame.loc[frame["baseline_status"] != "ok", "baseline_status"].unique()
    if len(failed):
        handles.append(Line2D([], [], color=BASELINE_COLOR, marker="x", linestyle="none",
                              label=f"baseline {'/'.join(sorted(failed))}: not compared"))  # fmt: skip
    return handles


def caption(d: TaskData, metrics: list[Metric]) -> str:
    """What the bars mean, for the metrics drawn with bars."""
    old = d.rows["latency_ms_baseline_p10"].isna().all()  # rows written before the baseline's p10/p90 were
    notes = []
    if any(m.stem == "speedup" for m in metrics):
        notes.append("speedup bars: the implementation's p10-p90 only (these rows lack the baseline's)" if old else
                     "speedup bars: baseline p10 / impl. p90 … baseline p90 / impl. p10 (crossing 0: the p10-p90 "
                     "ranges overlap)")  # fmt: skip
    if any(m.stem == "throughput" for m in metrics):
        notes.append("throughput bars: p10-p90 of the timed calls" + (", none for the baseline" if old else ""))
    return "; ".join(notes)
