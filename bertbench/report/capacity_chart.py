"""Capacity rows and their chart: from <results-dir>/capacity/<task>.csv (written by --capacity), the
largest batch that fits per task, mode, max seqlen and implementation, one panel per task and
mode, bars labelled with the batch and, for an implementation, its ratio to the
baseline's. The file itself: store/capacity_file.py. No torch here, as in the rest of plotting.
"""

from __future__ import annotations

from pathlib import Path

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
    """<plots-dir>/capacity/capacity.<format>; nothing when there are no capacity rows."""
    keyed = latest(read_rows(results_dir))
    fitted = {k: int(r["largest_batch"]) for k, r in keyed.items() if r["largest_batch"].isdigit()}
    if not fitted:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(task, mode) for task, mode, *_ in fitted}, key=lambda p: (TASKS.index(p[0]), p[1]))
    seqlens = sorted({int(k[2]) for k in fitted})
    series = list(dict.fromkeys((k[3], k[4]) for k in sorted(fitted, key=lambda k: k[4] != "True")))
    height = 0.5 + 2.8 * len(panels)  # a legend row, then the panels
    fig, axes = plt.subplots(len(panels), 1, figsize=(2 + 0.8 * len(seqlens) * len(series), height), squeeze=False)
    width = 0.8 / len(series)
    baselines = {k[:3]: v for k, v in fitted.items() if k[4] == "True"}
    for ax, (task, mode) in zip(axes[:, 0], panels, strict=True):
        for i, (name, is_baseline) in enumerate(series):
            for j, seqlen in enumerate(seqlens):
                value = fitted.get((task, mode, str(seqlen), name, is_baseline))
                if value is None:
                    continue
                base = baselines.get((task, mode, str(seqlen)))
                x = j + (i - (len(series) - 1) / 2) * width
                ax.bar(x, value, width, color=f"C{i}", label=_label(name, is_baseline) if j == 0 else None)
                row = keyed[(task, mode, str(seqlen), name, is_baseline)]
                text = ("≥" if row["status"] == "limit" else "") + f"{value}"
                if is_baseline != "True" and base:
                    text += f"\nx{value / base:.2f}"
                ax.annotate(text, (x, value), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(seqlens)), [f"seqlen {s}" for s in seqlens])
        ax.set_ylabel("largest batch")
        ax.set_title(f"{task}, {mode}", fontsize=10)
        ax.margins(y=0.25)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(series), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))
    folder = plots_dir / "capacity"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        paths.append(folder / f"capacity.{fmt}")
        fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def _label(name: str, is_baseline: str) -> str:
    return baseline_label(name) if is_baseline == "True" else name
