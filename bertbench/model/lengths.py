"""Real lengths from a user's file (--lengths FILE), read and checked before any model loads.

A file is one of three kinds, told by its first non-empty line:
  - token counts, one whole number >= 1 per line (the first line is a number);
  - JSON Lines, one object per line with a string field "text" (the first line starts with "{");
  - text, one text per line (anything else).
Texts are turned into lengths by the model's own tokenizer (special tokens included, as the
model sees them), so a text file needs a checkpoint with its tokenizer (--model PATH). Each
length is truncated at the run's max seqlen when a batch is drawn. The file's SHA-256 names it
in every row and in the run's manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 512 * 2**20  # a lengths file larger than this is not one


class LengthsError(ValueError):
    """The file cannot give lengths; the message says why, in one line."""


@dataclass(frozen=True)
class LengthsFile:
    path: str
    kind: str  # counts, jsonl or text
    lengths: tuple[int, ...]
    sha256: str

    def truncated(self, max_seqlen: int) -> list[int]:
        return [min(n, max_seqlen) for n in self.lengths]

    def mean(self, max_seqlen: int) -> float:
        values = self.truncated(max_seqlen)
        return sum(values) / len(values)


def read_lengths(path: str | Path, tokenizer: Callable[[], Callable[[list[str]], list[int]]] | None) -> LengthsFile:
    """The lengths of a file; `tokenizer()` gives a function from texts to token counts (only
    called for text and JSON Lines). LengthsError for a missing, unreadable, empty, binary or
    malformed file, or texts without a tokenizer."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LengthsError(f"--lengths {path}: no such file")
    if not path.is_file():
        raise LengthsError(f"--lengths {path}: not a file")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise LengthsError(f"--lengths {path}: larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as e:
        raise LengthsError(f"--lengths {path}: cannot read it ({e.strerror or e})") from None
    if b"\0" in data:
        raise LengthsError(f"--lengths {path}: a binary file (NUL bytes), not token counts or text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LengthsError(f"--lengths {path}: not UTF-8 text (byte {e.start})") from None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise LengthsError(f"--lengths {path}: empty (no token counts or texts)")
    digest = hashlib.sha256(data).hexdigest()
    first = lines[0][1]
    if _is_number(first):
        return LengthsFile(str(path), "counts", _counts(path, lines), digest)
    kind = "jsonl" if first.startswith("{") else "text"
    texts = _jsonl(path, lines) if kind == "jsonl" else [line for _, line in lines]
    if tokenizer is None:
        raise LengthsError(
            f"--lengths {path}: texts need the model's tokenizer: give --model PATH of a checkpoint with one, "
            "or a file of token counts"
        )
    counts = tokenizer()(texts)
    if any(n < 1 for n in counts):
        raise LengthsError(f"--lengths {path}: the tokenizer gave a text no tokens")
    return LengthsFile(str(path), kind, tuple(counts), digest)


def read_texts(path: str | Path) -> list[str] | None:
    """The texts of a file read_lengths has accepted, in file order; None for a file of token counts."""
    data = Path(path).expanduser().read_bytes()
    lines = [(number, line.strip()) for number, line in enumerate(data.decode("utf-8").splitlines(), 1) if line.strip()]
    first = lines[0][1]
    if _is_number(first):
        return None
    return _jsonl(Path(path), lines) if first.startswith("{") else [line for _, line in lines]


def token_ids_of(model_path: str, texts: list[str], max_seqlen: int) -> list[list[int]]:
    """The checkpoint's tokenizer's ids of each text (special tokens included), truncated at max_seqlen
    as the tokenizer truncates (the last token kept is [SEP]): what the model would be given."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    return tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_seqlen)["input_ids"]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _counts(path: Path, lines: list[tuple[int, str]]) -> tuple[int, ...]:
    counts = []
    for number, line in lines:
        try:
            value = int(line)
        except ValueError:
            what = "not a whole number" if _is_number(line) else "not a token count"
            raise LengthsError(f"--lengths {path}: line {number} is {what}: {line[:40]!r}") from None
        if value < 1:
            raise LengthsError(f"--lengths {path}: line {number}: {value} tokens (a length is at least 1)")
        counts.append(value)
    return tuple(counts)


def _jsonl(path: Path, lines: list[tuple[int, str]]) -> list[str]:
    texts = []
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise LengthsError(f"--lengths {path}: line {number} is not JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LengthsError(f'--lengths {path}: line {number} has no string field "text"')
        texts.append(record["text"])
    return texts


def tokenizer_of(model_path: str) -> Callable[[], Callable[[list[str]], list[int]]]:
    """A loader of the checkpoint's tokenizer as texts -> token counts (special tokens included)."""

    def load() -> Callable[[list[str]], list[int]]:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        except Exception as e:
            raise LengthsError(
                f"--model {model_path}: no tokenizer to turn --lengths texts into lengths ({e})"
            ) from None
        return lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]

    return load
