"""The whole-dataset pass's chart (from <results-dir>/dataset/<task>.csv, written by --dataset): real
tokens/s of each task's last run, a panel per task, strategies along x, a bar per implementation. The
report's section: dataset_section.py; the file itself: store/dataset_file.py. No torch here.
"""

from __future__ import annotations

from pathlib import Path

from bertbench.report.files import save_figure
from bertbench.spec.figures import MEASURED, baseline_label
from bertbench.store.dataset_file import latest_run, read_rows

FOLDER = "dataset"


def label(row: dict[str, str]) -> str:
    return baseline_label(row["attn_implementation"]) if row["is_baseline"] == "True" else row["attn_implementation"]


def write_chart(results_dir: Path, plots_dir: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """<plots-dir>/dataset/dataset.<format>: real tokens/s, a panel per task (its last run), strategies along x,
    a bar per implementation; nothing when no row was measured. seaborn lays out the bars."""
    runs = latest_run(read_rows(results_dir))
    bars = [{"task": task, "strategy": r["strategy"], "series": label(r), "tokens_per_s": float(r["tokens_per_s"])}
            for task, rows in runs.items() for r in rows
            if r["status"] in MEASURED and r["tokens_per_s"]]  # fmt: skip
    if not bars:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame(bars)
    strategies = list(dict.fromkeys(frame["strategy"]))
    series = list(dict.fromkeys(frame["series"]))
    tasks = frame["task"].nunique()
    g = sns.catplot(frame, kind="bar", x="strategy", y="tokens_per_s", hue="series", col="task", col_wrap=min(2, tasks),
                    order=strategies, hue_order=series, errorbar=None, sharey=False, height=3.6,
                    aspect=0.6 + 0.25 * len(strategies) * max(1, len(series)) / 3)  # fmt: skip
    g.set_axis_labels("", "real tokens/s")
    g.set_titles("{col_name}")
    if g.legend is not None:
        g.legend.set_title("")
    folder = plots_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        paths.append(folder / f"{FOLDER}.{fmt}")
        save_figure(g.figure, paths[-1], dpi=120, bbox_inches="tight")
    plt.close(g.figure)
    return paths
