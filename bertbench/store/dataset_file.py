"""The whole-dataset pass's files: <output-dir>/dataset/<task>.csv, the columns of
spec.dataset_schema.DatasetRow, appended a row at a time as store.results appends the main CSV's:
a new file appears whole with its header (csvfile.write_new), each row is one write under an
exclusive flock, fsynced, inside signals.deferred(). A file of an older layout of ours (known
columns only, the contract's among them) is read with the newer columns empty, and migrated when
appended to: rewritten beside itself in this layout (old values as they were, new columns empty)
and renamed over itself, as store.results migrates the main CSV. Any other file is refused and
left untouched.

Beside it, <task>.jsonl holds the same rows as JSON Lines (store.records with this file's LAYOUT,
docs/record.md): brought in step with the CSV under the CSV's lock after every append (lines the
CSV does not give kept aside, as records.sync keeps them), read in the CSV's place where only it
is there, and the CSV rebuilt from it then. No torch here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from pathlib import Path

from bertbench.spec.catalog import TASKS
from bertbench.spec.dataset_schema import (
    DATASET_COLUMN_TYPES,
    DATASET_COLUMNS,
    DATASET_CONTRACT,
    DATASET_SCHEMA_VERSION,
    DatasetRow,
)
from bertbench.store import csvfile, records, signals
from bertbench.store.csvfile import ResultsError

HEADER = csvfile.encode(DATASET_COLUMNS)
LAYOUT = records.Layout(
    "dataset record", DATASET_COLUMNS, DATASET_COLUMN_TYPES, DATASET_SCHEMA_VERSION, DATASET_CONTRACT
)


def dataset_path(output_dir: Path, task: str) -> Path:
    return output_dir / "dataset" / f"{task}.csv"


def record_of(path: Path) -> Path:
    """<task>.jsonl beside <task>.csv."""
    return path.with_suffix(records.SUFFIX)


def check(path: Path) -> None:
    """ResultsError unless path is absent or a dataset file of this layout that can be appended to,
    and its record (.jsonl) absent or one of ours that can be."""
    record = record_of(path)
    if csvfile.check_appendable(record):
        records.check(record, csv_exists=path.exists(), layout=LAYOUT)
    if not csvfile.check_appendable(path):
        return
    try:
        with csvfile.locked(path, os.O_RDONLY, shared=True) as fd:
            first = os.pread(fd, 2 * len(HEADER), 0).split(b"\n", 1)[0]
    except OSError as e:
        raise ResultsError(f"{path}: cannot open it for reading and appending ({e.strerror or e})") from None
    if first and not _ours(_columns(first)):
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
                kept = records.rows_for_csv(record_of(path), LAYOUT)  # a record with no CSV: its rows first
                with contextlib.suppress(FileExistsError):  # another process made it first
                    csvfile.write_new(path, HEADER + b"".join(map(csvfile.encode, kept)))
            check(path)
            with csvfile.locked(path, os.O_RDWR | os.O_APPEND) as fd:
                _migrate(path, fd)
            with csvfile.locked(path, os.O_RDWR | os.O_APPEND) as fd:  # the file at path, migrated or not
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a crash's cut row: start on a line of our own
                    csvfile.write_all(fd, b"\r\n")
                csvfile.write_all(fd, data)
                os.fsync(fd)
                records.sync(record_of(path), read_dataset(path), _notice, LAYOUT, quiet=True)
    except OSError as e:
        raise ResultsError(f"{path}: cannot append to it ({e.strerror or e})") from None


def read_dataset(path: Path) -> list[dict[str, str]]:
    """The whole rows of one dataset file in this layout (a cut last line left out, an older file's newer
    columns empty); with no CSV, its record's (ResultsError where that is damaged or not ours); none
    when there is neither or the CSV is not ours."""
    if not path.is_file():
        record = record_of(path)
        return records.load(record, LAYOUT) if record.is_file() else []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader) if _ours(tuple(reader.fieldnames or ())) else []
    return [{c: r.get(c, "") for c in DATASET_COLUMNS} for r in rows
            if None not in r.values() and None not in r and r.get("status")]  # fmt: skip


def read_rows(results_dir: Path) -> list[dict[str, str]]:
    """Every dataset row under results_dir/dataset/, tasks in catalog order; a file that cannot be
    read as a CSV of dataset rows is left out."""
    rows = []
    for task in TASKS:
        try:
            found = read_dataset(dataset_path(results_dir, task))
        except (OSError, UnicodeDecodeError, csv.Error, ResultsError):
            continue
        rows += found
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


def _notice(message: str) -> None:
    print(message, file=sys.stderr)


def _ours(columns: tuple[str, ...]) -> bool:
    """This layout, or an older one of ours: known columns, none twice, the contract's among them."""
    known = set(columns) <= set(DATASET_COLUMNS) and len(set(columns)) == len(columns)
    return known and set(DATASET_CONTRACT) <= set(columns)


def _migrate(path: Path, fd: int) -> None:
    """An older layout rewritten in this one (its whole rows, values as they were, new columns empty)."""
    data = csvfile.read_fd(fd)
    lines = data.split(b"\n")
    if _columns(lines[0]) == DATASET_COLUMNS:
        return
    whole = b"\n".join(lines[:-1]).decode("utf-8")  # a last line with no line end is a crash's cut row
    header, *rows = csv.reader(io.StringIO(whole, newline=""))
    kept = [dict(zip(header, row, strict=True)) for row in rows if len(row) == len(header)]
    body = b"".join(csvfile.encode([r.get(c, "") for c in DATASET_COLUMNS]) for r in kept)
    csvfile.replace_with(path, HEADER + body, "migrating")
    print(f"{path}: migrated from an older column layout to dataset schema version {DATASET_SCHEMA_VERSION} "
          f"({len(kept)} rows kept as they were, new columns empty)", file=sys.stderr)  # fmt: skip


def _columns(line: bytes) -> tuple[str, ...]:
    try:
        return tuple(next(csv.reader([line.decode("utf-8").rstrip("\r")]), []))
    except (csv.Error, UnicodeDecodeError):
        return ()
