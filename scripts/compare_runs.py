"""Do two results folders hold the same measurements, and how far apart are their latencies?

Used to check a torchrun sweep against the same sweep in one process (the same points and
implementations with the same statuses; the order may differ, since a point timed while the
host ran slow is measured again at the end of its task), and two runs of one build against
each other: per implementation the median and extremes of latency_ms(second) /
latency_ms(first) over the points both measured, and how many of the rows flagged neither
noisy nor host-bound in either run agree within 5 % (the implementation's and the baseline's
median latency).

Usage: python scripts/compare_runs.py FIRST_DIR SECOND_DIR [TASK ...]
Exits 1 when the rows differ in anything but their timings, or there are none.
It imports bertbench: install the package (pip install -e .), or run it from the repository
root without installing as python -m scripts.compare_runs FIRST_DIR SECOND_DIR [TASK ...].
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from bertbench.spec.catalog import TASKS
from bertbench.spec.schema import KEY_COLUMNS, row_key
from bertbench.store.results import csv_path, read_rows

IMPLEMENTATION = KEY_COLUMNS.index("attn_implementation")


def compare(first: Path, second: Path, task: str) -> bool | None:
    """Print how the task's rows in the two folders compare; None when neither has any."""
    a, b = read_rows(csv_path(first, task)), read_rows(csv_path(second, task))
    if not a and not b:
        return None
    keys_a, keys_b = [row_key(r) for r in a], [row_key(r) for r in b]
    same = sorted(keys_a) == sorted(keys_b)
    rows_a = dict(zip(keys_a, a, strict=True))
    pairs = [(key, rows_a.get(key), row) for key, row in zip(keys_b, b, strict=True)]
    status_diffs = sum(first is not None and first["status"] != row["status"] for _, first, row in pairs)
    print(
        f"{task}: {len(a)} rows vs {len(b)}; same measurements: {same} ({'same' if keys_a == keys_b else 'other'} "
        f"order); status differs in {status_diffs}"
    )
    steady = [
        (first_row, row)
        for _, first_row, row in pairs
        if first_row is not None
        and "ok" == first_row["status"] == row["status"]
        and "False" == first_row["noisy"] == row["noisy"]
        and "True" not in (first_row["host_bound"], row["host_bound"])
    ]
    agree = [pair for pair in steady if all(_within(pair, column, 0.05) for column in REPEATED)]
    print(
        f"  rows flagged neither noisy nor host-bound in either run: {len(steady)}; "
        f"of them within 5 % in both latencies: {len(agree)}"
    )
    for first_row, row in steady:
        if (first_row, row) not in agree:
            print(
                f"    apart: {row['attn_implementation']} batch {row['batch_size']} x {row['max_seqlen']} "
                f"pad {row['pad_fraction']}: "
                + ", ".join(f"{c} {float(first_row[c]):.3g} vs {float(row[c]):.3g}" for c in REPEATED)
            )
    ratios: dict[str, list[float]] = {}
    baseline_points = set()
    for key, first_row, row in pairs:
        if row["status"] != "ok" or first_row is None or first_row["status"] != "ok":
            continue
        ratio = float(row["latency_ms"]) / float(first_row["latency_ms"])
        ratios.setdefault(row["attn_implementation"], []).append(ratio)
        point = key[:IMPLEMENTATION] + key[IMPLEMENTATION + 1 :]  # the baseline: once per point
        if point not in baseline_points:
            baseline_points.add(point)
            ratios.setdefault(f"{row['baseline']} (baseline)", []).append(
                float(row["latency_ms_baseline"]) / float(first_row["latency_ms_baseline"])
            )
    for name, values in ratios.items():
        print(
            f"  {name:<18} latency second/first over {len(values)} points: median {statistics.median(values):.3f}, "
            f"min {min(values):.3f}, max {max(values):.3f}"
        )
    return same and not status_diffs


REPEATED = ("latency_ms", "latency_ms_baseline")


def _within(pair: tuple[dict, dict], column: str, share: float) -> bool:
    first, second = (float(row[column]) for row in pair)
    return abs(second / first - 1) <= share


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(next(line for line in __doc__.splitlines() if line.startswith("Usage:")), file=sys.stderr)
        return 2
    first, second = Path(argv[0]), Path(argv[1])
    for folder in (first, second):
        if not folder.is_dir():
            print(f"compare_runs: {folder} is not a folder", file=sys.stderr)
            return 2
    results = [r for task in (argv[2:] or TASKS) if (r := compare(first, second, task)) is not None]
    if not results:
        print(f"compare_runs: no rows in {first} or {second}", file=sys.stderr)
        return 1
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
