"""docs/reference.md is generated from the argument parsers and the schema by
scripts/gen_reference.py; these tests fail when it is stale or misses a flag or a column."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

from bertbench.flags import build_parser
from bertbench.spec import schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen_reference():
    path = ROOT / "scripts" / "gen_reference.py"
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(gen_reference) -> str:
    return gen_reference.render()


def test_reference_is_up_to_date(generated):
    path = ROOT / "docs" / "reference.md"
    current = path.read_text() if path.exists() else ""
    if current != generated:
        diff = difflib.unified_diff(current.splitlines(), generated.splitlines(), "committed", "generated", lineterm="")
        pytest.fail(
            "docs/reference.md is stale (a flag, a command or a CSV column changed): "
            "run `python scripts/gen_reference.py` and commit docs/reference.md\n" + "\n".join(list(diff)[:30]),
            pytrace=False,
        )


def test_every_flag_and_column_is_listed(generated):
    options = [o for a in build_parser()._actions for o in a.option_strings]
    assert "--task" in options and "--no-use-mask" in options
    for option in options:
        assert f"`{option}`" in generated, option
    json_types = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}  # docs/record.md
    for column in schema.COLUMNS:
        assert f"| `{column}` | {json_types[schema.COLUMN_TYPES[column]]} |" in generated, column
    key_rows = [line for line in generated.splitlines() if line.startswith("| ") and "| key |" in line]
    assert len(key_rows) == len(schema.KEY_COLUMNS)
    for status in schema.STATUSES:
        assert f"`{status}`" in generated


def test_every_command_is_listed(generated):
    for command in ("## `bertbench`", "## `bertbench compare`", "## `bertbench-plot`"):
        assert command in generated
    for option in ("--threshold", "--fail-above", "--out", "--results-dir", "--plots-dir", "--format"):
        assert f"`{option}`" in generated


def test_check_reports_a_stale_file(gen_reference, tmp_path, monkeypatch, capsys):
    stale = tmp_path / "reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(gen_reference, "REFERENCE", stale)
    monkeypatch.setattr(gen_reference, "ROOT", tmp_path)
    assert gen_reference.main(["--check"]) == 1
    assert "python scripts/gen_reference.py" in capsys.readouterr().err
    assert stale.read_text() == "old\n"
    assert gen_reference.main([]) == 0
    assert gen_reference.main(["--check"]) == 0
