"""Which part of the default timing moves the medians: the warm-up or the number of timed calls?

Reads the eight results of scripts/gpu_warmup_check.sh (four timings, twice over in turn) and
prints, for each pairing, how the medians of every model (implementations and the eager
baseline) compare, split by host share (the host's fastest enqueue over the median latency).

    python scripts/warmup_check.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from bertbench.store.results import load_rows

NAMES = ("w1_budget", "w5_budget", "w5_n50", "w1_n50")
PAIRS = (
    ("w1_budget", "w1_budget"),  # run to run, same method
    ("w5_n50", "w5_n50"),
    ("w1_budget", "w5_n50"),  # the defaults against the fixed 50 calls
    ("w5_budget", "w5_n50"),  # the same warm-up, fewer calls
    ("w1_n50", "w5_n50"),  # the same calls, less warm-up
    ("w1_budget", "w5_budget"),  # the same calls, more warm-up
)
BANDS = ((0.0, 0.6), (0.6, 0.8), (0.8, float("inf")))


def medians(folder: Path) -> dict[tuple, tuple[float, float]]:
    """(point, model) -> (median latency, host share) of one run."""
    out = {}
    for r in load_rows(folder / "qa.csv"):
        point = (int(r["batch_size"]), int(r["max_seqlen"]), float(r["pad_fraction"]))
        for model, latency, share in (
            (r["attn_implementation"], r["latency_ms"], r["host_share"]),
            ("eager", r["latency_ms_baseline"], r["host_share_baseline"]),
        ):
            if latency and share:
                out[(*point, model)] = (float(latency), float(share))
    return out


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.1, 0.5, 0.9)]
    within = sum(abs(v - 1) <= 0.02 for v in values)
    return f"{len(values)} | {within} | {pick[0]:.3f} | {pick[1]:.3f} | {pick[2]:.3f}"


def main(folder: str) -> int:
    runs = {(name, cycle): medians(Path(folder) / f"{name}_{cycle}") for name in NAMES for cycle in (1, 2)}
    print("| A / B | host share | rows | within 2 % | p10 | median | p90 |")
    print("|---|---|---|---|---|---|---|")
    for a, b in PAIRS:
        pairs = [((a, 1), (a, 2))] if a == b else [((a, c), (b, c)) for c in (1, 2)]
        for low, high in BANDS:
            ratios = []
            for left, right in pairs:
                for key, (latency, share) in runs[left].items():
                    other = runs[right].get(key)
                    if other and low <= max(share, other[1]) < high:
                        ratios.append(latency / other[0])
            if ratios:
                label = f"{a} run 1 / run 2" if a == b else f"{a} / {b}"
                band = f"{low:g}-{high:g}" if high < 1 else f"{low:g}+"
                print(f"| {label} | {band} | {quantiles(ratios)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
