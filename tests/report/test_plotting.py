import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write
from PIL import Image

import plot
from bertbench.report import charts
from bertbench.report.charts import plot_all
from bertbench.report.load import load_results, summary
from bertbench.run import sweep
from bertbench.spec.schema import COLUMNS, SCHEMA_VERSION, Row
from bertbench.store.results import CONTRACT

ROOT = Path(__file__).resolve().parents[2]
GRID = "--sweep --batch-sizes 1 2 --seqlens 16 32 --pad-fractions 0 0.5"
# The first version's columns; later ones added packed, then mode, then the CUDA-graph and compile
# columns (results/h100/*.csv), then the current layout.
ORIGINAL = (
    "timestamp", "run_id", "task", "model", "attn_implementation", "runs", "baseline", "device", "dtype",
    "batch_size", "max_seqlen", "avg_seqlen", "pad_fraction", "seqlen_stdev", "use_mask", "real_tokens",
    "num_batches", "num_batches_baseline", "latency_ms_baseline", "latency_ms", "latency_ms_mean", "latency_ms_p10",
    "latency_ms_p90", "speedup_pct", "mem_mb_baseline", "mem_mb", "mem_saved_pct", "tokens_per_s", "gflop",
    "gflop_padded", "tflops", "tflops_baseline", "peak_tflops", "max_abs_err", "rel_err", "status", "detail",
    "torch", "transformers", "flash_attn", "cuda", "git_commit",
)  # fmt: skip
SETUP = {"timestamp": "2026-11-25T10:00:00+00:00", "run_id": "r1", "task": "qa", "model": "bert-base",
         "baseline": "eager", "device": "NVIDIA H100 80GB HBM3 (cuda:0)", "dtype": "fp16", "seqlen_stdev": 10.0,
         "use_mask": True, "packed": False, "mode": "inference", "cuda_graphs": False, "compile": False}  # fmt: skip


def gpu_row(impl: str, batch: int, seqlen: int, pad: float, ms: float, base_ms: float, spread: float = 0.02,
            **extra) -> Row:  # fmt: skip
    """A current-layout row as a GPU run writes it (memory measured, p10/p90 of both sides)."""
    real = round(batch * seqlen * (1 - pad))
    values = {**SETUP, "attn_implementation": impl, "batch_size": batch, "max_seqlen": seqlen,
              "avg_seqlen": seqlen * (1 - pad), "pad_fraction": pad, "pad_fraction_real": max(pad - 0.002, 0),
              "real_tokens": real, "latency_ms": ms, "latency_ms_p10": ms * (1 - spread),
              "latency_ms_p90": ms * (1 + spread), "rel_iqr": spread, "noisy": spread > 0.1, "mem_mb": 100.0,
              "tokens_per_s": real / ms * 1e3, "status": "ok", "detail": ""}  # fmt: skip
    if base_ms is not None:
        values.update(baseline_status="ok", latency_ms_baseline=base_ms, latency_ms_baseline_p10=base_ms * 0.98,
                      latency_ms_baseline_p90=base_ms * 1.02, rel_iqr_baseline=0.02, mem_mb_baseline=150.0,
                      speedup_pct=(base_ms / ms - 1) * 100, mem_saved_pct=100 / 3)  # fmt: skip
    values.update(extra)
    return Row(**values)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """Real rows from two tiny CPU sweeps (qa and mlm), one with an unavailable implementation."""
    from bertbench.cli import parse_args

    out = tmp_path_factory.mktemp("results")
    for task in ("qa", "mlm"):
        config = parse_args(
            [*f"--no-use-cuda --model-size tiny --num-batches 2 --warmup 1 --task {task} {GRID}".split(),
             "--optimization", "sdpa", "flash_attention_2", "--output-dir", str(out)]
        )  # fmt: skip
        sweep.run(config, progress=False)
    return out


@pytest.fixture
def figures(monkeypatch):
    """Every figure charts.py saves, by file stem, inspected just before it is written."""
    seen: dict[str, list] = {}
    save = charts._save

    def spy(fig, stem, formats):
        seen[f"{stem.parent.name}/{stem.name}"] = [ax for ax in fig.axes if ax.axison]
        return save(fig, stem, formats)

    monkeypatch.setattr(charts, "_save", spy)
    monkeypatch.setattr(charts, "MAX_WORKERS", 1)  # drawn in this process, where the spy is
    return seen


def hollow_markers(ax) -> int:
    markers = [line for line in ax.lines if line.get_linestyle() == "None" and line.get_marker() != "x"]
    return sum(len(line.get_xdata()) for line in markers if line.get_markerfacecolor() in ("white", (1, 1, 1, 1)))


def test_the_contract_columns_are_written_by_the_benchmark():
    assert set(CONTRACT) <= set(COLUMNS)


def test_cpu_charts_are_valid_images_without_empty_panels_and_parallel_processes_draw_the_same(
    results_dir, tmp_path, capsys, figures, monkeypatch
):
    plots = tmp_path / "plots"  # drawn in this process (figures), where the spy sees every figure
    assert plot.main(["--results-dir", str(results_dir), "--plots-dir", str(plots)]) == 0
    for task in ("qa", "mlm"):
        stems = {f"seqlen_{s}_{m}" for s in (16, 32) for m in ("speedup", "throughput")} | {"combined"}
        assert {p.name for p in (plots / task).iterdir()} == {f"{s}.{x}" for s in stems for x in ("png", "svg")}
        for path in (plots / task).glob("*.png"):  # no mem_saved: peak memory is not measured on the CPU
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                width, height = image.size
                assert 500 < width < 3000 and 300 < height < 3000
                assert len(image.convert("L").getcolors(maxcolors=1 << 20)) > 20  # something was drawn
        for path in (plots / task).glob("*.svg"):
            assert ET.parse(path).getroot().tag.endswith("svg")
    assert len(figures) == 10
    for name, axes in figures.items():
        assert axes and all(ax.lines for ax in axes), f"{name} has an empty panel"
    assert (plots / "report.md").is_file() and (plots / "report.html").is_file()
    out = capsys.readouterr().out
    assert "left out 8 unavailable rows of flash_attention_2" in out

    monkeypatch.setattr(charts, "MAX_WORKERS", 2)  # the tasks in two processes: the same files
    parallel = tmp_path / "parallel"
    assert plot.main(["--results-dir", str(results_dir), "--plots-dir", str(parallel), "--format", "png"]) == 0
    drawn = {p.relative_to(parallel): p.read_bytes() for p in parallel.rglob("*.png")}
    assert len(drawn) == 10 and drawn == {p.relative_to(plots): p.read_bytes() for p in plots.rglob("*.png")}


def test_one_panel_per_pad_fraction_labelled_with_the_realised_padding(tmp_path, figures):
    rows = [gpu_row(i, b, 128, p, ms, 10.0) for i, ms in (("sdpa", 5.0), ("flash_attention_2", 6.0))
            for b in (1, 8) for p in (0.0, 0.1, 0.5)]  # fmt: skip
    write(tmp_path / "r", rows)
    plot_all(load_results(tmp_path / "r"), tmp_path / "p")
    axes = figures["qa/seqlen_128_speedup"]
    assert [ax.get_title() for ax in axes if ax.lines] == ["pad 0 %", "pad 10 % (real 9.8 %)", "pad 50 % (real 49.8 %)"]
    assert {line.get_color() for line in axes[0].lines} >= set(charts.OKABE_ITO[:2])
    assert len(axes[0].containers) == 2  # p10-p90 bars of both implementations


def test_noisy_and_host_bound_rows_are_hollow(tmp_path, figures):
    rows = [gpu_row("sdpa", b, 128, 0.0, 5.0, 10.0, spread=0.3 if b == 1 else 0.02) for b in (1, 2, 4, 8)]
    rows[2].launch_bound, rows[2].latency_ms_graph, rows[2].latency_ms_graph_baseline = True, 2.0, 4.0
    rows[3].host_bound = True  # known from the host's enqueue time, without a graph
    write(tmp_path / "r", rows)
    (data,) = load_results(tmp_path / "r")
    plot_all([data], tmp_path / "p")
    (speedup,) = figures["qa/seqlen_128_speedup"]
    assert hollow_markers(speedup) == 3
    labels = [t.get_text() for t in figures["qa/seqlen_128_speedup"][0].figure.legends[0].get_texts()]
    assert any("noisy" in t and "host-bound" in t for t in labels)
    assert "1 rows noisy" in summary([data]) and "2 rows host-bound" in summary([data])


def test_points_where_the_baseline_failed_are_marked_and_counted(tmp_path, figures):
    rows = [gpu_row("sdpa", b, 128, 0.0, 5.0, 10.0) for b in (1, 2)]
    rows += [gpu_row("sdpa", 64, 128, 0.0, 50.0, None, baseline_status="oom")]
    write(tmp_path / "r", rows)
    (data,) = load_results(tmp_path / "r")
    plot_all([data], tmp_path / "p")
    (throughput,) = figures["qa/seqlen_128_throughput"]
    crosses = [line for line in throughput.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [64]
    assert "1 rows where the baseline was oom" in summary([data])


def test_graph_and_compiled_speedups_get_charts_only_where_measured(tmp_path):
    rows = [gpu_row("sdpa", b, 128, 0.0, 5.0, 10.0, latency_ms_graph=1.0, latency_ms_graph_baseline=2.0)
            for b in (1, 2)]  # fmt: skip
    write(tmp_path / "r", rows)
    names = {p.name for p in plot_all(load_results(tmp_path / "r"), tmp_path / "p")}  # older rows: no graph pct
    assert {"seqlen_128_speedup_graph.png", "seqlen_128_mem_saved.png", "combined.png"} <= names
    assert not any("compiled" in name for name in names)
    write(tmp_path / "plain", [gpu_row("sdpa", 1, 128, 0.0, 5.0, 10.0)])
    assert not any("graph" in p.name for p in plot_all(load_results(tmp_path / "plain"), tmp_path / "p2"))


@pytest.mark.parametrize("version", ["original", "packed", "mode", "contract"])
def test_every_earlier_csv_layout_reads_as_the_current_one(tmp_path, version):
    rows = [gpu_row(i, b, 128, p, 5.0 + b, 10.0 + b) for i in ("sdpa", "eager2") for b in (1, 2) for p in (0, 0.5)]
    write(tmp_path / "new", rows)
    header = {"original": ORIGINAL, "packed": [*ORIGINAL, "packed"], "mode": [*ORIGINAL, "packed", "mode"],
              "contract": list(CONTRACT)}[version]  # fmt: skip
    current = pd.read_csv(tmp_path / "new" / "qa.csv")
    (tmp_path / "old").mkdir()
    current[[c for c in COLUMNS if c in header]].to_csv(tmp_path / "old" / "qa.csv", index=False)
    (old,) = load_results(tmp_path / "old")
    assert list(old.rows.columns[: len(COLUMNS)]) == list(COLUMNS) and len(old.rows) == len(rows)
    assert set(old.rows["packed"]) == {False} and set(old.rows["mode"]) == {"inference"}
    assert set(old.rows["use_mask"]) == {True} and old.setup["baseline"] == "eager"
    assert old.rows["pad_fraction"].tolist() == current["pad_fraction"].tolist()
    assert np.allclose(old.rows["tokens_per_s"], current["tokens_per_s"], rtol=1e-5)
    if version != "contract":
        assert np.allclose(old.rows["speedup_pct"], current["speedup_pct"], rtol=1e-5)
        assert old.rows["baseline_status"].eq("ok").all()


def test_the_committed_h100_rows_plot(tmp_path):
    (data,) = load_results(ROOT / "results" / "h100" / "small")
    timed = data.rows["latency_ms_graph"].notna() & data.rows["latency_ms_graph_baseline"].notna()
    assert len(data.rows) == 30 and timed.any() and (data.rows["speedup_graph_pct"].notna() == timed).all()
    assert data.rows["launch_bound"].any() and "cuda:" not in data.title


def test_latest_row_per_point_wins(results_dir, tmp_path):
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    text = (results_dir / "qa.csv").read_text().splitlines()
    (rerun / "qa.csv").write_text("\n".join([text[0], *text[1:], *text[1:]]) + "\n")  # the same rows twice
    (rerun / "qa.csv.part1").write_text("garbage")  # a rank's part file and a damaged file are not read
    (rerun / "mlm.csv.damaged-20261125").write_text("garbage")
    (data,) = load_results(rerun)
    assert len(data.rows) == int((pd.read_csv(results_dir / "qa.csv")["status"] == "ok").sum())


def test_train_rows_stay_apart_and_rows_of_every_gpu_of_a_host_are_drawn(results_dir, tmp_path):
    rows = pd.read_csv(results_dir / "qa.csv")
    rows["device"] = [f"NVIDIA H100 (cuda:{i % 2})" for i in range(len(rows))]  # two ranks of a torchrun sweep
    (tmp_path / "r").mkdir()
    pd.concat([rows, rows.assign(mode="train")]).to_csv(tmp_path / "r" / "qa.csv", index=False)
    (data,) = load_results(tmp_path / "r")
    assert data.other_setups == 0 and len(data.rows) == 2 * int((rows["status"] == "ok").sum())
    assert set(data.rows["mode"]) == {"inference", "train"} and "cuda:" not in data.title
    assert {"sdpa", "sdpa train"} == set(data.rows["series"])


def test_a_rerun_with_extra_measurements_replaces_the_point_instead_of_adding_a_series(results_dir, tmp_path):
    rows = pd.read_csv(results_dir / "qa.csv")
    (tmp_path / "r").mkdir()
    pd.concat([rows, rows.assign(compile=True, cuda_graphs=True)]).to_csv(tmp_path / "r" / "qa.csv", index=False)
    (data,) = load_results(tmp_path / "r")
    assert len(data.rows) == int((rows["status"] == "ok").sum()) and set(data.rows["compile"]) == {True}


def test_a_folder_of_records_alone_loads_and_plots_as_its_csvs_do(results_dir, tmp_path):
    """A run's folder as a dataset hub holds it: <task>.jsonl and the manifests, no CSV."""
    records = tmp_path / "records"
    shutil.copytree(results_dir / "runs", records / "runs")
    for path in results_dir.glob("*.jsonl"):
        shutil.copy(path, records)
    assert sorted(p.name for p in records.glob("*.*")) == ["mlm.jsonl", "qa.jsonl"]
    for mine, theirs in zip(load_results(records), load_results(results_dir), strict=True):
        assert (mine.task, mine.setup, mine.other_setups, mine.manifests) == (
            theirs.task, theirs.setup, theirs.other_setups, theirs.manifests,
        )  # fmt: skip
        pd.testing.assert_frame_equal(mine.rows, theirs.rows)
        pd.testing.assert_frame_equal(mine.skipped, theirs.skipped)
    plots = tmp_path / "plots"
    assert plot.main(["--results-dir", str(records), "--plots-dir", str(plots), "--format", "png"]) == 0
    assert (plots / "qa" / "combined.png").is_file() and "qa" in (plots / "report.md").read_text()


def test_a_task_without_ok_rows_gets_a_note_and_the_others_their_charts(tmp_path, capsys):
    write(tmp_path / "r", [gpu_row("sdpa", 1, 128, 0.0, 5.0, 10.0)])
    write(tmp_path / "r", [gpu_row("flash_attention_2", 1, 128, 0.0, 5.0, 10.0, status="unavailable")], "mlm")
    assert plot.main(["--results-dir", str(tmp_path / "r"), "--plots-dir", str(tmp_path / "p"), "--format", "png"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["plot.py: note: mlm.csv: no ok rows (1 unavailable); no charts for mlm"]
    assert (tmp_path / "p" / "qa" / "combined.png").is_file() and not (tmp_path / "p" / "mlm").exists()
    assert "no ok rows (1 unavailable)" in (tmp_path / "p" / "report.md").read_text()


def _bad(d: Path, name: str) -> None:
    d.mkdir()
    header_only = ",".join(COLUMNS) + "\n"
    unavailable = {**{c: "" for c in COLUMNS}, **{c: "x" for c in CONTRACT}, "status": "unavailable",
                   "batch_size": "1", "max_seqlen": "8", "avg_seqlen": "8"}  # fmt: skip
    content = {"other columns": "task,latency\nqa,1\n", "header only": header_only, "binary": b"\xff\xfe\x00\x81",
               "no ok row": header_only + ",".join(unavailable[c] for c in COLUMNS) + "\n",
               "record not JSON": "task,latency\nqa,1\n",
               "record newer": json.dumps({**unavailable, "schema_version": SCHEMA_VERSION + 1}) + "\n",
               }[name]  # fmt: skip
    path = d / ("qa.jsonl" if name.startswith("record") else "qa.csv")
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        (lambda d: None, [], "no such results directory"),
        (lambda d: d.mkdir(), [], "no <task>.csv or <task>.jsonl files"),
        (lambda d: _bad(d, "record not JSON"), [], "qa.jsonl is not a bertbench record file (line 1: not JSON"),
        (lambda d: _bad(d, "record newer"), [], f"qa.jsonl line 1: schema version {SCHEMA_VERSION + 1} is unknown"),
        (lambda d: _bad(d, "other columns"), [], "is not a bertbench results file"),
        (lambda d: _bad(d, "header only"), [], "nothing to draw (qa.csv: no rows)"),
        (lambda d: _bad(d, "binary"), [], "is not a bertbench results file (unreadable first line)"),
        (lambda d: _bad(d, "no ok row"), [], "nothing to draw (qa.csv: no ok rows (1 unavailable))"),
        (lambda d: _bad(d, "header only"), ["--plots-dir", "FILE"], "FILE: is a file, not a folder"),
        (lambda d: d.mkdir(), ["--format", "gif"], "invalid choice: 'gif'"),
    ],
    ids=["missing dir", "empty dir", "record not JSON", "record newer",
         "other columns", "header only", "binary", "no ok row", "plots dir a file",
         "bad format"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch, setup, extra, message):
    results = tmp_path / "results"
    setup(results)
    (tmp_path / "FILE").write_text("not a folder")
    argv = ["--results-dir", str(results), "--plots-dir", str(tmp_path / "p"), *extra]
    monkeypatch.chdir(tmp_path)
    assert plot.main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("plot.py: error: ") and message in captured.err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_plot_py_itself_reports_bad_input_in_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "plot.py", "--results-dir", str(tmp_path / "none"), "--plots-dir", str(tmp_path / "p")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr == f"plot.py: error: {tmp_path / 'none'}: no such results directory\n"


def test_a_foreign_csv_is_answered_with_plot_pys_own_flag(tmp_path, capsys):
    results = tmp_path / "results"
    _bad(results, "other columns")
    before = (results / "qa.csv").read_bytes()
    assert plot.main(["--results-dir", str(results), "--plots-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "move it aside or choose another --results-dir" in err and "--output-dir" not in err
    assert (results / "qa.csv").read_bytes() == before


@pytest.mark.parametrize("rows_after", [True, False], ids=["rows after it", "last line"])
def test_a_header_repeated_inside_a_csv_is_named_not_counted_as_a_row(tmp_path, capsys, rows_after):
    """Two result files joined with cat: the second header is no row of another setup."""
    folder = tmp_path / "joined"
    write(folder, [Row(task="qa", model="bert-tiny", attn_implementation="sdpa", batch_size=1, max_seqlen=8,
                       avg_seqlen=8, latency_ms=1.0, status="ok", timestamp="2026-12-02T10:00:00+00:00")])  # fmt: skip
    path = folder / "qa.csv"
    first = path.read_bytes()
    header, _, row = first.partition(b"\n")
    path.write_bytes(first + header + b"\n" + (row if rows_after else b""))
    before = path.read_bytes()
    assert plot.main(["--results-dir", str(folder), "--plots-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path} line 3: the header line again (two files joined?)" in err
    assert path.read_bytes() == before  # read, never repaired by plot.py


def test_every_series_of_a_run_has_its_own_colour_up_to_eleven():
    """`--optimization all` names 8 implementations on a Hopper GPU: Okabe-Ito's 7 colours alone gave
    the first and the eighth (sdpa and sdpa-varlen) one colour, told apart by a circle and a hexagon."""
    names = [f"impl{i}" for i in range(len(charts.SERIES_COLORS))]
    data = [type("Data", (), {"rows": {"series": names}, "baseline_series": "eager (baseline)"})()]
    styles = charts.series_styles(data)
    assert len({styles[n].color for n in names}) == len(names)
    assert charts.BASELINE_COLOR not in {styles[n].color for n in names}
    assert styles["eager (baseline)"].color == charts.BASELINE_COLOR


def test_a_chart_is_written_whole_or_not_at_all(tmp_path):
    """save_figure renders first and renames the whole file over the old one: a render cut short
    (Ctrl-C amid savefig once left an SVG without its end) leaves the old chart and no litter."""
    import matplotlib.pyplot as plt

    from bertbench.report.files import save_figure

    path = tmp_path / "chart.svg"
    fig = plt.figure()
    save_figure(fig, path)
    before = path.read_bytes()
    assert before.rstrip().endswith(b"</svg>")

    def cut_short(target, **kwargs):
        target.write(b"<?xml half")
        raise KeyboardInterrupt

    fig.savefig = cut_short
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, path)
    plt.close(fig)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["chart.svg"]


def test_plot_py_interrupted_is_one_line_and_130_and_every_chart_is_whole(results_dir, tmp_path):
    import os
    import signal
    import time

    plots = tmp_path / "plots"
    proc = subprocess.Popen(
        [sys.executable, "plot.py", "--results-dir", str(results_dir), "--plots-dir", str(plots), "--format", "svg"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not list(plots.glob("*/*.svg")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("plot.py finished before the signal came")
    assert proc.returncode == 130 and err == "plot.py: error: interrupted by SIGINT\n", err
    for svg in plots.rglob("*.svg"):
        assert svg.read_bytes().rstrip().endswith(b"</svg>"), svg
    assert not [p for p in plots.rglob(".*") if p.is_file()]  # no temporary file left behind


def test_an_infinite_figure_in_a_hand_edited_file_is_no_figure_not_a_crash(results_dir, tmp_path):
    """latency_ms=inf once ended plot.py in an OverflowError traceback (standings' spans)."""
    edited = tmp_path / "results"
    shutil.copytree(results_dir, edited)
    frame = pd.read_csv(edited / "qa.csv", dtype=str, keep_default_na=False)
    first = frame.index[frame["status"] == "ok"][0]
    frame.loc[first, "latency_ms"] = "inf"
    from bertbench.store.csvfile import encode

    rows = [encode(list(frame.columns)), *(encode(list(r)) for r in frame.itertuples(index=False))]
    (edited / "qa.csv").write_bytes(b"".join(rows))  # as a run writes them
    (edited / "qa.jsonl").unlink()
    (data,) = [d for d in load_results(edited) if d.task == "qa"]
    assert len(data.rows) and data.rows["latency_ms"].notna().all()  # the row with none is not drawn
    assert plot.main(["--results-dir", str(edited), "--plots-dir", str(tmp_path / "plots"), "--format", "png"]) == 0
