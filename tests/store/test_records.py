"""The JSON Lines record beside each results CSV (bertbench/store/records.py)."""

import csv
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from helpers import in_step

from bertbench.spec.schema import COLUMN_TYPES, COLUMNS, SCHEMA_VERSION
from bertbench.store.records import UnknownVersion, typed
from bertbench.store.results import (
    DamagedFile,
    HeaderMismatch,
    ResultsError,
    ResultsFile,
    finished_keys,
    load_rows,
    part_path,
    prepare,
)

FIRST_LAYOUT = ("timestamp", "task", "model", "attn_implementation", "batch_size", "max_seqlen", "avg_seqlen",
                "latency_ms", "status", "detail")  # fmt: skip


def row(**kw) -> dict:
    base = {"run_id": "r1", "schema_version": SCHEMA_VERSION, "task": "qa", "model": "bert-tiny",
            "attn_implementation": "sdpa", "baseline": "eager", "device": "cpu", "dtype": "fp32", "batch_size": 2,
            "max_seqlen": 32, "avg_seqlen": 16.0, "seqlen_stdev": 10.0, "use_mask": True, "packed": False,
            "mode": "inference", "cuda_graphs": False, "compile": False, "latency_ms": 1.25, "status": "ok",
            "timestamp": "2026-12-03T10:00:00+00:00"}  # fmt: skip
    return {**base, **kw}


def write(path: Path, rows: list[dict], notices: list | None = None) -> Path:
    results = ResultsFile(path, (notices if notices is not None else []).append)
    results.append_many(rows)
    results.close()
    return path


def test_each_row_is_a_json_line_with_typed_values_that_pandas_reads_as_the_csv(tmp_path):
    rows = [row(), row(batch_size=4, latency_ms=float("nan"), noisy=True, detail='a, "quoted"\r\nvalue, é ✓'),
            row(batch_size=8, status="unavailable", latency_ms=None, detail="no kernel")]  # fmt: skip
    path = write(tmp_path / "qa.csv", rows)
    lines = (tmp_path / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert list(first) == list(COLUMNS)  # every column, in the CSV's order
    assert (first["batch_size"], first["avg_seqlen"], first["packed"], first["use_mask"]) == (2, 16.0, False, True)
    assert (first["schema_version"], first["run_id"], first["runs"]) == (SCHEMA_VERSION, "r1", None)  # empty: null
    assert json.loads(lines[1])["latency_ms"] is None and json.loads(lines[1])["detail"].endswith("é ✓")

    records = pd.read_json(tmp_path / "qa.jsonl", lines=True, dtype=False)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(records.columns) == list(table.columns) == list(COLUMNS) and len(records) == len(table) == 3
    for column in COLUMNS:
        for value, text in zip(records[column], table[column], strict=True):
            if COLUMN_TYPES[column] in ("int", "float"):
                assert (math.isnan(value) and text == "") or value == float(text), (column, value, text)
            else:
                assert ("" if pd.isna(value) else str(value)) == text, (column, value, text)
    assert load_rows(tmp_path / "qa.jsonl") == load_rows(path)


def test_a_rank_part_file_has_no_record(tmp_path):
    write(part_path(tmp_path, "qa", 0), [row()])
    assert [p.name for p in tmp_path.iterdir()] == ["qa.csv.part0"]


def test_rows_a_crash_kept_from_the_record_are_added_when_the_csv_is_next_prepared(tmp_path):
    path = write(tmp_path / "qa.csv", [row(batch_size=b) for b in (1, 2, 3)])
    record = tmp_path / "qa.jsonl"
    lines = record.read_bytes().splitlines(keepends=True)
    record.write_bytes(lines[0] + lines[2][:40])  # one row missing, the last cut short: killed mid-write
    notices = []
    write(path, [row(batch_size=4)], notices)
    assert "brought in step with qa.csv (3 rows, 1 there before)" in notices[0]
    assert in_step(path) and [r["batch_size"] for r in load_rows(record)] == ["1", "2", "3", "4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "qa.jsonl"]  # nothing lost, nothing aside


def test_a_record_holding_what_the_csv_lacks_is_kept_aside_then_rewritten(tmp_path):
    path = write(tmp_path / "qa.csv", [row(batch_size=1), row(batch_size=2)])
    record = tmp_path / "qa.jsonl"
    edited = record.read_text().replace('"latency_ms":1.25', '"latency_ms":9.5', 1) + "not json\n"
    record.write_text(edited)
    notices = []
    write(path, [row(batch_size=3)], notices)
    (aside,) = tmp_path.glob("qa.jsonl.stale-*")
    assert aside.read_text() == edited  # as it was
    assert "line 1: a row qa.csv lacks, and 1 more" in notices[0] and f"kept as {aside.name}" in notices[0]
    assert in_step(path) and len(load_rows(record)) == 3


def test_a_csv_from_before_the_record_gets_one_when_it_is_migrated(tmp_path):
    path = tmp_path / "qa.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIRST_LAYOUT, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({c: "" for c in FIRST_LAYOUT} | row(detail="old, kept"))
    notices = []
    write(path, [row(batch_size=4)], notices)
    assert "migrated" in notices[0] and "written from the 1 rows of qa.csv" in notices[1]
    assert in_step(path)
    (old, new) = [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert old["schema_version"] is None and old["packed"] is None and old["detail"] == "old, kept"  # as the CSV has
    assert new["schema_version"] == SCHEMA_VERSION and load_rows(tmp_path / "qa.jsonl")[0]["packed"] == "False"


def test_a_folder_with_only_records_resumes_and_gets_its_csv_back(tmp_path):
    path = write(tmp_path / "qa.csv", [row(batch_size=1), row(batch_size=2, status="oom", latency_ms=None)])
    before = load_rows(path)
    path.unlink()  # a folder downloaded from a dataset hub: the records alone
    assert load_rows(tmp_path / "qa.jsonl") == before
    assert len(finished_keys(tmp_path, "qa")) == 1  # the ok row is done, the oom one is not
    write(path, [row(batch_size=2)])
    assert load_rows(path)[:2] == before and len(load_rows(path)) == 3 and in_step(path)


def test_a_run_into_a_folder_of_records_cut_short_writes_the_csv_from_the_whole_lines(tmp_path):
    path = write(tmp_path / "qa.csv", [row(batch_size=1), row(batch_size=2)])
    path.unlink()
    record = tmp_path / "qa.jsonl"
    cut = record.read_bytes()[:-20]  # the last line cut short
    record.write_bytes(cut)
    notices = []
    prepare(path, notices.append)  # as a run does first, before --resume reads the keys
    assert [r["batch_size"] for r in load_rows(path)] == ["1"] and in_step(path)
    (aside,) = tmp_path.glob("qa.jsonl.stale-*")
    assert aside.read_bytes() == cut and "line 2: cut short" in notices[0]


NOT_OURS = {
    "not JSON": b"timestamp,task\n1,2\n",
    "not an object": b"[1, 2]\n",
    "other keys": b'{"name": "x", "value": 1}\n',
}


@pytest.mark.parametrize("data", NOT_OURS.values(), ids=NOT_OURS.keys())
def test_a_record_not_ours_is_refused_and_left_untouched(tmp_path, data):
    write(tmp_path / "qa.csv", [row()])
    (tmp_path / "qa.jsonl").write_bytes(data)
    with pytest.raises(HeaderMismatch, match=r"is not a bertbench record file .*left untouched"):
        write(tmp_path / "qa.csv", [row(batch_size=4)])
    with pytest.raises(HeaderMismatch):
        load_rows(tmp_path / "qa.jsonl")
    assert (tmp_path / "qa.jsonl").read_bytes() == data and len(load_rows(tmp_path / "qa.csv")) == 1


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "7"])
def test_a_record_of_an_unknown_schema_version_is_refused_by_reader_and_writer(tmp_path, version):
    path = write(tmp_path / "qa.csv", [row(), row(batch_size=4)])
    record = tmp_path / "qa.jsonl"
    first, second = record.read_text().splitlines(keepends=True)
    data = first + second.replace(f'"schema_version":{SCHEMA_VERSION}', f'"schema_version":{json.dumps(version)}')
    record.write_text(data)
    newer = "; a newer bertbench wrote it" if version == SCHEMA_VERSION + 1 else ""
    message = f"line 2: schema version {json.dumps(version)} is unknown to this bertbench, which reads 1 to"
    with pytest.raises(UnknownVersion, match=message + f" {SCHEMA_VERSION}{newer}"):
        load_rows(record)
    with pytest.raises(UnknownVersion):
        write(path, [row(batch_size=8)])
    assert record.read_text() == data and len(load_rows(path)) == 2


def test_reading_a_record_names_the_first_line_that_is_not_one(tmp_path):
    write(tmp_path / "qa.csv", [row(), row(batch_size=4)])
    (tmp_path / "qa.csv").unlink()
    record = tmp_path / "qa.jsonl"
    lines = record.read_text().splitlines(keepends=True)
    listed = lines[1].replace('"batch_size":4', '"batch_size":[4]')
    cases = {
        lines[0] + listed: "line 2: batch_size holds [4], not an integer",
        lines[0] + '{"broken": \n': "line 2: not JSON",
        lines[0] + lines[1].replace('"latency_ms":1.25', '"latency_ms":NaN'): "line 2: latency_ms holds nan, which",
        lines[0] + lines[1][:30]: "line 2: cut short (no line end)",
    }  # fmt: skip
    for data, message in cases.items():
        record.write_text(data)
        with pytest.raises(ResultsError, match="^" + re.escape(f"{record} {message}")):
            load_rows(record)
    record.write_text(lines[0] + '{"broken": \n')
    with pytest.raises(DamagedFile, match=r"no qa\.csv beside it to rewrite it from"):  # a run refuses it
        ResultsFile(tmp_path / "qa.csv")
    assert not (tmp_path / "qa.csv").exists()


def test_text_that_is_not_of_its_columns_type_is_kept_as_it_is():
    values = typed({"batch_size": "2", "avg_seqlen": "16", "use_mask": "use_mask-0", "latency_ms": "inf"})
    assert (values["batch_size"], values["avg_seqlen"], values["use_mask"], values["latency_ms"]) == (
        2,
        16.0,
        "use_mask-0",
        "inf",  # JSON has no infinity
    )
