"""The combinations table and chart: real-token TFLOP/s as a share of the measured matmul rate
for every implementation, padded and packed, in the loop, replayed from a CUDA graph and
compiled (rows of scripts/gpu_combinations.sh).

    python scripts/plot_combinations.py results/h100/combinations

Reads padded_qa.csv and packed_qa.csv there, writes combinations.png beside them and prints
the table as markdown ("-": that combination did not run; the row's detail says why).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

VARIANTS = (("loop", "latency_ms"), ("graph", "latency_ms_graph"), ("compiled", "latency_ms_compiled"))
KERNELS = {"loop": "attention_kernels", "graph": "attention_kernels_graph", "compiled": "attention_kernels_compiled"}
MARK = " \\*"
FOOTNOTE = (
    "\n\n\\* another attention operator ran than in the loop (the row's `attention_kernels_graph` or "
    "`_compiled`; e.g. SDPA's math backend under a CUDA-graph capture): not the same attention, timed."
)


def combinations(folder: Path) -> list[dict]:
    """One entry per layout, implementation (the baseline once per layout) and pad fraction."""
    found = []
    for layout in ("padded", "packed"):
        with (folder / f"{layout}_qa.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for name, suffix, is_base in ((r["baseline"], "_baseline", True), (r["attn_implementation"], "", False)):
                if is_base and any(e["name"] == name and e["pad"] == r["pad_fraction"] for e in found):
                    continue
                entry = {"layout": "padded" if is_base else layout, "name": name, "pad": r["pad_fraction"]}
                for variant, column in VARIANTS:
                    value = r.get(column + suffix) or ""
                    pct = 100 * float(r["gflop"]) / float(value) / float(r["peak_tflops"]) if value else None
                    other = not is_base and variant != "loop" and r.get(KERNELS[variant]) != r["attention_kernels"]
                    entry[variant] = (float(value), pct, other) if value else None
                found.append(entry)
    return found


def table(entries: list[dict]) -> str:
    lines = ["| padding | layout | implementation | loop ms (% of peak) | CUDA graph | compiled |", "|" + " --- |" * 6]
    for e in sorted(entries, key=lambda e: (e["pad"], e["layout"] != "padded", e["name"])):
        cells = [
            f"{v[0]:.2f} ({v[1]:.0f} %){MARK if v[2] else ''}" if (v := e[variant]) else "-" for variant, _ in VARIANTS
        ]
        pad = f"{float(e['pad']):.0%}"
        lines.append(f"| {pad} | {e['layout']} | {e['name']} | " + " | ".join(cells) + " |")
    marked = any(v and v[2] for e in entries for variant, _ in VARIANTS if (v := e[variant]))
    return "\n".join(lines) + (FOOTNOTE if marked else "")


def chart(entries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pads = sorted({e["pad"] for e in entries}, key=float)
    fig, axes = plt.subplots(1, len(pads), figsize=(6 * len(pads), 4), sharey=True, squeeze=False)
    for ax, pad in zip(axes[0], pads, strict=True):
        group = sorted((e for e in entries if e["pad"] == pad), key=lambda e: (e["layout"] != "padded", e["name"]))
        for i, (variant, _) in enumerate(VARIANTS):
            xs = [j + (i - 1) * 0.27 for j in range(len(group))]
            values = [e[variant][1] if e[variant] else 0 for e in group]
            ax.bar(xs, values, 0.27, label=variant, color=f"C{i}")
        ax.set_xticks(range(len(group)), [f"{e['name']}\n{e['layout']}" for e in group], fontsize=7)
        ax.set_title(f"QA 64 x 512, {float(pad):.0%} padding")
        ax.set_ylabel("real-token TFLOP/s, % of measured matmul rate")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__.strip().splitlines()[-4].strip(), file=sys.stderr)
        return 2
    folder = Path(argv[0])
    entries = combinations(folder)
    chart(entries, folder / "combinations.png")
    print(table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
