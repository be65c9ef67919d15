"""The JSON Lines record beside each results CSV: <task>.jsonl, one JSON object per row of
<task>.csv, in the same order, every column a key with a typed value (docs/record.md). No torch here.

The CSV is what the record is written from, and the two are kept in step (docs/reliability.md):

- Each row goes to the .jsonl right after the .csv, under the CSV's exclusive flock (and the
  .jsonl's own, which a reader takes shared), inside signals.deferred(), fsynced.
- Whenever the CSV is prepared for appending (results.prepare: its damaged tail moved aside, an
  older layout migrated), the .jsonl is compared with it and, where it differs, rewritten from it
  in one step (csvfile.replace_with): written for a CSV from before the record existed, completed
  where a process died between the two writes, migrated with the CSV. Where it held a line that
  the CSV does not give, the old file is first kept as <task>.jsonl.stale-<UTC time> (a notice on
  stderr): nothing written is lost.
- A .jsonl that is not ours (its first line is not an object of our columns) or that a newer
  bertbench wrote (schema_version above SCHEMA_VERSION) is refused and never touched.
- With no <task>.csv beside it, a <task>.jsonl is read in its place; a run appending to that
  folder writes the CSV from it first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bertbench.spec.figures import OLD_KEY_DEFAULTS
from bertbench.spec.schema import COLUMN_TYPES, COLUMNS, SCHEMA_VERSION, format_value
from bertbench.store import csvfile
from bertbench.store.csvfile import CONTRACT, DamagedFile, HeaderMismatch, ResultsError, UnknownVersion

SUFFIX = ".jsonl"
KINDS = {"str": "text", "int": "an integer", "float": "a number", "bool": "true or false"}


@dataclass(frozen=True)
class Layout:
    """One CSV's columns as a record holds them: the main results' (MAIN) or the dataset pass's
    (store.dataset_file.LAYOUT). contract: the keys every record of ours has; old_defaults: what
    an older row lacks, filled in as it is read."""

    name: str  # as messages name the file: "record", "dataset record"
    columns: tuple[str, ...]
    types: Mapping[str, str]  # column -> "str", "int", "float" or "bool"
    version: int
    contract: tuple[str, ...]
    old_defaults: Mapping[str, str] = field(default_factory=dict)


MAIN = Layout("record", COLUMNS, COLUMN_TYPES, SCHEMA_VERSION, CONTRACT, OLD_KEY_DEFAULTS)


def record_path(path: Path) -> Path | None:
    """<task>.jsonl beside <task>.csv; none beside a rank's part file (<task>.csv.part<rank>)."""
    return path.with_suffix(SUFFIX) if path.suffix == ".csv" else None


def typed(values: Mapping[str, str], layout: Layout = MAIN) -> dict[str, object]:
    """A CSV row's text as a record: every column, empty as None, numbers and booleans typed.
    A text that is not of its column's type (a hand-edited cell) is kept as it is."""
    return {column: typed_value(layout.types[column], values.get(column) or "") for column in layout.columns}


def typed_value(kind: str, text: str) -> object:
    """One CSV cell as JSON: kind is "str", "int", "float" or "bool"; empty is None."""
    if not text:
        return None
    if kind == "bool":
        return {"True": True, "False": False}.get(text, text)
    if kind in ("int", "float"):
        try:
            number: int | float = int(text) if kind == "int" else float(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return text
        if isinstance(number, float) and not math.isfinite(number):
            return text  # JSON has no inf or NaN
        return _number(kind, number)
    return text


def _number(kind: str, number: int | float) -> int | float:
    if kind == "int" and isinstance(number, float) and number.is_integer():
        return int(number)
    return float(number) if kind == "float" else number


def as_text(record: Mapping[str, object], layout: Layout = MAIN) -> dict[str, str]:
    """A record's values as the CSV writes them (schema.format_value), every column."""
    return {column: format_value(record.get(column)) for column in layout.columns}


def encode(record: Mapping[str, object]) -> bytes:
    """One line of JSON Lines: UTF-8, keys in column order, a newline at the end."""
    return (json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode()


def canonical(record: Mapping[str, object], layout: Layout = MAIN) -> bytes:
    """The line a record stands for, whichever way its numbers are spelt (16 or 16.0)."""
    out = {}
    for column in layout.columns:
        value = record.get(column)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        out[column] = _number(layout.types[column], value) if is_number else value  # type: ignore[arg-type]
    return encode(out)


@dataclass
class RecordScan:
    """A .jsonl's records (in the current layout: a column a line lacks is None) and what is wrong with it."""

    path: Path
    records: list[dict[str, object]] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # each record's line
    bad: list[str] = field(default_factory=list)  # "line N: why" for each whole line that is not a record
    tail: bytes = b""  # a last line without its newline (a crash's leftover)
    lines: int = 0  # whole lines

    @property
    def tail_line(self) -> int:
        return self.lines + 1


def parse(path: Path, data: bytes, layout: Layout = MAIN) -> RecordScan:
    """The file's records; HeaderMismatch when its first line is not a record of ours, UnknownVersion
    when a line's schema_version is not one this bertbench knows."""
    body, newline, tail = data.rpartition(b"\n")
    lines = body.split(b"\n") if newline else []
    found = RecordScan(path, tail=tail, lines=len(lines))
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as e:  # UnicodeDecodeError is one
            value, why = None, f"not JSON ({str(e).splitlines()[0][:80]})"
        else:
            why = "" if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
        if number == 1 and (why or _not_ours(value, layout)):
            reason = why or _not_ours(value, layout)
            raise HeaderMismatch(
                f"{path} is not a bertbench {layout.name} file (line 1: {reason}); it is left untouched"
            )
        if not why:
            _check_version(path, number, value.get("schema_version"), layout)
            why = _not_ours(value, layout) or _wrong_type(value, layout)
        if why:
            found.bad.append(f"line {number}: {why}")
        else:
            found.records.append({column: value.get(column) for column in layout.columns})
            found.numbers.append(number)
    return found


def _not_ours(value: dict, layout: Layout) -> str:
    unknown = [key for key in value if key not in layout.types]
    missing = [key for key in layout.contract if key not in value]
    return f"unknown key {unknown[0]!r}" if unknown else f"no key {missing[0]!r}" if missing else ""


def _check_version(path: Path, number: int, version: object, layout: Layout) -> None:
    if version is None or (type(version) is int and 1 <= version <= layout.version):
        return
    newer = type(version) is int and version > layout.version
    raise UnknownVersion.of(f"{path} line {number}", json.dumps(version), layout.version, newer)


def _wrong_type(value: dict, layout: Layout) -> str:
    for column, v in value.items():
        kind = layout.types[column]
        number = isinstance(v, int | float) and not isinstance(v, bool)
        if number and not math.isfinite(v):
            return f"{column} holds {v}, which JSON has not"  # Python's json reads NaN and Infinity
        fits = {"str": False, "int": number and float(v).is_integer(), "float": number, "bool": isinstance(v, bool)}
        if v is not None and not isinstance(v, str) and not fits[kind]:
            return f"{column} holds {json.dumps(v)[:40]}, not {KINDS[kind]}"
    return ""


def scan(path: Path, layout: Layout = MAIN) -> RecordScan:
    """Read path under a shared lock; ResultsError when it cannot be read or is not ours."""
    try:
        with csvfile.locked(path, os.O_RDONLY, shared=True) as fd:
            data = csvfile.read_fd(fd)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read it ({e.strerror or e})") from None
    return parse(path, data, layout)


def load(path: Path, layout: Layout = MAIN) -> list[dict[str, str]]:
    """Every record of a .jsonl as results.load_rows gives a CSV's rows: text values in the current
    layout, what an older row lacks from figures.OLD_KEY_DEFAULTS. ResultsError naming the line of
    the first that is not a record of ours."""
    found = scan(path, layout)
    if found.bad:
        raise DamagedFile(f"{path} {found.bad[0]}")
    if found.tail:
        raise DamagedFile(f"{path} line {found.tail_line}: cut short (no line end)")
    return [
        {column: text or layout.old_defaults.get(column, "") for column, text in as_text(record, layout).items()}
        for record in found.records
    ]


def check(path: Path, csv_exists: bool, layout: Layout = MAIN) -> None:
    """What a run refuses before it starts (arguments): a .jsonl not ours, of an unknown schema version,
    or, with no CSV to rewrite it from, one with a line that is not a record."""
    found = scan(path, layout)
    if found.bad and not csv_exists:
        raise DamagedFile(f"{path} {found.bad[0]}; no {path.with_suffix('.csv').name} beside it to rewrite it from")


def rows_for_csv(path: Path, layout: Layout = MAIN) -> list[list[str]]:
    """The rows of a .jsonl that has no CSV beside it, as CSV fields, to write that CSV from (a cut
    last line left out: sync keeps it aside); none when there is no .jsonl."""
    if not path.exists():
        return []
    found = scan(path, layout)
    if found.bad:
        raise DamagedFile(f"{path} {found.bad[0]}; no {path.with_suffix('.csv').name} beside it to rewrite it from")
    return [[format_value(record[c]) for c in layout.columns] for record in found.records]


def ready(path: Path) -> bool:
    """There to append to, ending at a whole line (the CSV's lock held: nothing else writes it)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return True
        with path.open("rb") as f:
            f.seek(size - 1)
            return f.read(1) == b"\n"
    except FileNotFoundError:
        return False


def append(path: Path, data: bytes) -> None:
    """Lines appended and fsynced; called with the CSV's exclusive lock held, after its rows."""
    with csvfile.locked(path, os.O_RDWR | os.O_APPEND) as fd:
        csvfile.write_all(fd, data)
        os.fsync(fd)


def sync(
    path: Path, rows: list[Mapping[str, str]], notice: Callable[[str], None], layout: Layout = MAIN, quiet: bool = False
) -> None:
    """Make path hold rows (the CSV's, in the current layout) as records, losing nothing: called
    with the CSV's exclusive lock held. See the module's rules. quiet: no notice where the record
    only lacked rows at its end (the dataset file's record is kept in step so, row by row)."""
    expected = [encode(typed(row, layout)) for row in rows]
    want = b"".join(expected)
    source = path.with_suffix(".csv").name
    try:
        with csvfile.locked(path, os.O_RDONLY, shared=True) as fd:
            data: bytes | None = csvfile.read_fd(fd)
    except FileNotFoundError:
        data = None
    if data == want:
        return
    if data is None:
        csvfile.replace_with(path, want, "records")
        if rows and not quiet:
            notice(f"{path}: written from the {len(rows)} rows of {source} (its JSON Lines record)")
        return
    found = parse(path, data, layout)  # not ours, or a newer version: refused before anything changes
    known = set(expected)
    lacks = [f"line {n}: a row {source} lacks" for n, r in zip(found.numbers, found.records, strict=True)
             if canonical(r, layout) not in known]  # fmt: skip
    extra = sorted(found.bad + lacks, key=lambda why: int(why.split(":")[0].split()[1]))  # in line order
    if found.tail and not any(line.startswith(found.tail) for line in expected):
        extra.append(f"line {found.tail_line}: cut short")
    if extra:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = path.with_name(f"{path.name}.stale-{stamp}")
        csvfile.write_new(aside, data)
        more = f", and {len(extra) - 1} more" if len(extra) > 1 else ""
        notice(
            f"{path} held what {source} does not ({extra[0]}{more}); "
            f"kept as {aside.name}, the record rewritten from {source}'s {len(rows)} rows"
        )
    elif not (quiet and data.endswith(b"\n") and want.startswith(data)):
        notice(f"{path}: brought in step with {source} ({len(rows)} rows, {len(found.records)} there before)")
    csvfile.replace_with(path, want, "records")
