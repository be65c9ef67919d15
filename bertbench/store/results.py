"""The result files: one CSV per task, one row per grid point and implementation.

The columns are schema.Row's. What a file is guaranteed to hold (docs/reliability.md):

- Whole rows only. Each row is appended in one write under an exclusive flock, starts on a
  new line and is fsynced before the next; a new file appears with its header in one step
  (written aside, then hard-linked into place), so any number of processes may append.
- A damaged tail (a last line cut short by a crash or power loss, junk bytes at the end)
  is repaired before appending: moved to <task>.csv.damaged-<UTC time> with a notice on
  stderr, the file cut back to its last whole row. Damage with rows after it is refused.
- A file of an older layout of ours is migrated when appended to: rewritten beside itself
  in the current layout (old values as they were, new columns empty, schema_version empty
  for rows written before that column existed) and renamed over itself. A CSV that is not
  ours (other columns, or no original contract columns) is refused and never touched.
- Reads return every row or raise ResultsError naming the file and line.
- Beside <task>.csv, <task>.jsonl holds the same rows as JSON Lines (records.py: written with each
  row, brought in step whenever the CSV is prepared); readers take the CSV, or the .jsonl where
  there is no CSV (a folder from a dataset hub), and a run there writes the CSV from it first.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from bertbench.spec.figures import MEASURED
from bertbench.spec.schema import COLUMNS, SCHEMA_VERSION, Row, format_value, row_key
from bertbench.store import csvfile, records, signals
from bertbench.store.csvfile import CONTRACT as CONTRACT  # re-exported: what makes a CSV ours
from bertbench.store.csvfile import HEADER, DamagedFile, ResultsError
from bertbench.store.csvfile import HeaderMismatch as HeaderMismatch
from bertbench.store.csvfile import Scan as Scan

# --resume: these statuses are final; "unavailable" is, where these versions are the same.
SETTLED_BY = ("torch", "transformers", "flash_attn", "flash_attn_3", "cuda")
Notice = Callable[[str], None]
SET_ASIDE = re.compile(r"\.(csv\.part|damaged-|stale-)")  # in the names of files that are not a task's results


def csv_path(output_dir: Path, task: str) -> Path:
    return output_dir / f"{task}.csv"


def part_path(output_dir: Path, task: str, rank: int) -> Path:
    """Where one rank of a torchrun sweep appends its rows until rank 0 merges them."""
    return output_dir / f"{task}.csv.part{rank}"


def part_paths(output_dir: Path, task: str) -> list[Path]:
    return sorted(output_dir.glob(f"{task}.csv.part*"))


def result_files(folder: Path) -> list[Path]:
    """A results folder's <task>.csv files, and each <task>.jsonl with no <task>.csv beside it; a rank's
    part file and a file set aside (damaged, stale) are not."""

    def listed(pattern: str) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.glob(pattern)) if p.is_file() and not SET_ASIDE.search(p.name)}

    return sorted({**listed(f"*{records.SUFFIX}"), **listed("*.csv")}.values())


def source_path(output_dir: Path, task: str) -> Path:
    """Where a task's rows are read from: its CSV, or its .jsonl when only that is there."""
    path = csv_path(output_dir, task)
    record = path.with_suffix(records.SUFFIX)
    return record if not path.exists() and record.exists() else path


def stderr_notice(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr, flush=True)


def load_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a results file (a CSV, or a .jsonl record) of any version of ours, in the current
    column layout (columns it lacks: figures.OLD_KEY_DEFAULTS, else empty). ResultsError when the file
    is missing, not ours or damaged."""
    if path.suffix == records.SUFFIX:
        return records.load(path)
    found = csvfile.scan(path)
    if found.damaged:
        raise DamagedFile(
            f"{path} line {found.tail_line}: {found.tail_reason}; "
            "the next bertbench run appending to it moves that line aside"
        )
    return found.records()


def read_rows(path: Path) -> list[dict[str, str]]:
    """load_rows, or no rows for a file that does not exist."""
    return load_rows(path) if path.exists() else []


def done_for_resume(row: Mapping[str, str], versions: Mapping[str, str] | None) -> bool:
    """ok and mismatch rows are measurements; an unavailable row is final for the same
    torch, transformers, flash-attn, flash_attn_3 and CUDA (what decides availability for a key)."""
    if row["status"] in MEASURED:
        return True
    return (
        row["status"] == "unavailable"
        and versions is not None
        and all(row[c] == versions.get(c, "") for c in SETTLED_BY)
    )


def finished_keys(output_dir: Path, task: str, versions: Mapping[str, str] | None = None) -> set[tuple[str, ...]]:
    """Keys of the rows --resume skips, from the task's CSV (or its .jsonl, with no CSV) and any rank's part file."""
    paths = [source_path(output_dir, task), *part_paths(output_dir, task)]
    return {row_key(row) for path in paths for row in read_rows(path) if done_for_resume(row, versions)}


def prepare(path: Path, notice: Notice = stderr_notice, create: bool = False) -> None:
    """Make path ready to append to: created with its header (if create), or with the rows of its .jsonl
    when only that is there, its damaged tail moved aside, an older layout migrated, its .jsonl
    brought in step. Not ours, or damaged inside: ResultsError."""
    record = records.record_path(path)
    while True:
        if not path.exists() and (create or (record is not None and record.exists())):
            rows = records.rows_for_csv(record) if record is not None else []
            with contextlib.suppress(FileExistsError):  # another process made it first
                csvfile.write_new(path, HEADER + b"".join(map(csvfile.encode, rows)))
        try:
            with signals.deferred(), csvfile.locked(path, os.O_RDWR | os.O_APPEND) as fd:
                rows = _prepare_locked(path, fd, notice)
                if record is not None:
                    records.sync(record, [dict(zip(COLUMNS, row, strict=True)) for row in rows], notice)
                return
        except FileNotFoundError:
            if not create:
                return
        except OSError as e:
            raise ResultsError(f"{path}: cannot append to it ({e.strerror or e})") from None


def _prepare_locked(path: Path, fd: int, notice: Notice) -> list[list[str]]:
    """The file repaired and in the current layout; returns its rows."""
    data = csvfile.read_fd(fd)
    found = csvfile.parse(path, data)
    if found.damaged:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        csvfile.write_new(aside, data[found.end :])
        os.ftruncate(fd, found.end)
        os.fsync(fd)
        notice(
            f"{path} line {found.tail_line}: {found.tail_reason}, {found.size - found.end} bytes a crash left; "
            f"moved to {aside.name}, the file now ends at its last whole row"
        )
    if found.header is None:
        csvfile.write_all(fd, HEADER)
        os.fsync(fd)
        return []
    if found.header == COLUMNS:
        return found.rows
    rows = [record_raw(found.header, row) for row in found.rows]
    csvfile.replace_with(path, HEADER + b"".join(map(csvfile.encode, rows)), "migrating")
    notice(
        f"{path}: migrated from an older column layout to schema version {SCHEMA_VERSION} "
        f"({len(rows)} rows kept as they were, new columns empty)"
    )
    return rows


def record_raw(header: tuple[str, ...], row: list[str]) -> list[str]:
    """An older row in the current column order, values as they were, new columns empty."""
    values = dict(zip(header, row, strict=True))
    return [values.get(c, "") for c in COLUMNS]


def _ready(fd: int) -> bool:
    """Locked and ready to append: the current header, ending at a whole row."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) != b"\n":
        return False
    start = os.pread(fd, 2 * len(HEADER), 0)
    if start.startswith(HEADER):
        return True
    try:  # the same columns written otherwise (another line end, quoted)
        first = next(csv.reader([start.split(b"\n", 1)[0].decode("utf-8")]), [])
    except (csv.Error, UnicodeDecodeError):
        return False
    return tuple(first) == COLUMNS


def merge_parts(output_dir: Path, task: str, order: Callable[[dict], tuple], notice: Notice = stderr_notice) -> int:
    """Append the rows of every part file to <task>.csv, sorted by `order`, then delete the
    parts. A row already there (same run and key: an earlier merge was cut short) is skipped."""
    parts = part_paths(output_dir, task)
    if not parts:
        return 0
    for path in parts:
        prepare(path, notice)
    target = csv_path(output_dir, task)
    results = ResultsFile(target, notice)
    there = {(row["run_id"], row_key(row)) for row in read_rows(target)}
    rows = sorted((row for path in parts for row in load_rows(path)), key=order)
    rows = [row for row in rows if (row["run_id"], row_key(row)) not in there]
    results.append_many(rows)
    results.close()
    for path in parts:
        path.unlink()
    return len(rows)


class ResultsFile:
    """Appends rows to one task's CSV and its .jsonl: see the module's guarantees."""

    def __init__(self, path: Path, notice: Notice = stderr_notice):
        self.path, self.notice = path, notice
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResultsError(f"{path.parent}: cannot create it ({e.strerror or e})") from None
        prepare(path, notice, create=True)

    def append(self, row: Row | Mapping[str, object]) -> None:
        """One row, on disk (fsynced) when this returns; a mapping with a column this schema lacks is refused."""
        self.append_many([row])

    def append_many(self, rows: list) -> None:
        if not rows:
            return
        values = [self._values(row) for row in rows]
        data = b"".join(map(csvfile.encode, values))
        lines = b"".join(records.encode(records.typed(dict(zip(COLUMNS, v, strict=True)))) for v in values)
        record = records.record_path(self.path)
        with signals.deferred():
            for _ in range(100):
                try:
                    with csvfile.locked(self.path, os.O_RDWR | os.O_APPEND) as fd:
                        if _ready(fd) and (record is None or records.ready(record)):
                            csvfile.write_all(fd, data)
                            os.fsync(fd)
                            if record is not None:  # the same rows, under the CSV's lock (records.py)
                                records.append(record, lines)
                            return
                except FileNotFoundError:
                    pass  # moved away meanwhile: prepare creates it anew
                prepare(self.path, self.notice, create=True)  # damaged or replaced since: repair, then retry
            raise ResultsError(f"{self.path}: keeps changing while rows are appended to it")

    @staticmethod
    def _values(row: Row | Mapping[str, object]) -> list[str]:
        if isinstance(row, Row):
            values = row.as_csv()
        else:
            unknown = [key for key in row if key not in COLUMNS]
            if unknown:
                raise ValueError(f"unknown columns {', '.join(unknown)}")
            values = {column: format_value(row.get(column)) for column in COLUMNS}
        return [values[c] for c in COLUMNS]

    def close(self) -> None:
        """Nothing stays open between rows; kept for callers that close."""
