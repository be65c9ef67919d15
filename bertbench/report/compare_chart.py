"""The summary chart of `bertbench compare`: B/A of every joined point, of the GPU time where both rows have
one, else of the latency (Pair.headline)."""

from __future__ import annotations

import itertools
from pathlib import Path

from bertbench.report.compare import VERDICTS, Comparison, geomean
from bertbench.report.files import save_figure


def write_chart(result: Comparison, path: Path, title: str) -> None:
    """B/A per point on a log axis: one panel per section, one band per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    sections = {s: list(ps) for s, ps in itertools.groupby(result.pairs, key=lambda p: p.section)}
    fig, axes = plt.subplots(len(sections), 1, figsize=(11, 0.8 + 3.2 * len(sections)), squeeze=False)
    for ax, (section, pairs) in zip(axes[:, 0], sections.items(), strict=True):
        series = {s: list(ps) for s, ps in itertools.groupby(pairs, key=lambda p: p.series)}
        for i, group in enumerate(series.values()):  # each ordered by seqlen, pad, batch
            xs = [i + 0.1 + 0.8 * j / max(len(group) - 1, 1) for j in range(len(group))]
            for (kind, (color, marker)), filled in itertools.product(VERDICTS.items(), (True, False)):
                chosen = [(x, p.headline[0].ratio) for x, p in zip(xs, group, strict=True)
                          if p.headline[0].kind == kind and p.headline[0].spread_recorded == filled]  # fmt: skip
                if chosen:  # hollow: no spread recorded, the threshold alone decided
                    ax.scatter(*zip(*chosen, strict=True), marker=marker, s=30, edgecolors=color, zorder=3,
                               facecolors=color if filled else "none", alpha=0.6 if kind == "same" else 1)  # fmt: skip
            ax.hlines(geomean([p.headline[0].ratio for p in group]), i + 0.05, i + 0.95, color="black", linewidth=2)
        ax.axhline(1, color="black", linewidth=0.8, linestyle="--")
        what = "GPU time" if any(p.gpu_verdict for p in pairs) else "latency"
        ax.set(xlim=(0, len(series)), ylabel=f"{what} B/A", title=section, yscale="log")  # the scale before its ticks
        ratios = [p.headline[0].ratio for p in pairs]
        if max(ratios) / min(ratios) < 1.25:  # within a few per cent (GPU time): the log ticks would show 1 alone
            ax.set_yscale("linear")
        else:
            ticks = LogLocator(base=2, subs=(1.0, 1.25, 1.5, 1.75))
            ax.yaxis.set(major_locator=ticks, minor_formatter=NullFormatter(),
                         major_formatter=FuncFormatter(lambda v, _: f"{v:g}"))  # fmt: skip
        ax.set_xticks([i + 0.5 for i in range(len(series))], list(series), fontsize=8)
    handles = [Line2D([], [], color=c, marker=m, linestyle="", label=k) for k, (c, m) in VERDICTS.items()]
    handles += [Line2D([], [], color="gray", marker="o", markerfacecolor="none", linestyle="", label="no spread"),
                Line2D([], [], color="black", linewidth=2, label="geometric mean")]  # fmt: skip
    fig.legend(handles=handles, loc="upper right", ncol=5, frameon=False, fontsize=8)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_figure(fig, path, dpi=120)
    plt.close(fig)
