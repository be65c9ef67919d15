"""Capacity rows and their chart: from <results-dir>/capacity/<task>.csv (written by --capacity), the
largest batch that fits per task, mode, max seqlen and implementation, one panel per task and
mode, bars labelled with the batch and, for an implementation, its ratio to the
baseline's. The file itself: store/capacity_file.py. No torch here, as in the rest of plotting.
"""

from __future__ import annotations

from pathlib import Path

from bertbench.report.files import save_figure
from bertbench.spec.catalog import TASKS
from bertbench.spec.figures import baseline_label
from bertbench.store.capacity_file import read_rows as read_rows  # re-exported: what the chart draws


def latest(rows: list[dict[str, str]]) -> dict[tuple[str, str, str, str, str], dict[str, str]]:
    """(task, mode, seqlen, implementation, baseline) -> the last row written for it (a search
    run again replaces the earlier figure)."""
    keyed = {}
    for r in rows:
        keyed[(r["task"], r["mode"], r["max_seqlen"], r["attn_implementation"], r["baseline"])] = r
    return keyed


def write_chart(results_dir: Path, plots_dir: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """<plots-dir>/capacity/capacity.<format>; nothing when there are no capacity rows. seaborn lays
    out the bars (a catplot: a row per task and mode, hue the implementation)."""
    keyed = latest(read_rows(results_dir))
    fitted = {k: int(r["largest_batch"]) for k, r in keyed.items() if r["largest_batch"].isdigit()}
    if not fitted:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from matplotlib.patches import Patch

    panels = [f"{t}, {m}" for t, m in sorted({k[:2] for k in fitted}, key=lambda p: (TASKS.index(p[0]), p[1]))]
    seqlens = [f"seqlen {s}" for s in sorted({int(k[2]) for k in fitted})]
    series = list(dict.fromkeys(_label(k[3], k[4]) for k in sorted(fitted, key=lambda k: k[4] != "True")))
    baselines = {k[:3]: v for k, v in fitted.items() if k[4] == "True"}
    bars = pd.DataFrame([{"panel": f"{k[0]}, {k[1]}", "seqlen": f"seqlen {k[2]}", "series": _label(k[3], k[4]),
                          "largest": value, "text": _text(value, keyed[k]["status"],
                                                          None if k[4] == "True" else baselines.get(k[:3]))}
                         for k, value in fitted.items()])  # fmt: skip
    palette = {name: f"C{i}" for i, name in enumerate(series)}
    g = sns.catplot(bars, kind="bar", x="seqlen", y="largest", hue="series", row="panel", order=seqlens,
                    hue_order=series, row_order=panels, palette=palette, saturation=1, errorbar=None, legend=False,
                    sharex=False, sharey=False, facet_kws={"despine": False})  # fmt: skip
    height = 0.5 + 2.8 * len(panels)  # a legend row, then the panels
    g.figure.set_size_inches(2 + 0.8 * len(seqlens) * len(series), height)
    for panel, ax in g.axes_dict.items():
        for container, name in zip(ax.containers, series, strict=True):  # seaborn: a container a hue level (empty
            # where the panel lacks it), its bars in seqlen order
            at = bars[(bars["panel"] == panel) & (bars["series"] == name)]
            ax.bar_label(container, at.sort_values("seqlen", key=lambda c: c.map(seqlens.index))["text"], fontsize=7)
        ax.set(xlabel="", ylabel="largest batch")
        ax.set_title(panel, fontsize=10)
        ax.margins(y=0.25)
    handles = [Patch(color=color, label=name) for name, color in palette.items()]
    g.figure.legend(handles=handles, loc="upper center", ncol=len(series), fontsize=8)
    g.figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))
    folder = plots_dir / "capacity"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        paths.append(folder / f"capacity.{fmt}")
        save_figure(g.figure, paths[-1], dpi=120)
    plt.close(g.figure)
    return paths


def _label(name: str, is_baseline: str) -> str:
    return baseline_label(name) if is_baseline == "True" else name


def _text(value: int, status: str, base: int | None) -> str:
    """A bar's label: the batch (≥: the search stopped at its limit) and an implementation's ratio to the baseline."""
    return ("≥" if status == "limit" else "") + f"{value}" + (f"\nx{value / base:.2f}" if base else "")
