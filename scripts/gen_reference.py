"""Write docs/reference.md: every command, flag and CSV column, read off the argument parsers
(bertbench.flags, bertbench.compare, bertbench.plot_cli) and the schema (bertbench.spec.schema).

    python scripts/gen_reference.py            write docs/reference.md
    python scripts/gen_reference.py --check    exit 1 when docs/reference.md is stale

It imports bertbench: install the package (pip install -e .), or run it from the repository
root without installing as python -m scripts.gen_reference. tests/test_reference.py fails
when the file is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from bertbench import compare, flags, plot_cli
from bertbench.spec import dataset_schema, schema

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
COMMAND = "python scripts/gen_reference.py"

TYPE_NAMES = {
    int: "integer",
    float: "number",
    str: "text",
    Path: "path",
    flags.whole: "integer",
    flags.finite: "number",
}


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def captured_parser(call: Callable[[], object]) -> argparse.ArgumentParser:
    """The parser a command builds: `call` runs the command, whose parse_args stops it there."""

    def stop(parser, *args, **kwargs):
        raise _Captured(parser)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", stop):
        try:
            call()
        except _Captured as captured:
            return captured.parser
    raise RuntimeError(f"{call!r} parsed no arguments with argparse")


def cell(text: object) -> str:
    """Text safe in a markdown table cell."""
    text = " ".join(str(text).split())
    for raw, safe in (("|", "\\|"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(raw, safe)
    return text


def code(text: object) -> str:
    return "`" + str(text).replace("|", "\\|") + "`"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def help_text(action: argparse.Action, prog: str) -> str:
    if action.help is None:
        return ""
    params = {**vars(action), "prog": prog}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return action.help % params  # as argparse expands it: %(default)s, %% ...


def value_of(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "switch"
    if action.choices is not None:
        value = " \\| ".join(code(c) for c in action.choices)
    else:
        metavar = action.metavar or (action.dest if not action.option_strings else action.dest.upper())
        value = code(metavar)
        kind = TYPE_NAMES.get(action.type)
        if kind:
            value += f" ({kind})"
    if action.nargs in ("+", "*"):
        value += ", one or more" if action.nargs == "+" else ", any number"
    return value


def default_of(action: argparse.Action) -> str:
    default = action.default
    if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
        return "off" if default is False else ""
    if default is None or default is argparse.SUPPRESS:
        return "required" if action.required else ""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list | tuple):
        return " ".join(code(v) for v in default)
    return code(default)


def option_table(parser: argparse.ArgumentParser, actions: list[argparse.Action]) -> list[str]:
    rows = []
    for action in actions:
        if action.help is argparse.SUPPRESS:
            continue
        names = ", ".join(code(o) for o in action.option_strings) or code(action.metavar or action.dest)
        rows.append([names, value_of(action), default_of(action), cell(help_text(action, parser.prog))])
    return table(["Flag", "Value", "Default", "Meaning"], rows)


def parser_section(parser: argparse.ArgumentParser, level: str = "###") -> list[str]:
    """One table per argument group of the parser (argparse's own groups by their titles)."""
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        title = {"positional arguments": "arguments", "optional arguments": "options"}.get(group.title, group.title)
        lines += ["", f"{level} {title.capitalize()}", "", *option_table(parser, actions)]
    return lines


def synopsis(parser: argparse.ArgumentParser, width: int = 100) -> str:
    """The usage line, wrapped between arguments (argparse's own depends on the terminal)."""
    parts = []
    for action in parser._actions:
        if action.help is argparse.SUPPRESS or isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if not action.option_strings:
            parts.append(action.metavar or action.dest)
        elif action.nargs == 0:
            parts.append("[" + " | ".join(action.option_strings) + "]")
        else:
            metavar = action.metavar or action.dest.upper()
            parts.append(f"[{action.option_strings[0]} {metavar}{' ...' if action.nargs in ('+', '*') else ''}]")
    lines = [parser.prog]
    for part in parts:
        if len(lines[-1]) + 1 + len(part) > width:
            lines.append("    " + part)
        else:
            lines[-1] += " " + part
    return "\n".join(lines)


def description(parser: argparse.ArgumentParser) -> str:
    """The description's first paragraph, on one line."""
    return " ".join((parser.description or "").strip().split("\n\n")[0].split())


JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def columns_section() -> list[str]:
    keys = set(schema.KEY_COLUMNS)
    rows = [
        [str(i), code(column), JSON_TYPES[schema.COLUMN_TYPES[column]], "key" if column in keys else "",
         cell(schema.COLUMN_DOCS[column])]
        for i, column in enumerate(schema.COLUMNS, 1)
    ]  # fmt: skip
    return [
        "",
        "## CSV columns",
        "",
        f"Schema version {schema.SCHEMA_VERSION}: the `schema_version` column of every row written now. "
        f"Each run appends one row per grid point and implementation to `<output-dir>/<task>.csv`, "
        f"in this order ({len(schema.COLUMNS)} columns). Memory is in MiB and times in milliseconds "
        "unless a name says otherwise; an empty cell holds no value (not measured, or not applicable).",
        "",
        f"`status` is one of {', '.join(code(s) for s in schema.STATUSES)}.",
        "",
        "**Key** marks the resume key (`KEY_COLUMNS`): rows that agree on all of them are the same "
        "measurement. `--resume` skips a point whose key already has a row with status `ok` or `mismatch` "
        "(or `unavailable` under the same library versions), and "
        "`bertbench compare` joins two runs on the key without `device`. `device` is compared without "
        "the GPU's index, so a point measured on any GPU of a host counts. "
        f"{' and '.join(code(c) for c in schema.EXTRA_MEASUREMENTS)} add measurements to a row "
        "rather than make it another grid point.",
        "",
        "**JSON** is the column's type in `<output-dir>/<task>.jsonl`, the same rows as JSON Lines (one object "
        "a row, every column a key, an empty cell `null`): [record.md](record.md).",
        "",
        *table(["#", "Column", "JSON", "Key", "Meaning"], rows),
    ]


def dataset_columns_section() -> list[str]:
    rows = [
        [str(i), code(column), cell(dataset_schema.DATASET_COLUMN_DOCS[column])]
        for i, column in enumerate(dataset_schema.DATASET_COLUMNS, 1)
    ]
    return [
        "",
        "## Dataset-pass CSV columns",
        "",
        f"Schema version {dataset_schema.DATASET_SCHEMA_VERSION}. `--dataset` appends one row per implementation "
        f"and batching strategy to `<output-dir>/dataset/<task>.csv`, in this order "
        f"({len(dataset_schema.DATASET_COLUMNS)} columns). Times of a whole pass are in seconds, memory in MiB.",
        "",
        *table(["#", "Column", "Meaning"], rows),
    ]


def render() -> str:
    bench = flags.build_parser("bertbench")
    comparing = captured_parser(lambda: compare.parse_args([], "bertbench compare"))
    plotting = captured_parser(lambda: plot_cli.main([]))
    commands = [
        (bench, "`python benchmark_bert.py`, `python -m bertbench`"),
        (comparing, "`python -m bertbench.compare`"),
        (plotting, "`python plot.py`"),
    ]
    lines = [
        "<!-- Generated by scripts/gen_reference.py from bertbench/flags.py, bertbench/compare.py, "
        f"bertbench/plot_cli.py, bertbench/spec/schema.py and bertbench/spec/dataset_schema.py. "
        f"Do not edit: change those and run {COMMAND}. -->",
        "",
        "# Reference",
        "",
        "Every command, flag and CSV column of bert-attention-bench. `bertbench --version` prints the version.",
        "",
        "## Commands",
        "",
        *table(
            ["Command", "Also", "What it does"],
            [[code(p.prog), also, cell(description(p))] for p, also in commands],
        ),
    ]
    for parser, _ in commands:
        lines += ["", f"## `{parser.prog}`", "", "```", synopsis(parser), "```", *parser_section(parser)]
    lines += columns_section()
    lines += dataset_columns_section()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/reference.md from the parsers and the schema.")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/reference.md is stale; write nothing")
    args = parser.parse_args(argv)
    text = render()
    current = REFERENCE.read_text() if REFERENCE.exists() else None
    if args.check:
        if current != text:
            print(f"{REFERENCE.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{REFERENCE.relative_to(ROOT)} is up to date")
        return 0
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE.relative_to(ROOT)}" + (" (unchanged)" if current == text else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
