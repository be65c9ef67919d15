import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import in_step

from bertbench.spec.schema import COLUMNS, row_key
from bertbench.store.results import (
    DamagedFile,
    HeaderMismatch,
    ResultsFile,
    done_for_resume,
    finished_keys,
    load_rows,
    merge_parts,
    part_path,
    read_rows,
)


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
        packed=False,
        mode="inference",
        cuda_graphs=False,
        compile=False,
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "qa.jsonl"]  # the parts are gone, had no record
    assert in_step(tmp_path / "qa.csv")


def test_a_file_with_other_columns_is_never_mixed(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("task,latency\nqa,1.0\n")
    with pytest.raises(HeaderMismatch, match=str(path)):
        ResultsFile(path)
    assert path.read_text() == "task,latency\nqa,1.0\n"


# --- reliability: damaged tails, older layouts, foreign files, resume, concurrent writers ---

FIRST_HEADER = (  # the columns of the first published version (git show 54464c6:bertbench/results.py)
    "timestamp,run_id,task,model,attn_implementation,runs,baseline,device,dtype,batch_size,max_seqlen,avg_seqlen,"
    "pad_fraction,seqlen_stdev,use_mask,real_tokens,num_batches,num_batches_baseline,latency_ms_baseline,latency_ms,"
    "latency_ms_mean,latency_ms_p10,latency_ms_p90,speedup_pct,mem_mb_baseline,mem_mb,mem_saved_pct,tokens_per_s,"
    "gflop,gflop_padded,tflops,tflops_baseline,peak_tflops,max_abs_err,rel_err,status,detail,torch,transformers,"
    "flash_attn,cuda,git_commit"
)
FIRST_LAYOUT = FIRST_HEADER.split(",")
ROOT = Path(__file__).resolve().parents[2]


def two_rows(path):
    results = ResultsFile(path)
    results.append(row(batch_size=1))
    results.append(row(batch_size=2))
    return path.read_bytes()


@pytest.mark.parametrize(
    "tail, reason",
    [
        (b"2024-01-01T00:00:00+00:00,run,3,qa,bert-ti", "cut short"),  # power loss mid-row
        (b"\x00" * 300, "cut short"),  # a block of zeros, as some file systems leave
        (b"\xff\xfe junk\r\n", "unreadable"),
        (b"junk\r\n", "1 fields where the header has"),
    ],
)
def test_a_damaged_tail_is_moved_aside_and_the_next_row_starts_on_a_new_line(tmp_path, tail, reason):
    path = tmp_path / "qa.csv"
    whole = two_rows(path)
    path.write_bytes(whole + tail)
    with pytest.raises(DamagedFile, match=rf"{path} line 4: {reason}"):
        load_rows(path)  # a read never skips it silently
    notices = []
    ResultsFile(path, notices.append).append(row(batch_size=4))
    (aside,) = tmp_path.glob("qa.csv.damaged-*")
    assert aside.read_bytes() == tail and re.fullmatch(r"qa\.csv\.damaged-\d{8}T\d{6}\.\d{6}Z", aside.name)
    assert len(notices) == 1 and "line 4" in notices[0] and aside.name in notices[0]
    assert path.read_bytes().startswith(whole)
    assert [r["batch_size"] for r in load_rows(path)] == ["1", "2", "4"]


def test_damage_with_rows_after_it_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "qa.csv"
    whole = two_rows(path)
    lines = whole.split(b"\r\n")
    broken = b"\r\n".join([*lines[:2], b"a,b,c", *lines[2:]])  # a short row before the last one
    path.write_bytes(broken)
    record = (tmp_path / "qa.jsonl").read_bytes()
    for attempt in (load_rows, ResultsFile):
        with pytest.raises(DamagedFile, match=rf"{path} line 3: 3 fields where the header has {len(COLUMNS)}"):
            attempt(path)
    assert path.read_bytes() == broken and sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "qa.jsonl"]
    assert (tmp_path / "qa.jsonl").read_bytes() == record  # the record is not rewritten from a CSV refused


def test_an_older_file_of_ours_is_migrated_in_place_keeping_every_value(tmp_path):
    path = tmp_path / "qa.csv"
    old = [dict(zip(FIRST_LAYOUT, [f"{c}-{i}" for c in FIRST_LAYOUT], strict=True)) for i in range(3)]
    for r in old:
        r.update(status="ok", batch_size="2", detail='a, "quoted"\nvalue')
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIRST_LAYOUT)
        writer.writeheader()
        writer.writerows(old)
    assert [r["status"] for r in load_rows(path)] == ["ok"] * 3  # readable before any migration
    notices = []
    ResultsFile(path, notices.append).append(row())
    assert "migrated from an older column layout" in notices[0] and "3 rows kept" in notices[0]
    with path.open(newline="") as f:
        migrated = list(csv.DictReader(f))
    assert tuple(migrated[0]) == COLUMNS and len(migrated) == 4
    for before, after in zip(old, migrated, strict=False):
        assert {c: after[c] for c in FIRST_LAYOUT} == before  # every old value as it was
        assert all(after[c] == "" for c in COLUMNS if c not in FIRST_LAYOUT)  # new columns empty
    loaded = load_rows(path)[0]
    assert (loaded["packed"], loaded["mode"], loaded["use_mask"], loaded["schema_version"]) == (
        "False",
        "inference",
        "use_mask-0",
        "",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "qa.jsonl"]  # no temporary file left
    assert in_step(path)  # the record written from the migrated rows


@pytest.mark.parametrize("name", ["h100/qa.csv", "h100/compile/qa.csv", "h200x2/mlm.csv"])
def test_the_published_older_results_load_in_the_current_layout(name):
    path = ROOT / "results" / name
    with path.open(newline="") as f:
        raw = list(csv.DictReader(f))
    rows = load_rows(path)
    assert len(rows) == len(raw) > 0 and all(tuple(r) == COLUMNS for r in rows)
    assert all(r[c] == raw[i][c] for i, r in enumerate(rows) for c in raw[i] if raw[i][c])
    assert {r["packed"] for r in rows} <= {"True", "False"} and {r["mode"] for r in rows} <= {"inference", "train"}
    assert len(finished_keys(path.parent, path.stem)) > 0  # --resume works on them


@pytest.mark.parametrize(
    "text",
    [
        "task,latency\nqa,1.0\n",  # other columns
        ",".join(c for c in FIRST_LAYOUT if c != "detail") + "\n",  # ours, but without a contract column
        "\x00\x01binary",
    ],
)
def test_a_file_that_is_not_ours_is_refused_by_every_reader_and_writer(tmp_path, text):
    path = tmp_path / "qa.csv"
    path.write_text(text)
    for attempt in (load_rows, ResultsFile, lambda p: finished_keys(p.parent, "qa")):
        with pytest.raises(HeaderMismatch, match="is not a bertbench results file"):
            attempt(path)
    assert path.read_text() == text


def test_resume_counts_settled_unavailable_rows_and_measurements_as_done():
    versions = {"torch": "2.13", "transformers": "5.0", "flash_attn": "", "cuda": ""}
    settled = row(status="unavailable", torch="2.13", transformers="5.0", flash_attn="", cuda="")
    assert done_for_resume({**settled, "status": "ok"}, versions)
    assert done_for_resume({**settled, "status": "mismatch"}, versions)
    assert done_for_resume(settled, versions)
    assert not done_for_resume({**settled, "flash_attn": "2.8.3"}, versions)  # installed since: try again
    assert not done_for_resume({**settled, "status": "oom"}, versions)
    assert not done_for_resume({**settled, "status": "error"}, versions)


def test_resume_retries_unavailable_rows_once_flash_attn_3_is_installed(tmp_path):
    """The flash_attn_3 version settles a row too: a rerun after installing FA3 measures the
    flash_attention_3 rows that were unavailable, and keeps them for the same versions."""
    before = {"torch": "2.11", "transformers": "5.17", "flash_attn": "2.8.3", "flash_attn_3": "", "cuda": "13.0"}
    fa3 = row(attn_implementation="flash_attention_3", status="unavailable", **before)
    results = ResultsFile(tmp_path / "qa.csv")
    results.append(fa3)
    results.close()
    assert row_key(fa3) in finished_keys(tmp_path, "qa", before)
    assert row_key(fa3) not in finished_keys(tmp_path, "qa", {**before, "flash_attn_3": "3.0.0b1"})


WRITER = """
import sys
import time
from pathlib import Path
from bertbench.store.results import ResultsFile
time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # every process starts at the same moment
results = ResultsFile(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    results.append({"run_id": sys.argv[2], "task": "qa", "batch_size": i, "status": "ok", "detail": "x" * 3000})
"""


@pytest.mark.parametrize("start", ["new", "older layout"])
def test_many_processes_creating_or_migrating_one_file_write_one_header_and_whole_rows(tmp_path, start):
    path = tmp_path / "qa.csv"
    if start == "older layout":
        path.write_text(",".join(FIRST_LAYOUT) + "\r\n")
    start_at = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"p{i}", "5", start_at], cwd=ROOT, stderr=subprocess.PIPE
        )
        for i in range(20)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert sum("migrated" in e for e in errors) == (start == "older layout")
    data = path.read_bytes()
    assert data.count(b"timestamp,") == 1 and data.endswith(b"\r\n")
    rows = load_rows(path)
    assert sorted((r["run_id"], r["batch_size"]) for r in rows) == sorted(
        (f"p{i}", str(j)) for i in range(20) for j in range(5)
    )
    assert all(r["detail"] == "x" * 3000 for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.csv", "qa.jsonl"]
    assert load_rows(tmp_path / "qa.jsonl") == rows  # every row in the record too, in the CSV's order


def test_an_interrupted_merge_is_not_merged_twice(tmp_path):
    part = ResultsFile(part_path(tmp_path, "qa", 1))
    part.append(row(run_id="r1", batch_size=8))
    part.append(row(run_id="r1", batch_size=2))
    ResultsFile(tmp_path / "qa.csv").append(row(run_id="r1", batch_size=2))  # merged before the crash
    assert merge_parts(tmp_path, "qa", lambda r: int(r["batch_size"])) == 1
    assert [r["batch_size"] for r in load_rows(tmp_path / "qa.csv")] == ["2", "8"]


def test_a_file_of_an_older_schema_takes_appended_rows_and_still_plots(tmp_path):
    """The published H100 results are schema 3; schema 4 added the host columns, 5 flash_attn_3, 6 the
    GPU time and the clock."""
    import shutil

    from bertbench.report.load import load_results

    path = tmp_path / "qa.csv"
    shutil.copy(ROOT / "results" / "h100" / "qa.csv", path)
    with path.open(newline="") as f:
        before = list(csv.DictReader(f))
    assert {r["schema_version"] for r in before} == {"3"} and "host_bound" not in before[0]
    (data,) = load_results(tmp_path)  # it plots as it is
    assert len(data.rows) == len(before) and not data.rows["host_bound"].eq(True).any()
    notices = []
    results = ResultsFile(path, notices.append)
    results.append(row())
    results.close()
    assert "migrated from an older column layout" in notices[0]
    with path.open(newline="") as f:
        after = list(csv.DictReader(f))
    assert tuple(after[0]) == COLUMNS and len(after) == len(before) + 1
    assert all(after[i][c] == old[c] for i, old in enumerate(before) for c in old)  # every old value kept
    assert all(after[i]["host_bound"] == "" for i in range(len(before)))  # the new columns empty
    (data,) = load_results(tmp_path)  # and still loads, the appended row's setup beside the old ones
    assert len(data.rows) + data.other_setups + len(data.skipped) == len(after)


@pytest.mark.parametrize("version", ["99", "abc", "0", "-1"])
def test_a_row_of_an_unknown_schema_version_is_refused_by_every_reader_and_writer(tmp_path, version):
    """A CSV row claiming another version was once appended to, and its .jsonl rewritten with that
    version, which then refused every later run: now the file is refused first, left as it is."""
    from bertbench import plot_cli
    from bertbench.compare import main as compare
    from bertbench.store.csvfile import UnknownVersion

    results = ResultsFile(tmp_path / "qa.csv")
    results.append_many([row(), row(batch_size="2")])
    results.close()
    path = tmp_path / "qa.csv"
    lines = path.read_text().splitlines(keepends=True)
    column = COLUMNS.index("schema_version")
    cells = next(csv.reader([lines[2]]))
    cells[column] = version
    path.write_bytes(b"".join(x.encode() for x in lines[:2]) + csv_line(cells))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for attempt in (load_rows, ResultsFile, lambda p: finished_keys(p.parent, "qa")):
        with pytest.raises(UnknownVersion, match=f"qa.csv row 2: schema version '{version}' is unknown"):
            attempt(path)
    assert plot_cli.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "p")]) == 2
    assert compare([str(path), str(path)]) == 2
    argv = ["benchmark_bert.py", "--no-use-cuda", "--model-size", "tiny", "--task", "qa", "--output-dir", str(tmp_path)]
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "is unknown to this bertbench" in run.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "p"} == before


def csv_line(cells: list[str]) -> bytes:
    from bertbench.store.csvfile import encode

    return encode(cells)
