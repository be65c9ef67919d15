"""Do the default time budget and a fixed 50-call run give the same medians?

Reads three results (folders or qa.csv files) of `--task qa --sweep` made back to back on one machine
(scripts/gpu_same_answers.sh): FAST (defaults), GRAPHS (defaults plus --cuda-graphs: tells
GPU-bound points, loop latency < 1.5 x graph latency, from launch-bound ones) and FIXED (50
calls after 5 warm-up calls). Prints a markdown report with every point of both runs.

    python scripts/same_answers.py FAST GRAPHS FIXED
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from bertbench.store.results import load_rows

COLUMNS = {"latency_ms": "latency_ms_graph", "latency_ms_baseline": "latency_ms_graph_baseline"}
SHARES = {"latency_ms": "host_share", "latency_ms_baseline": "host_share_baseline"}
# host_share (the host's fastest enqueue of a call over its median latency), the larger of the two runs'
BANDS = ((0.0, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, float("inf")))


def number(text: str) -> float | None:
    return float(text) if text else None


def keyed(path: Path) -> dict[tuple, dict]:
    """A qa.csv, or a results folder holding one, keyed by point and implementation."""
    csv = path / "qa.csv" if path.is_dir() else path
    return {(r["batch_size"], r["max_seqlen"], r["pad_fraction"], r["attn_implementation"]): r for r in load_rows(csv)}


def main(fast_dir: str, graphs_dir: str, fixed_dir: str) -> int:
    fast, graphs, fixed = keyed(Path(fast_dir)), keyed(Path(graphs_dir)), keyed(Path(fixed_dir))
    lines, found = [], {"GPU-bound": [], "launch-bound": [], "no graph": []}
    banded: dict[tuple[float, float], list[float]] = {band: [] for band in BANDS}
    for key in sorted(set(fast) & set(fixed), key=lambda k: (int(k[0]), int(k[1]), float(k[2]), k[3])):
        for column, graph_column in COLUMNS.items():
            if column == "latency_ms_baseline" and key[3] != "sdpa":
                continue  # the baseline once per point
            a, b = number(fast[key][column]), number(fixed[key][column])
            g = graphs.get(key)
            loop = number(g[column]) if g else None
            replay = number(g[graph_column]) if g else None
            same_kernels = g is None or column != "latency_ms" or g["attention_kernels_graph"] == g["attention_kernels"]
            if a is None or b is None:
                continue
            if loop is None or replay is None or not same_kernels:
                kind = "no graph"
            else:
                kind = "GPU-bound" if loop < 1.5 * replay else "launch-bound"
            ratio = a / b
            found[kind].append(ratio)
            shares = [number(run[key][SHARES[column]]) for run in (fast, fixed)]
            share = max(x for x in shares if x is not None) if any(x is not None for x in shares) else None
            if share is not None:
                next(ratios for (low, high), ratios in banded.items() if low <= share < high).append(ratio)
            name = f"{key[3]}" if column == "latency_ms" else "eager (baseline)"
            shown = f"{share:.2f}" if share is not None else ""
            lines.append(
                f"| {key[0]} | {key[1]} | {key[2]} | {name} | {kind} | {shown} | {b:.2f} | {a:.2f} | {ratio:.3f} |"
            )
    print("| class (loop / graph) | rows | within 2 % | within 5 % | median abs deviation | max abs deviation |")
    print("|---|---|---|---|---|---|")
    for kind, ratios in found.items():
        print(summary_row(kind, ratios))
    print()
    print("| host share (larger of both) | rows | within 2 % | within 5 % | median abs deviation | max abs deviation |")
    print("|---|---|---|---|---|---|")
    for (low, high), ratios in banded.items():
        print(summary_row(f"{low:g}-{high:g}" if high < 1 else f"{low:g} and more (host-bound)", ratios))
    print()
    print("| batch | seqlen | pad | implementation | class | host share | fixed 50 ms | budget ms | budget / fixed |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


def summary_row(label: str, ratios: list[float]) -> str:
    if not ratios:
        return f"| {label} | 0 | | | | |"
    dev = [abs(r - 1) for r in ratios]
    return (
        f"| {label} | {len(dev)} | {sum(d <= 0.02 for d in dev)} | {sum(d <= 0.05 for d in dev)} "
        f"| {100 * statistics.median(dev):.1f} % | {100 * max(dev):.1f} % |"
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
