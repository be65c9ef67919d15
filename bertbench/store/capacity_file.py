"""The capacity files: <output-dir>/capacity/<task>.csv, one row per task, mode, max seqlen and
implementation searched by --capacity (the largest batch that fits), its columns, and the one
atomic rewrite that keeps every earlier row. Beside each, capacity/<task>.jsonl holds the same rows as
JSON Lines with typed values (docs/record.md), rewritten with it; where only the .jsonl is there it is
read, and its rows kept, in the CSV's place. No torch here."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bertbench.spec.catalog import TASKS
from bertbench.spec.schema import format_value
from bertbench.store import records
from bertbench.store.csvfile import replace_with

COLUMNS = (
    "timestamp", "run_id", "task", "model", "attn_implementation", "baseline", "device", "dtype", "mode", "packed",
    "max_seqlen", "largest_batch", "smallest_failure", "probes", "status", "detail", "bertbench", "torch",
    "transformers", "flash_attn",
)  # fmt: skip
TYPES = {"max_seqlen": "int", "largest_batch": "int", "smallest_failure": "int", "packed": "bool"}  # others: text
NEEDED = {"task", "mode", "max_seqlen", "attn_implementation", "baseline", "largest_batch", "status"}


def capacity_path(output_dir: Path, task: str) -> Path:
    return output_dir / "capacity" / f"{task}.csv"


def read_capacity(path: Path) -> list[dict[str, str]]:
    """The rows of one capacity file (its .jsonl where there is no CSV); none when there is neither."""
    record = path.with_suffix(records.SUFFIX)
    if not path.is_file() and record.is_file():
        found = [json.loads(line) for line in record.read_bytes().splitlines()]
        return [{c: format_value(line.get(c)) for c in COLUMNS} for line in found if isinstance(line, dict)]
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
        except (OSError, ValueError, csv.Error):  # ValueError: UnicodeDecodeError, not JSON
            continue
        rows += [r for r in found if r.keys() >= NEEDED and None not in r.values() and r["max_seqlen"].isdigit()]
    return rows


def save(path: Path, rows: list[dict[str, str]]) -> None:
    """The file and its .jsonl rewritten whole, each in one step (csvfile.replace_with): the earlier rows, then
    these."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    cells = [{c: format_value(row.get(c)) for c in COLUMNS} for row in [*read_capacity(path), *rows]]
    writer.writerows(cells)
    lines = [records.encode({c: records.typed_value(TYPES.get(c, "str"), row[c]) for c in COLUMNS}) for row in cells]
    replace_with(path, text.getvalue().encode(), "capacity")
    replace_with(path.with_suffix(records.SUFFIX), b"".join(lines), "capacity")
