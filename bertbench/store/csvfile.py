"""The bytes of a results CSV: its rows parsed with where a damaged tail starts, flock(2)
locks shared by every process, and files created or replaced in one step.

A result file is locked with flock on the file itself: exclusive while a row is appended
or the file repaired or migrated, shared while it is read. A process that waits for the
lock may find the path replaced meanwhile (a migration renames a new file over it), so
`locked` checks that the descriptor still is the file at the path and reopens it when
not. Where flock is missing (not Unix) or refused (some network file systems) locks are
skipped: one process per directory is then the user's to ensure.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bertbench.spec.figures import OLD_KEY_DEFAULTS
from bertbench.spec.schema import COLUMNS, SCHEMA_VERSION

try:
    import fcntl
except ImportError:  # pragma: no cover - not Unix
    fcntl = None  # type: ignore[assignment]

# The columns every results file of ours has had since the first version.
CONTRACT = (
    "timestamp",
    "task",
    "model",
    "attn_implementation",
    "batch_size",
    "max_seqlen",
    "avg_seqlen",
    "latency_ms",
    "status",
    "detail",
)
MAX_DAMAGED_TAIL = 64 * 1024  # a crash cuts one row (~2 KiB); more than this is not a crash's leftover


class ResultsError(Exception):
    """A results file cannot be read or appended to; the message is one line naming it."""


class HeaderMismatch(ResultsError):
    """Not a results file of ours: left as it is. Its message ends in the advice for a run
    (another --output-dir); a reader of results names its own flag through with_advice."""

    ADVICE = "move it aside or choose another --output-dir"

    def __init__(self, message: str, advice: str | None = ADVICE):
        super().__init__(f"{message}: {advice}" if advice else message)
        self.message = message

    def with_advice(self, advice: str) -> str:
        return f"{self.message}: {advice}"


class Unreadable(HeaderMismatch):
    """Its first line is not text a CSV reader can read (a binary file, say): not ours either."""


class DamagedFile(ResultsError):
    """Damaged rows the file cannot be repaired from safely."""


class UnknownVersion(ResultsError):
    """A row or record whose schema_version this bertbench does not know (a newer one's, or not a
    version): the file is refused and never touched."""

    @classmethod
    def of(cls, where: str, shown: str, highest: int, newer: bool, tail: str = "") -> UnknownVersion:
        return cls(
            f"{where}: schema version {shown} is unknown to this bertbench, which reads 1 to {highest}"
            + ("; a newer bertbench wrote it: upgrade to read it" if newer else "")
            + tail
        )


def encode(fields) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(fields)
    return text.getvalue().encode()


HEADER = encode(COLUMNS)


@dataclass
class Scan:
    """A file's header and whole rows, and where a damaged tail (if any) starts."""

    path: Path
    header: tuple[str, ...] | None  # None: an empty file
    rows: list[list[str]]
    end: int  # bytes up to the end of the last whole row
    size: int
    tail_line: int = 0  # first line of the damaged tail
    tail_reason: str = ""

    @property
    def damaged(self) -> bool:
        return self.end < self.size

    def records(self) -> list[dict[str, str]]:
        """Every whole row in the current column layout (older files' gaps filled)."""
        header = self.header or ()
        out = []
        for row in self.rows:
            values = dict(zip(header, row, strict=True))
            out.append({c: values.get(c) or OLD_KEY_DEFAULTS.get(c, "") for c in COLUMNS})
        return out


def _lines(data: bytes, consumed: list[int]) -> Iterator[str]:
    """data's lines (each with its newline), noting in consumed[0] the bytes handed out."""
    start = 0
    while start < len(data):
        newline = data.find(b"\n", start)
        stop = len(data) if newline < 0 else newline + 1
        consumed[0] = stop
        yield data[start:stop].decode("utf-8")
        start = stop


def _check_ours(path: Path, header: list[str]) -> None:
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in CONTRACT if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        why = f"unknown column {unknown[0]!r}" if unknown else f"no column {missing[0]!r}" if missing else "repeats"
        raise HeaderMismatch(f"{path} is not a bertbench results file ({why}); it is left untouched")


def parse(path: Path, data: bytes) -> Scan:
    """The file's rows; raises HeaderMismatch (not ours) or DamagedFile (damage before the end)."""
    if not data:
        return Scan(path, None, [], 0, 0)
    consumed = [0]
    reader = csv.reader(_lines(data, consumed), strict=True)
    try:
        header = next(reader)
    except (csv.Error, UnicodeDecodeError):
        raise Unreadable(f"{path} is not a bertbench results file (unreadable first line)", None) from None
    _check_ours(path, header)
    if not _ends_line(data, consumed[0]):
        raise DamagedFile(f"{path} line 1: the header is cut short; move the file aside")
    end, rows, reason = consumed[0], [], ""
    while not reason:
        try:
            row = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as e:
            reason = f"unreadable ({e})"
            break
        if not _ends_line(data, consumed[0]):
            reason = "cut short (no line end)"
        elif len(row) != len(header):
            reason = f"{len(row)} fields where the header has {len(header)}"
        elif row == header:
            reason = "the header line again (two files joined?)"
        else:
            rows.append(row)
            end = consumed[0]
    _check_versions(path, header, rows)
    scan = Scan(path, tuple(header), rows, end, len(data))
    if scan.damaged:
        scan.tail_line = data.count(b"\n", 0, end) + 1
        scan.tail_reason = reason or "junk after the last row"
        if len(data) - end > MAX_DAMAGED_TAIL or _holds_rows(data[end:], len(header)):
            raise DamagedFile(
                f"{path} line {scan.tail_line}: {scan.tail_reason}, with rows after it; "
                "not a crash's cut tail, so the file is neither read nor appended to"
            )
    return scan


def _check_versions(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Every row's schema_version empty (rows migrated from before the column) or 1 to SCHEMA_VERSION."""
    if "schema_version" not in header:
        return
    column = header.index("schema_version")
    for number, row in enumerate(rows, 1):
        value = row[column]
        if value and not (value.isdigit() and 1 <= int(value) <= SCHEMA_VERSION):
            newer = value.isdigit() and int(value) > SCHEMA_VERSION
            raise UnknownVersion.of(
                f"{path} row {number}", repr(value), SCHEMA_VERSION, newer, "; the file is left untouched"
            )


def _ends_line(data: bytes, offset: int) -> bool:
    return data[offset - 1 : offset] == b"\n"


def _holds_rows(tail: bytes, width: int) -> bool:
    """Does anything after the tail's first line look like a row of this file?"""
    for line in tail.split(b"\n")[1:]:
        try:
            fields = next(csv.reader([line.decode("utf-8")]), [])
        except (csv.Error, UnicodeDecodeError):
            continue
        if len(fields) == width:
            return True
    return False


def read_fd(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def scan(path: Path) -> Scan:
    """Read path under a shared lock; ResultsError when it cannot be read or is not ours."""
    try:
        with locked(path, os.O_RDONLY, shared=True) as fd:
            data = read_fd(fd)
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read it ({e.strerror or e})") from None
    return parse(path, data)


def check_appendable(path: Path) -> bool:
    """False where path is absent; True where it is a regular file this process may read and
    append to (opening it changes nothing); ResultsError, saying why, otherwise."""
    if why := dangling(path):
        raise ResultsError(why)
    if not path.exists():
        return False
    if not path.is_file():
        raise ResultsError(f"{path}: not a regular file")
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as e:
        raise ResultsError(f"{path}: cannot open it for reading and appending ({e.strerror or e})") from None
    return True


def lock(fd: int, shared: bool = False) -> None:
    """flock, held until the descriptor is closed; skipped where the system has none."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
            raise


def same_file(fd: int, path: Path) -> bool:
    """The descriptor is still the file at path (not one renamed over it, nor one removed)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at_path.st_dev, at_path.st_ino)


@contextmanager
def locked(path: Path, flags: int, shared: bool = False) -> Iterator[int]:
    """An open descriptor of path, locked; reopened until the lock is held on the file the
    path names. FileNotFoundError when the file is gone."""
    while True:
        fd = os.open(path, flags)
        try:
            lock(fd, shared)
            if same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # replaced while we waited: lock the new one
    try:
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def dangling(path: Path) -> str:
    """Why path cannot be created or appended to because it is a symbolic link to nothing, else ""
    (creating the file would fail as the link exists, and opening it as its target does not)."""
    if path.is_symlink() and not path.exists():
        return f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; it is left untouched"
    return ""


def temp_beside(path: Path, purpose: str) -> Path:
    """A fresh hidden name in the same directory (a rename within one file system is atomic)."""
    return path.with_name(f".{path.name}.{purpose}-{os.getpid()}-{secrets.token_hex(4)}")


def write_new(path: Path, data: bytes) -> None:
    """Create path holding data; FileExistsError if it exists, ResultsError if it is a dangling
    link (which a caller waiting for the file to appear would wait on for ever). Written whole to
    a temporary file first, then hard-linked into place, so no one ever sees it half written."""
    if why := dangling(path):
        raise ResultsError(why)
    temp = temp_beside(path, "new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here: an exclusive create, written under the lock
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            lock(fd)
            if os.fstat(fd).st_size == 0:
                write_all(fd, data)
        finally:
            os.close(fd)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def replace_with(path: Path, data: bytes, purpose: str) -> None:
    """Put data at path in one step, the one atomic write of the package: a temporary file
    beside it (with the permissions of the file it replaces, if any), fsynced, renamed over it."""
    temp = temp_beside(path, purpose)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            if path.exists():
                os.fchmod(fd, os.stat(path).st_mode & 0o7777)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte or none: a short write (a full disk) is cut back off and raised."""
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written == 0:
                raise OSError("wrote nothing")
            view = view[written:]
    except BaseException:
        os.ftruncate(fd, start)
        raise


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
