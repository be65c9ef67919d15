"""The --dataset CSV: whole rows appended under the lock, its own header, a foreign file left alone."""

from __future__ import annotations

import pytest

from bertbench.spec.dataset_schema import DATASET_COLUMNS, DatasetRow, fastest
from bertbench.store.csvfile import ResultsError
from bertbench.store.dataset_file import append, check, dataset_path, latest_run, read_dataset, read_rows


def row(run: str, name: str, strategy: str, total: float | None, status: str = "ok") -> DatasetRow:
    return DatasetRow(run_id=run, task="qa", attn_implementation=name, is_baseline=name == "eager", baseline="eager",
                      strategy=strategy, total_s=total, status=status)  # fmt: skip


def test_rows_are_appended_after_the_header_and_read_back(tmp_path):
    path = dataset_path(tmp_path, "qa")
    append(path, [row("a", "eager", "pad-max", 2.0)])
    append(path, [row("a", "sdpa", "sorted", 0.5), row("b", "sdpa", "pad-max", 1.0)])
    assert path.read_text().splitlines()[0] == ",".join(DATASET_COLUMNS)
    rows = read_dataset(path)
    assert [(r["run_id"], r["strategy"]) for r in rows] == [("a", "pad-max"), ("a", "sorted"), ("b", "pad-max")]
    assert read_rows(tmp_path) == rows and [r["run_id"] for r in latest_run(rows)["qa"]] == ["b"]


def test_a_cut_last_line_is_left_out_and_the_next_row_starts_on_its_own_line(tmp_path):
    path = dataset_path(tmp_path, "qa")
    append(path, [row("a", "eager", "pad-max", 2.0)])
    with path.open("a") as f:
        f.write("2026,a,1,qa,bert")  # a crash's cut row
    append(path, [row("a", "sdpa", "pad-max", 1.0)])
    assert [r["attn_implementation"] for r in read_dataset(path)] == ["eager", "sdpa"]


def test_a_file_of_other_columns_is_refused_and_left_untouched(tmp_path):
    path = dataset_path(tmp_path, "qa")
    path.parent.mkdir()
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="not a bertbench dataset file"):
        check(path)
    with pytest.raises(ResultsError):
        append(path, [row("a", "eager", "pad-max", 2.0)])
    assert path.read_text() == "a,b\n1,2\n"


def test_the_fastest_ok_combination_and_its_gain_over_the_baseline_with_pad_max():
    rows = [row("a", "eager", "pad-max", 4.0).__dict__, row("a", "sdpa", "packed", 0.5, "mismatch").__dict__,
            row("a", "sdpa", "sorted", 1.0).__dict__, row("a", "sdpa", "pad-max", None, "oom").__dict__]  # fmt: skip
    winner = fastest(rows)
    assert winner is not None and (winner.implementation, winner.strategy) == ("sdpa", "sorted")
    assert winner.times == 4.0 and winner.speedup_pct == 300.0
    assert "4.00x the speed of eager with pad-max (+300.0 %)" in winner.text("eager")
    assert fastest([row("a", "sdpa", "sorted", 1.0).__dict__]).times is None
    assert fastest([]) is None


def test_the_least_gpu_time_is_picked_on_its_own_figure_and_absent_where_no_row_has_it():
    """A host-bound pass of many small batches can be slower end to end yet leave the GPU less
    work: each figure names its own winner, against the baseline's pad-max on that figure."""
    rows = [row("a", "eager", "pad-max", 4.0), row("a", "sdpa", "sorted", 1.0), row("a", "sdpa", "packed", 2.0)]
    for r, gpu in zip(rows, (2.0, 0.8, 0.5), strict=True):
        r.gpu_s = gpu
    dicts = [r.__dict__ for r in rows]
    by_pass, on_gpu = fastest(dicts), fastest(dicts, "gpu_s")
    assert (by_pass.strategy, by_pass.seconds, by_pass.times) == ("sorted", 1.0, 4.0)
    assert (on_gpu.strategy, on_gpu.seconds, on_gpu.times, on_gpu.speedup_pct) == ("packed", 0.5, 4.0, 300.0)
    assert on_gpu.text("eager") == (
        "least GPU time: sdpa with packed, 0.5 s of GPU time a pass, 4.00x less than eager with pad-max (+300.0 %)"
    )
    assert fastest([row("a", "sdpa", "sorted", 1.0).__dict__], "gpu_s") is None  # a CPU run


def test_a_version_1_file_is_read_with_the_graph_columns_empty_and_migrated_when_appended_to(tmp_path, capsys):
    from bertbench.spec.dataset_schema import DATASET_SCHEMA_VERSION

    old_columns = [c for c in DATASET_COLUMNS if not c.startswith("graph")]
    path = dataset_path(tmp_path, "qa")
    path.parent.mkdir()
    old = row("a", "eager", "pad-max", 2.0).as_csv()
    old["schema_version"] = "1"
    path.write_text(",".join(old_columns) + "\r\n" + ",".join(old[c] for c in old_columns) + "\r\n")
    check(path)
    (read,) = read_dataset(path)
    assert read["total_s"] == "2" and read["graph_note"] == "" and list(read) == list(DATASET_COLUMNS)
    new = row("b", "sdpa", "sorted", 1.0)
    new.graph_note, new.graphs = "ok", 4
    append(path, [new])
    assert path.read_text().splitlines()[0] == ",".join(DATASET_COLUMNS)
    rows = read_dataset(path)
    assert [(r["run_id"], r["schema_version"], r["graphs"]) for r in rows] == [("a", "1", ""), ("b", "", "4")]
    assert f"migrated from an older column layout to dataset schema version {DATASET_SCHEMA_VERSION}" in (
        capsys.readouterr().err
    )


def test_each_append_keeps_a_typed_json_lines_record_in_step_that_pandas_loads(tmp_path, capsys):
    import json

    import pandas as pd

    from bertbench.store.dataset_file import record_of

    path = dataset_path(tmp_path, "qa")
    append(path, [row("a", "eager", "pad-max", 2.0)])
    first = row("a", "sdpa", "sorted", 0.5)
    first.batches, first.gpu_s = 4, 0.25
    append(path, [first])
    record = record_of(path)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [list(line) for line in lines] == [list(DATASET_COLUMNS)] * 2
    assert lines[1]["total_s"] == 0.5 and lines[1]["batches"] == 4 and lines[1]["is_baseline"] is False
    assert lines[1]["graph_note"] is None and lines[0]["is_baseline"] is True
    frame = pd.read_json(record, lines=True)
    assert list(frame["attn_implementation"]) == ["eager", "sdpa"] and frame["gpu_s"].iloc[1] == 0.25
    assert capsys.readouterr().err == ""  # in step row by row: no notice


def test_with_only_the_record_left_it_is_read_and_the_csv_rebuilt_from_it(tmp_path):
    from bertbench.store.dataset_file import record_of

    path = dataset_path(tmp_path, "qa")
    append(path, [row("a", "eager", "pad-max", 2.0), row("a", "sdpa", "sorted", 0.5)])
    before = read_dataset(path)
    path.unlink()
    assert read_dataset(path) == before and read_rows(tmp_path) == before
    append(path, [row("b", "sdpa", "pad-max", 1.0)])
    assert [r["run_id"] for r in read_dataset(path)] == ["a", "a", "b"]
    assert len(record_of(path).read_text().splitlines()) == 3


def test_a_record_not_ours_is_refused_before_anything_is_written_and_a_line_the_csv_lacks_is_kept(tmp_path, capsys):
    from bertbench.store.dataset_file import record_of

    path = dataset_path(tmp_path, "qa")
    path.parent.mkdir()
    record_of(path).write_text('{"a": 1}\n')
    with pytest.raises(ResultsError, match="not a bertbench dataset record file"):
        check(path)
    with pytest.raises(ResultsError):
        append(path, [row("a", "eager", "pad-max", 2.0)])
    assert record_of(path).read_text() == '{"a": 1}\n' and not path.exists()  # nothing written
    other = dataset_path(tmp_path / "o", "qa")
    append(other, [row("a", "eager", "pad-max", 2.0)])
    stray = row("x", "sdpa", "sorted", 9.0).as_csv()
    from bertbench.store import records

    with record_of(other).open("ab") as f:
        f.write(records.encode(records.typed(stray, records_layout())))
    append(other, [row("b", "sdpa", "pad-max", 1.0)])
    (aside,) = other.parent.glob("qa.jsonl.stale-*")
    assert '"run_id":"x"' in aside.read_text() and "kept as" in capsys.readouterr().err
    assert [r["run_id"] for r in records.load(record_of(other), records_layout())] == ["a", "b"]


def records_layout():
    from bertbench.store.dataset_file import LAYOUT

    return LAYOUT
