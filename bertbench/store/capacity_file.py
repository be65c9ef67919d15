"""The capacity files: <output-dir>/capacity/<task>.csv, one row per task, mode, max seqlen and
implementation searched by --capacity (the largest batch that fits), its columns, and the one
atomic rewrite that keeps every earlier row. No torch here."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bertbench.spec.catalog import TASKS
from bertbench.store.csvfile import replace_with

COLUMNS = (
    "timestamp", "run_id", "task", "model", "attn_implementation", "baseline", "device", "dtype", "mode", "packed",
    "max_seqlen", "largest_batch", "smallest_failure", "probes", "status", "detail", "bertbench", "torch",
    "transformers", "flash_attn",
)  # fmt: skip
NEEDED = {"task", "mode", "max_seqlen", "attn_implementation", "baseline", "largest_batch", "status"}


def capacity_path(output_dir: Path, task: str) -> Path:
    return output_dir / "capacity" / f"{task}.csv"


def read_capacity(path: Path) -> list[dict[str, str]]:
    """The rows of one capacity file; none when there is no file."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_rows(results_dir: Path) -> list[dict[str, str]]:
    """Every capacity row under results_dir/capacity/, tasks in catalog order; a file that
    cannot be read as a CSV of capacity rows is left out."""
    rows = []
    for task in TASKS:
        try:
            found = read_capacity(capacity_path(results_dir, task))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        rows += [r for r in found if r.keys() >= NEEDED and None not in r.values() and r["max_seqlen"].isdigit()]
    return rows


def save(path: Path, rows: list[dict[str, str]]) -> None:
    """The file rewritten whole in one step (csvfile.replace_with): its earlier rows, then these."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    for row in [*read_capacity(path), *rows]:
        writer.writerow({c: row.get(c, "") for c in COLUMNS})
    replace_with(path, text.getvalue().encode(), "capacity")
