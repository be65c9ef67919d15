"""bertbench compare (bertbench/compare.py over report/compare.py) on small hand-made result sets, CPU only."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bertbench import compare as compare_cli
from bertbench.report import compare
from bertbench.spec.schema import COLUMNS, KEY_COLUMNS, SCHEMA_VERSION
from bertbench.store.results import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
H100 = "NVIDIA H100 80GB HBM3 (cuda:0)"
H200 = "NVIDIA H200 (cuda:1)"
OLD_LACKS = ("packed", "mode", "cuda_graphs", "compile", "latency_ms_p10", "latency_ms_p90")


def row(impl="sdpa", batch=1, latency=10.0, spread=None, task="qa", status="ok", device=H100, **extra) -> dict:
    """One row of the current schema at max_seqlen 128, pad 0; spread=(p10, p90)."""
    p10, p90 = spread or ("", "")
    return {
        "task": task, "model": "bert-base", "attn_implementation": impl, "baseline": "eager", "device": device,
        "dtype": "fp16", "batch_size": batch, "max_seqlen": 128, "avg_seqlen": 128, "pad_fraction": 0,
        "seqlen_stdev": 10, "use_mask": True, "packed": False, "mode": "inference", "cuda_graphs": False,
        "compile": False, "latency_ms_baseline": 20.0, "mem_mb_baseline": 50.0, "mem_mb": 40.0,
        "latency_ms": latency if status in ("ok", "mismatch") else "", "latency_ms_p10": p10, "latency_ms_p90": p90,
        "status": status, **extra,
    }  # fmt: skip


def write(path: Path, rows: list[dict]) -> Path:
    results = ResultsFile(path)
    for r in rows:
        results.append(r)
    results.close()
    return path


def write_old(path: Path, rows: list[dict]) -> Path:
    """A CSV of an older version: no packed, mode, cuda_graphs or compile column, and no p10/p90."""
    header = [c for c in COLUMNS if c not in OLD_LACKS]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in header} for r in rows)
    return path


TIGHT_A, TIGHT_B = (9.9, 10.1), (12.9, 13.1)


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write(a / "qa.csv", [
        row(batch=1, latency=99.0, spread=(98, 100)),  # replaced by the later row of the same key
        row(batch=1, latency=10.0, spread=TIGHT_A),  # clearly slower in B
        row(batch=2, latency=10.0, spread=(6.0, 14.0)),  # 15 % slower in B, but within the noise
        row(impl="flash_attention_2", batch=1, latency=10.0, spread=TIGHT_A),  # faster in B
        row(batch=4, latency=10.0, spread=TIGHT_A),  # only in A
        row(batch=16, latency=10.0, spread=TIGHT_A),  # oom in B
    ])  # fmt: skip
    write(b / "qa.csv", [
        row(batch=1, latency=13.0, spread=TIGHT_B, device=H200),
        row(batch=2, latency=11.5, spread=(7.0, 16.0), device=H200),
        row(impl="flash_attention_2", batch=1, latency=8.0, spread=(7.9, 8.1), device=H200, status="mismatch"),
        row(batch=8, latency=10.0, spread=TIGHT_B, device=H200),  # only in B
        row(batch=16, status="oom", device=H200),
    ])  # fmt: skip
    write(a / "mlm.csv", [row(task="mlm", batch=1, latency=10.0, spread=TIGHT_A),
                          row(task="mlm", batch=2, latency=10.0, spread=TIGHT_A)])  # fmt: skip
    write_old(b / "mlm.csv", [row(task="mlm", batch=1, latency=10.1, device=H200),
                              row(task="mlm", batch=2, latency=10.5, device=H200)])  # fmt: skip
    (a / "qa.csv.part0").write_text("not,a,results,file\n1,2,3,4\n")  # skipped, like damaged copies
    (b / "qa.damaged-20261124.csv").write_text("garbage\n")
    return a, b


def pairs_of(a: Path, b: Path, threshold: float = 0.02) -> dict[tuple[str, str, str], compare.Pair]:
    rows_a, rows_b = compare.read_all(a), compare.read_all(b)
    columns = compare.joined_columns(rows_a, rows_b)
    assert set(columns) <= set(KEY_COLUMNS) - {"device"}
    result = compare.compare(compare.keyed(rows_a, columns), compare.keyed(rows_b, columns), columns, threshold)
    return {(p.section.split(" ")[0], p.series, p.batch): p for p in result.pairs}


def test_verdicts_account_for_the_spread(runs):
    pairs = pairs_of(*runs)
    slower = pairs[("qa", "sdpa", "1")]  # the last row of the key in A, 10 ms, not the first one's 99
    assert (slower.a.median, slower.b.median) == (10.0, 13.0)
    assert slower.verdict.ratio == pytest.approx(1.3)
    assert slower.verdict.kind == "slower" and slower.verdict.spread_recorded
    assert slower.verdict.margin == pytest.approx(0.02)  # spreads of 2 % and 1.5 %: the threshold decides
    noisy = pairs[("qa", "sdpa", "2")]
    assert noisy.verdict.ratio == pytest.approx(1.15)
    assert noisy.verdict.margin == pytest.approx(math.hypot(8 / 10, 9 / 11.5) / 2)
    assert noisy.verdict.kind == "same"
    faster = pairs[("qa", "flash_attention_2", "1")]
    assert faster.verdict.ratio == pytest.approx(0.8) and faster.verdict.kind == "faster"
    assert faster.note == "B mismatch"
    assert slower.mem_ratio == pytest.approx(1.0)


def test_the_baseline_is_a_series_of_its_own(runs):
    pairs = pairs_of(*runs)
    base = pairs[("qa", "eager (baseline)", "1")]
    assert base.verdict.ratio == pytest.approx(1.0) and str(base.verdict) == "same (no spread recorded)"
    assert {k for k in pairs if k[1] == "eager (baseline)"} == {
        ("qa", "eager (baseline)", "1"), ("qa", "eager (baseline)", "2"), ("qa", "eager (baseline)", "16"),
        ("mlm", "eager (baseline)", "1"), ("mlm", "eager (baseline)", "2"),
    }  # fmt: skip  # batch 16: the baseline ran in both, though sdpa ran out of memory in B


def test_old_rows_join_new_ones_and_without_a_spread_the_threshold_decides(runs):
    pairs = pairs_of(*runs)
    within, beyond = pairs[("mlm", "sdpa", "1")], pairs[("mlm", "sdpa", "2")]
    assert within.verdict.ratio == pytest.approx(1.01) and str(within.verdict) == "same (no spread recorded)"
    assert beyond.verdict.ratio == pytest.approx(1.05) and str(beyond.verdict) == "slower (no spread recorded)"
    assert pairs_of(*runs, threshold=0.06)[("mlm", "sdpa", "2")].verdict.kind == "same"


def test_report_counts_and_written_files(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert compare_cli.main([str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert (out / "compare.md").read_text() == report
    lines = report.splitlines()
    assert "| sdpa | 1 | 128 | 0 | 10 | 13 | 1.300 | 2.0% | slower | 1.000 |" in lines
    assert "| sdpa | 2 | 128 | 0 | 10 | 11.5 | 1.150 | 56.0% | same | 1.000 |" in lines
    assert "| flash_attention_2 | 1 | 128 | 0 | 10 | 8 | 0.800 | 2.0% | faster; B mismatch | 1.000 |" in lines
    summary = "| qa (bert-base fp16, baseline eager) | sdpa | 2 | 1.223 | 0 | 1 | 1 | 0 | 1.000 |"
    assert summary in lines  # geomean of 1.3 and 1.15
    assert "| qa | 3 | 1 | 1 | 1 (A ok / B oom: 1) |" in lines
    assert "| mlm | 2 | 0 | 0 | 0 |" in lines
    assert "NVIDIA H100 80GB HBM3;" in lines[2] and "NVIDIA H200;" in lines[3]  # the GPU's index left out
    with Image.open(out / "compare.png") as image:
        assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 400
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def test_fail_above(runs, capsys):
    a, b = map(str, runs)
    assert compare_cli.main([a, b, "--fail-above", "10"]) == 1
    tail = capsys.readouterr().out.splitlines()[-2:]
    assert tail[0].startswith("slower by 30.0%: qa (bert-base fp16, baseline eager) sdpa, batch 1 seqlen 128")
    assert tail[1] == "1 of 10 compared points slower by more than 10 %"
    assert compare_cli.main([a, b, "--fail-above", "30"]) == 0  # 1.3 is not more than 30 % slower
    assert compare_cli.main([b, a, "--fail-above", "10"]) == 1  # flash_attention_2 is 25 % slower from B to A
    assert "slower by 25.0%" in capsys.readouterr().out


def test_a_single_csv_on_each_side(runs, capsys):
    a, b = runs
    assert compare_cli.main([str(a / "mlm.csv"), str(b / "mlm.csv")]) == 0
    assert "| mlm | 2 | 0 | 0 | 0 |" in capsys.readouterr().out.splitlines()


def test_a_folder_of_records_alone_compares_as_its_csvs_do(runs, tmp_path, capsys):
    a, b = runs
    records = tmp_path / "records"
    records.mkdir()
    for task in ("qa", "mlm"):
        shutil.copy(a / f"{task}.jsonl", records)  # no CSV: as a dataset hub holds the run
    assert compare_cli.main([str(a), str(b)]) == 0
    from_csv = capsys.readouterr().out
    assert compare_cli.main([str(records), str(b)]) == 0
    from_records = capsys.readouterr().out
    assert from_records == from_csv.replace(f"- A: {a} ", f"- A: {records} ") and "| qa | 3 | 1 | 1 |" in from_csv
    assert compare_cli.main([str(records / "mlm.jsonl"), str(b / "mlm.csv")]) == 0  # one record against a CSV
    assert "| mlm | 2 | 0 | 0 | 0 |" in capsys.readouterr().out.splitlines()


def test_a_csv_that_is_not_ours_is_refused_and_left_alone(runs, tmp_path, capsys):
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("name,value\nx,1\n")
    before = (foreign.read_bytes(), foreign.stat().st_mtime_ns)
    assert compare_cli.main([str(foreign), str(runs[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"bertbench compare: error: {foreign}: not a bertbench results")
    assert "task, attn_implementation, batch_size, max_seqlen, status, latency_ms" in err
    assert (foreign.read_bytes(), foreign.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing", "{b}"], "no such file or folder"),
        (["{tmp}/empty", "{b}"], "no *.csv or *.jsonl files in this folder"),
        (["{a}/lines.jsonl", "{b}"], "lines.jsonl: not a bertbench results record (compared on task,"),
        (["{a}/newer.jsonl", "{b}"], f"newer.jsonl line 1: schema version {SCHEMA_VERSION + 1} is unknown to this"),
        (["{a}", "{b}", "--fail-above", "-1"], "--fail-above -1.0: not a percentage >= 0"),
        (["{a}", "{b}", "--fail-above", "nan"], "--fail-above nan: not a percentage >= 0"),
        (["{a}", "{b}", "--threshold", "abc"], "argument --threshold: invalid float value: 'abc'"),
        (["{a}", "{b}", "--out", "{a}/qa.csv"], "is a file, not a folder"),
        (["{a}/binary.csv", "{b}"], "cannot read it"),
        (["{tmp}/blank.csv", "{b}"], "blank.csv: no result rows in it"),
        (["{tmp}/blank.jsonl", "{b}"], "blank.jsonl: no result rows in it"),
        (["{a}"], "the following arguments are required: B"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.csv").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"")
    (runs[0] / "binary.csv").write_bytes(b"\xff\xfe\x00\x81 not text")
    (runs[0] / "lines.jsonl").write_text("task,latency_ms\nqa,1.0\n")  # a CSV by another name
    record = json.loads((runs[0] / "qa.jsonl").read_text().splitlines()[0])
    (runs[0] / "newer.jsonl").write_text(json.dumps({**record, "schema_version": SCHEMA_VERSION + 1}) + "\n")
    argv = [x.format(tmp=tmp_path, a=runs[0], b=runs[1]) for x in args]
    assert compare_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bertbench compare: error: ") and message in err


def test_nothing_in_common_exits_1(tmp_path, capsys):
    a = write(tmp_path / "a.csv", [row(batch=1, latency=10.0)])
    failed = row(batch=1, status="oom", latency_ms_baseline="")  # the baseline itself ran out of memory
    b = write(tmp_path / "b.csv", [row(batch=2, latency=10.0, device=H200), failed])
    assert compare_cli.main([str(a), str(b)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("bertbench compare: nothing to compare: no point is measured")
    b = write(tmp_path / "b2.csv", [row(batch=1, status="oom")])  # the baseline ran: that much is compared
    assert compare_cli.main([str(a), str(b)]) == 0
    assert "| eager (baseline) | 1 | 128 | 0 | 20 | 20 | 1.000 |" in capsys.readouterr().out


def test_help_is_fast_and_importing_pulls_no_torch():
    code = "import sys, bertbench.compare; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    done = subprocess.run(
        [sys.executable, "-m", "bertbench.compare", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: bertbench compare [-h]")


def test_a_key_column_one_side_never_recorded_is_not_joined_on(tmp_path):
    """Files from before the seed column join files that have it: nothing else is lost."""
    old = [{"task": "qa", "attn_implementation": "sdpa", "batch_size": "2", "seed": ""}]
    new = [{"task": "qa", "attn_implementation": "sdpa", "batch_size": "2", "seed": "0"}]
    assert "seed" not in compare.joined_columns(old, new)
    assert "seed" in compare.joined_columns(new, new) and "packed" in compare.joined_columns(old, new)


def test_the_gpu_time_leads_where_both_runs_have_it_and_judges_fail_above(tmp_path, capsys):
    """A host-bound point whose latency moved 30 % while its kernels did not: the GPU time is the
    headline (table, summary, --fail-above), the latency stands beside it; a point without GPU time
    on one side is judged by its latency."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    gpu = {"gpu_ms_baseline": 4.8}
    write(a / "qa.csv", [row(batch=1, latency=10.0, spread=TIGHT_A, gpu_ms=2.40, **gpu),
                         row(batch=2, latency=10.0, spread=TIGHT_A, gpu_ms=2.40, **gpu),
                         row(batch=4, latency=10.0, spread=TIGHT_A)])  # fmt: skip
    write(b / "qa.csv", [row(batch=1, latency=13.0, spread=TIGHT_B, gpu_ms=2.41, **gpu),
                         row(batch=2, latency=10.0, spread=TIGHT_A, gpu_ms=2.90, **gpu),
                         row(batch=4, latency=13.0, spread=TIGHT_B, gpu_ms=2.0)])  # fmt: skip
    pairs = pairs_of(a, b)
    one, two, four = (pairs[("qa", "sdpa", str(n))] for n in (1, 2, 4))
    assert one.verdict.kind == "slower" and one.gpu_verdict.kind == "same" and one.headline[3] == "GPU time"
    assert two.verdict.kind == "same" and two.gpu_verdict.kind == "slower"
    assert four.gpu_verdict is None and four.headline[3] == "latency"
    assert pairs[("qa", "eager (baseline)", "1")].gpu_verdict.kind == "same"  # the baseline's own GPU time
    assert compare_cli.main([str(a), str(b), "--fail-above", "10"]) == 1
    out = capsys.readouterr().out
    assert "| GPU A (ms) | GPU B (ms) | GPU B/A | GPU verdict | latency A (ms) |" in out and compare.GPU_MEANS in out
    assert (
        "slower by 20.8%: qa (bert-base fp16, baseline eager) sdpa, batch 2 seqlen 128 pad 0: GPU time 2.4 -> 2.9"
        in out
    )
    assert (
        "slower by 30.0%: qa (bert-base fp16, baseline eager) sdpa, batch 4 seqlen 128 pad 0: latency 10 -> 13" in out
    )
    assert "batch 1 seqlen" not in out.split("## Summary")[1]  # the host-bound latency change is not a failure
