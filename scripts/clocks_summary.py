"""The GPU's SM clock and power while each run of scripts/gpu_clocks.sh kept it busy.

    python scripts/clocks_summary.py OUT_DIR

Reads smi.csv (nvidia-smi samples) and marks.txt (each run's start and end); a sample counts as
under load when the board draws more than LOAD_W. Prints one line per run, and per run the
latencies of its rows.
"""

from __future__ import annotations

import csv
import statistics
import sys
from datetime import datetime
from pathlib import Path

LOAD_W = 300.0


def when(text: str) -> datetime:
    return datetime.strptime(text.strip()[:26], "%Y/%m/%d %H:%M:%S.%f")


def main(folder: Path) -> int:
    marks: dict[str, dict[str, datetime]] = {}
    for line in (folder / "marks.txt").read_text().splitlines():
        run, edge, stamp = line.split(" ", 2)
        marks.setdefault(run, {})[edge] = when(stamp)
    samples = []
    for row in csv.reader((folder / "smi.csv").open()):
        try:
            samples.append((when(row[0]), float(row[1]), float(row[2]), float(row[3]), row[4].strip()))
        except (ValueError, IndexError):
            continue
    for run, edges in marks.items():
        busy = [s for s in samples if edges["start"] <= s[0] <= edges["end"] and s[2] > LOAD_W]
        if not busy:
            print(f"{run}: no sample above {LOAD_W:g} W")
            continue
        clocks, power, temps = [s[1] for s in busy], [s[2] for s in busy], [s[3] for s in busy]
        reasons = sorted({s[4] for s in busy})
        clock, watts = statistics.median(clocks), statistics.median(power)
        print(
            f"{run}: {len(busy)} samples above {LOAD_W:g} W, {len(busy) * 0.05:.1f} s: SM clock median {clock:.0f} MHz "
            f"(min {min(clocks):.0f}), power median {watts:.0f} W (max {max(power):.0f}), temperature max "
            f"{max(temps):.0f} C, throttle reasons {', '.join(reasons)}"
        )
        with (folder / run / "qa.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                name, point = (
                    r["attn_implementation"],
                    f"{r['batch_size']:>4} x {r['max_seqlen']} pad {r['pad_fraction']:<5}",
                )
                mine, eager = float(r["latency_ms"]), float(r["latency_ms_baseline"])
                print(f"  {name:<18} {point} {mine:8.2f} ms, {r['num_batches']} calls; eager {eager:.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-5].strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
