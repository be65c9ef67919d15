"""Helpers shared by test modules (pytest puts tests/ on the import path)."""

from __future__ import annotations

from pathlib import Path

from bertbench.spec.schema import Row
from bertbench.store.records import typed
from bertbench.store.results import ResultsFile, load_rows


def write(folder: Path, rows: list[Row], task: str = "qa") -> Path:
    """folder/<task>.csv holding rows, written as a run writes them; returns folder."""
    results = ResultsFile(folder / f"{task}.csv")
    try:
        results.append_many(rows)
    finally:
        results.close()
    return folder


def in_step(csv: Path) -> bool:
    """<task>.jsonl holds the rows of <task>.csv, the same values (a number as the CSV spells it or not: 16.0, 16)."""
    rows = [typed(row) for row in load_rows(csv)]
    return bool(rows) and [typed(row) for row in load_rows(csv.with_suffix(".jsonl"))] == rows
