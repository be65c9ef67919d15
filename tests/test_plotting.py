import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import plot
from bertbench import sweep
from bertbench.plotting import NEEDED
from bertbench.results import read_rows
from bertbench.schema import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
GRID = "--sweep --batch-sizes 1 2 4 --seqlens 16 32 --pad-fractions 0 0.5"


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


def test_the_columns_the_charts_need_are_written_by_the_benchmark():
    assert set(NEEDED) <= set(COLUMNS)


def test_every_expected_chart_is_a_valid_image(results_dir, tmp_path, capsys):
    plots = tmp_path / "plots"
    assert plot.main(["--results-dir", str(results_dir), "--plots-dir", str(plots)]) == 0
    for task in ("qa", "mlm"):
        expected = {f"seqlen_{s}_{m}.png" for s in (16, 32) for m in ("speedup", "mem_saved", "throughput")}
        assert {p.name for p in (plots / task).iterdir()} == expected | {"combined.png"}
        for path in (plots / task).iterdir():
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                width, height = image.size
                assert 600 < width < 4000 and 400 < height < 4000
                assert len(image.convert("L").getcolors(maxcolors=1 << 20)) > 20  # something was drawn
    out = capsys.readouterr().out
    assert "left out 12 unavailable rows of flash_attention_2" in out


def test_svg_output(results_dir, tmp_path):
    assert plot.main(["--results-dir", str(results_dir), "--plots-dir", str(tmp_path), "--format", "svg"]) == 0
    combined = (tmp_path / "qa" / "combined.svg").read_text()
    assert combined.startswith("<?xml") and "<svg" in combined


def test_latest_row_per_point_wins(results_dir, tmp_path):
    from bertbench.plotting import load_results

    rerun = tmp_path / "rerun"
    rerun.mkdir()
    text = (results_dir / "qa.csv").read_text().splitlines()
    body = text[1:]
    (rerun / "qa.csv").write_text("\n".join([text[0], *body, *body]) + "\n")  # the same rows twice
    (data,) = load_results(rerun)
    assert len(data.rows) == sum(1 for row in read_rows(results_dir / "qa.csv") if row["status"] == "ok")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "no such results directory"),
        (lambda d: d.mkdir(), "no <task>.csv files"),
        (lambda d: (d.mkdir(), (d / "qa.csv").write_text("task,latency\nqa,1\n")), "missing columns"),
        (lambda d: (d.mkdir(), (d / "qa.csv").write_text(",".join(COLUMNS) + "\n")), "no rows"),
    ],
    ids=["missing dir", "empty dir", "other columns", "header only"],
)
def test_bad_results_dir_is_one_line_and_exit_code_2(tmp_path, setup, message):
    results = tmp_path / "results"
    setup(results)
    run = subprocess.run(
        [sys.executable, "plot.py", "--results-dir", str(results), "--plots-dir", str(tmp_path / "p")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_run_bert_sh_runs_every_task_then_the_charts(tmp_path, nproc):
    env = {**os.environ, "PYTHON": sys.executable, "IMPLS": "sdpa", "NPROC": nproc,
           "RESULTS": str(tmp_path / "results"), "PLOTS": str(tmp_path / "plots")}  # fmt: skip
    run = subprocess.run(
        ["./run_bert.sh", "--no-use-cuda", "--model-size", "tiny", "--num-batches", "1", "--warmup", "0",
         "--batch-sizes", "1", "2", "--seqlens", "16", "--pad-fractions", "0"],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    for task in ("mlm", "classification", "token_classification", "qa"):
        assert len((tmp_path / "results" / f"{task}.csv").read_text().splitlines()) == 1 + 2
        assert (tmp_path / "plots" / task / "combined.png").stat().st_size > 10_000


def test_train_rows_stay_apart_and_rows_of_every_gpu_of_a_host_are_drawn(results_dir, tmp_path):
    import pandas as pd

    from bertbench.plotting import load_results

    rows = pd.read_csv(results_dir / "qa.csv")
    rows["device"] = [f"NVIDIA H100 (cuda:{i % 2})" for i in range(len(rows))]  # two ranks of a torchrun sweep
    both = pd.concat([rows, rows.assign(mode="train")])
    (tmp_path / "r").mkdir()
    both.to_csv(tmp_path / "r" / "qa.csv", index=False)
    (data,) = load_results(tmp_path / "r")
    assert data.other_setups == 0 and len(data.rows) == 2 * int((rows["status"] == "ok").sum())
    assert set(data.rows["mode"]) == {"inference", "train"} and "cuda:" not in data.title


def test_a_rerun_with_extra_measurements_replaces_the_point_instead_of_adding_a_series(results_dir, tmp_path):
    import pandas as pd

    from bertbench.plotting import load_results

    rows = pd.read_csv(results_dir / "qa.csv")
    (tmp_path / "r").mkdir()
    pd.concat([rows, rows.assign(compile=True, cuda_graphs=True)]).to_csv(tmp_path / "r" / "qa.csv", index=False)
    (data,) = load_results(tmp_path / "r")
    assert len(data.rows) == int((rows["status"] == "ok").sum()) and set(data.rows["compile"]) == {True}


def test_graph_and_compiled_speedups_get_charts_only_where_measured(results_dir, tmp_path):
    import pandas as pd

    from bertbench.plotting import load_results, plot_all

    rows = pd.read_csv(results_dir / "qa.csv")
    rows["latency_ms_graph"] = rows["latency_ms"] / 4
    rows["latency_ms_graph_baseline"] = rows["latency_ms_baseline"] / 2  # the implementations twice as fast
    (tmp_path / "r").mkdir()
    rows.to_csv(tmp_path / "r" / "qa.csv", index=False)
    (data,) = load_results(tmp_path / "r")
    names = {path.name for path in plot_all([data], tmp_path / "plots")}
    assert {"seqlen_16_speedup_graph.png", "seqlen_16_speedup.png", "combined.png"} <= names
    assert not any("compiled" in name for name in names)
    assert not any("graph" in path.name for path in plot_all(load_results(results_dir), tmp_path / "plain"))
