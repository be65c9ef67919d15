"""The whole-dataset pass's files: <output-dir>/dataset/<task>.csv, the columns of
spec.dataset_schema.DatasetRow, appended a row at a time as store.results appends the main CSV's:
a new file appears whole with its header (csvfile.write_new), each row is one write under an
exclusive flock, fsynced, inside signals.deferred(). A file whose header is not this layout is
refused and left untouched. No torch here.
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

from bertbench.spec.catalog import TASKS
from bertbench.spec.dataset_schema import DATASET_COLUMNS, DATASET_SCHEMA_VERSION, DatasetRow
from bertbench.store import csvfile, signals
from bertbench.store.csvfile import ResultsError

HEADER = csvfile.encode(DATASET_COLUMNS)


def dataset_path(output_dir: Path, task: str) -> Path:
    return output_dir / "dataset" / f"{task}.csv"


def check(path: Path) -> None:
    """ResultsError unless path is absent or a dataset file of this layout that can be appended to."""
    if not path.exists():
        return
    if not path.is_file():
        raise ResultsError(f"{path}: not a regular file")
    try:
        with csvfile.locked(path, os.O_RDONLY, shared=True) as fd:
            first = os.pread(fd, 2 * len(HEADER), 0).split(b"\n", 1)[0]
        os.close(os.open(path, os.O_RDWR))
    except OSError as e:
        raise ResultsError(f"{path}: cannot open it for reading and appending ({e.strerror or e})") from None
    if first and _columns(first) != DATASET_COLUMNS:
        raise ResultsError(
            f"{path} is not a bertbench dataset file of schema version {DATASET_SCHEMA_VERSION}; it is left untouched: "
            "move it aside or choose another --output-dir"
        )


def append(path: Path, rows: list[DatasetRow]) -> None:
    """The rows at the end of path (created with its header first), on disk when this returns."""
    if not rows:
        return
    data = b"".join(csvfile.encode([row.as_csv()[c] for c in DATASET_COLUMNS]) for row in rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with signals.deferred():
            if not path.exists():
                with contextlib.suppress(FileExistsError):  # another process made it first
                    csvfile.write_new(path, HEADER)
            check(path)
            with csvfile.locked(path, os.O_RDWR | os.O_APPEND) as fd:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a crash's cut row: start on a line of our own
                    csvfile.write_all(fd, b"\r\n")
                csvfile.write_all(fd, data)
                os.fsync(fd)
    except OSError as e:
        raise ResultsError(f"{path}: cannot append to it ({e.strerror or e})") from None


def read_dataset(path: Path) -> list[dict[str, str]]:
    """The whole rows of one dataset file (a cut last line left out); none when there is no file."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if None not in r.values() and None not in r and r.get("status")]


def read_rows(results_dir: Path) -> list[dict[str, str]]:
    """Every dataset row under results_dir/dataset/, tasks in catalog order; a file that cannot be
    read as a CSV of dataset rows is left out."""
    rows = []
    for task in TASKS:
        try:
            found = read_dataset(dataset_path(results_dir, task))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
        rows += [r for r in found if set(DATASET_COLUMNS) <= r.keys()]
    return rows


def latest_run(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """task -> the rows of the last run that wrote rows for it (passes of other runs drew other
    sequences, so only one run's rows are compared)."""
    last = {r["task"]: r["run_id"] for r in rows}
    out: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r["run_id"] == last[r["task"]]:
            out.setdefault(r["task"], []).append(r)
    return out


def _columns(line: bytes) -> tuple[str, ...]:
    try:
        return tuple(next(csv.reader([line.decode("utf-8").rstrip("\r")]), []))
    except (csv.Error, UnicodeDecodeError):
        return ()
