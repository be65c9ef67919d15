"""The result files: one CSV per task, one row per grid point and implementation.

The columns are schema.Row's. Rows are appended and flushed one at a
time, so an interrupted sweep keeps every row it finished; a file whose header differs
from COLUMNS is never appended to.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path

from bertbench.schema import COLUMNS, Row, format_value, row_key


class HeaderMismatch(Exception):
    pass


def csv_path(output_dir: Path, task: str) -> Path:
    return output_dir / f"{task}.csv"


def part_path(output_dir: Path, task: str, rank: int) -> Path:
    """Where one rank of a torchrun sweep appends its rows until rank 0 merges them."""
    return output_dir / f"{task}.csv.part{rank}"


def part_paths(output_dir: Path, task: str) -> list[Path]:
    return sorted(output_dir.glob(f"{task}.csv.part*"))


def read_header(path: Path) -> list[str] | None:
    """The file's header row, or None when the file is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        return next(csv.reader(f), None)


def check_header(path: Path) -> None:
    header = read_header(path)
    if header is not None and tuple(header) != COLUMNS:
        raise HeaderMismatch(
            f"{path} has other columns than this version writes; move it aside or choose another --output-dir"
        )


def read_rows(path: Path) -> list[dict]:
    if read_header(path) is None:
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def finished_keys(output_dir: Path, task: str) -> set[tuple[str, ...]]:
    """Keys of the rows already measured with status ok, in the task's CSV or a rank's part file."""
    paths = [csv_path(output_dir, task), *part_paths(output_dir, task)]
    return {row_key(row) for path in paths for row in read_rows(path) if row["status"] == "ok"}


def merge_parts(output_dir: Path, task: str, order: Callable[[dict], tuple]) -> int:
    """Append the rows of every part file to <task>.csv, sorted by `order`, then delete the parts."""
    parts = part_paths(output_dir, task)
    rows = sorted((row for path in parts for row in read_rows(path)), key=order)
    results = ResultsFile(csv_path(output_dir, task))
    try:
        for row in rows:
            results.append(row)
    finally:
        results.close()
    for path in parts:
        path.unlink()
    return len(rows)


class ResultsFile:
    """Appends rows to one task's CSV, writing the header only to a new file."""

    def __init__(self, path: Path):
        check_header(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = read_header(path) is None
        self.path = path
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._file.flush()

    def append(self, row: Row | Mapping[str, object]) -> None:
        """One row, flushed at once; a mapping with a column this schema lacks is refused."""
        if isinstance(row, Row):
            values = row.as_csv()
        else:
            unknown = [key for key in row if key not in COLUMNS]
            if unknown:
                raise ValueError(f"unknown columns {', '.join(unknown)}")
            values = {column: format_value(row.get(column)) for column in COLUMNS}
        self._writer.writerow(values)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
