"""Chart of what packing and CUDA graphs change (results/h100/packing/qa.csv, scripts/gpu_graphs.sh):
latency against the pad fraction, one panel per model; colour is the implementation, a solid
line its Python loop, a dotted line the same model replayed from a CUDA graph.

    python scripts/plot_packing.py [CSV] [PNG]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

source = sys.argv[1] if len(sys.argv) > 1 else "results/h100/packing/qa.csv"
target = sys.argv[2] if len(sys.argv) > 2 else "plots/h100/packing.png"
rows = pd.read_csv(source).query("status == 'ok'")
rows["series"] = rows["attn_implementation"] + rows["packed"].map({True: " packed", False: " padded"})
colors = dict(
    zip(["eager padded (baseline)", *dict.fromkeys(rows["series"])], plt.get_cmap("tab10").colors, strict=False)
)
models = list(dict.fromkeys(rows["model"]))
fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.6), squeeze=False)
for ax, model in zip(axes[0], models, strict=True):
    mine = rows[rows["model"] == model]
    base = mine.drop_duplicates("pad_fraction").sort_values("pad_fraction")
    eager = colors["eager padded (baseline)"]
    ax.plot(base["pad_fraction"] * 100, base["latency_ms_baseline"], "-o", color=eager)
    graph = base.dropna(subset=["latency_ms_graph_baseline"])
    ax.plot(graph["pad_fraction"] * 100, graph["latency_ms_graph_baseline"], ":o", color=eager)
    for series, group in mine.groupby("series", sort=False):
        group = group.sort_values("pad_fraction")
        marker = "s" if series.endswith("packed") else "^"
        ax.plot(group["pad_fraction"] * 100, group["latency_ms"], "-", marker=marker, color=colors[series])
        graph = group.dropna(subset=["latency_ms_graph"])
        ax.plot(graph["pad_fraction"] * 100, graph["latency_ms_graph"], ":", marker=marker, color=colors[series])
    batch, seqlen = int(mine["batch_size"].iloc[0]), int(mine["max_seqlen"].iloc[0])
    ax.set_title(f"{model}, QA, {batch} x {seqlen}\n{mine['dtype'].iloc[0]}, {mine['device'].iloc[0].split(' (')[0]}")
    ax.set_xlabel("padding (% of tokens)")
    ax.set_ylabel("median latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
handles = [plt.Line2D([], [], color=c, linewidth=2, label=s) for s, c in colors.items()]
handles += [
    plt.Line2D([], [], color="dimgray", linestyle="-", label="Python loop"),
    plt.Line2D([], [], color="dimgray", linestyle=":", label="CUDA graph replay"),
]
axes[0][-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
fig.tight_layout()
fig.savefig(target, dpi=130, bbox_inches="tight")
print(f"wrote {target}")
