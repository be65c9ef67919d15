import pytest

from bertbench.results import (
    HeaderMismatch,
    ResultsFile,
    finished_keys,
    merge_parts,
    part_path,
    read_rows,
)
from bertbench.schema import COLUMNS, row_key


def row(**kw):
    base = {c: "" for c in COLUMNS}
    base.update(
        task="qa",
        model="bert-tiny",
        attn_implementation="sdpa",
        baseline="eager",
        device="cpu",
        dtype="fp32",
        batch_size=2,
        max_seqlen=32,
        avg_seqlen=16.0,
        seqlen_stdev=10.0,
        use_mask=True,
        status="ok",
        latency_ms=float("nan"),
    )
    base.update(kw)
    return base


def test_rows_are_appended_never_overwritten(tmp_path):
    path = tmp_path / "qa.csv"
    first = ResultsFile(path)
    first.append(row())
    first.close()
    second = ResultsFile(path)
    second.append(row(batch_size=4))
    second.close()
    rows = read_rows(path)
    assert [r["batch_size"] for r in rows] == ["2", "4"]
    assert path.read_text().count("timestamp,") == 1  # one header
    assert rows[0]["latency_ms"] == ""  # NaN is written empty


def test_each_row_is_on_disk_as_soon_as_it_is_appended(tmp_path):
    path = tmp_path / "qa.csv"
    results = ResultsFile(path)
    results.append(row())
    assert len(read_rows(path)) == 1  # before close: an interrupted run keeps it
    results.close()


def test_resume_keys_only_ok_rows_and_match_new_rows(tmp_path):
    path = tmp_path / "qa.csv"
    results = ResultsFile(path)
    results.append(row())
    results.append(row(batch_size=4, status="oom"))
    results.close()
    done = finished_keys(tmp_path, "qa")
    assert row_key(row()) in done and row_key(row(batch_size=4)) not in done
    assert row_key(row(avg_seqlen=16)) in done  # 16 and 16.0 are one grid point


def test_part_files_count_for_resume_whichever_gpu_wrote_them_and_merge_in_order(tmp_path):
    part = ResultsFile(part_path(tmp_path, "qa", 1))
    part.append(row(batch_size=8, device="NVIDIA H100 (cuda:1)"))
    part.append(row(batch_size=2, device="NVIDIA H100 (cuda:1)"))
    part.close()
    other = ResultsFile(part_path(tmp_path, "qa", 0))
    other.append(row(batch_size=4, device="NVIDIA H100 (cuda:0)"))
    other.close()
    assert row_key(row(batch_size=8, device="NVIDIA H100 (cuda:0)")) in finished_keys(tmp_path, "qa")
    assert merge_parts(tmp_path, "qa", lambda r: int(r["batch_size"])) == 3
    assert [r["batch_size"] for r in read_rows(tmp_path / "qa.csv")] == ["2", "4", "8"]
    assert list(tmp_path.iterdir()) == [tmp_path / "qa.csv"]  # the parts are gone


def test_a_file_with_other_columns_is_never_mixed(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("task,latency\nqa,1.0\n")
    with pytest.raises(HeaderMismatch, match=str(path)):
        ResultsFile(path)
    assert path.read_text() == "task,latency\nqa,1.0\n"
