import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import in_step

from bertbench.run.distributed import point_cost, shard
from bertbench.spec.catalog import TASKS
from bertbench.spec.config import GridPoint
from bertbench.store.results import ResultsFile

ROOT = Path(__file__).resolve().parents[2]


def seed_grid() -> list[GridPoint]:
    return [
        GridPoint(b, s, (1 - pad) * s)
        for b in (1, 2, 4, 8, 16, 32, 64, 128)
        for s in (128, 256, 512)
        for pad in (0, 0.1, 0.2, 0.5, 0.75)
    ]


def test_sharding_covers_the_grid_exactly_once():
    points = seed_grid()
    for world in (1, 2, 3, 4, 8):
        shares = shard(points, world)
        assert len(shares) == world
        assert sorted(i for share in shares for i in share) == list(range(len(points)))
        assert all(share == sorted(share) for share in shares)  # each rank keeps grid order


def test_sharding_is_balanced_by_cost_unlike_every_nth_point():
    points = seed_grid()
    for world in (2, 4, 8):
        loads = [sum(point_cost(points[i]) for i in share) for share in shard(points, world)]
        heaviest = max(point_cost(p) for p in points)
        assert max(loads) - min(loads) <= heaviest  # the greedy bound
        assert max(loads) / (sum(loads) / world) < 1.05
        strided = [sum(point_cost(p) for p in points[r::world]) for r in range(world)]
        assert max(loads) <= max(strided)


FLAGS = ["--no-use-cuda", "--model-size", "tiny", "--num-batches", "2", "--warmup", "1", "--batch-sizes", "1", "2", "4",
         "--seqlens", "16", "32", "--pad-fractions", "0"]  # fmt: skip


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_run_bert_sh_launches_every_task_then_the_charts(tmp_path, nproc):
    """What ./run_bert.sh runs, read through PYTHON=echo: the defaults, and torchrun for NPROC > 1."""
    env = {key: value for key, value in os.environ.items() if key not in ("IMPLS", "RESULTS", "PLOTS")}
    run = subprocess.run(["./run_bert.sh", "--model-size", "mini"], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "PYTHON": "echo", "NPROC": nproc}, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    launch = "-m torch.distributed.run --standalone --nproc-per-node 2 " if nproc == "2" else ""
    assert run.stdout.splitlines() == [
        f"{launch}benchmark_bert.py --task all --sweep --optimization all --output-dir results --model-size mini",
        "plot.py --results-dir results --plots-dir plots",
    ]


def test_run_bert_sh_on_two_gloo_ranks_gives_the_rows_of_one_process_in_grid_order_and_the_charts(tmp_path):
    """./run_bert.sh with NPROC=2 (torchrun, two gloo ranks of one thread each): every task's sweep,
    merged in grid order, then the charts; the same rows as the same sweep in one process."""
    from bertbench.cli import parse_args
    from bertbench.run import sweep

    env = {**os.environ, "PYTHON": sys.executable, "IMPLS": "sdpa eager", "NPROC": "2",
           "RESULTS": str(tmp_path / "results"), "PLOTS": str(tmp_path / "plots")}  # fmt: skip
    ranks = subprocess.Popen(["./run_bert.sh", *FLAGS], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)  # fmt: skip
    plain = tmp_path / "plain"  # meanwhile, in this process, on one thread as torchrun gives each rank
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sweep.run(parse_args([*FLAGS, "--task", "all", "--sweep", "--optimization", "sdpa", "eager", "--output-dir",
                              str(plain)]), progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    _, err = ranks.communicate(timeout=600)
    assert ranks.returncode == 0, err[-3000:]

    out = tmp_path / "results"
    names = [*(f"{t}.csv" for t in TASKS), *(f"{t}.jsonl" for t in TASKS), "runs"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # parts merged, into the record too
    grid = [(b, s, n) for b in ("1", "2", "4") for s in ("16", "32") for n in ("sdpa", "eager")]
    run_ids = set()
    for task in TASKS:
        with (out / f"{task}.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [(r["batch_size"], r["max_seqlen"], r["attn_implementation"]) for r in rows] == grid, task
        assert all(r["status"] == "ok" for r in rows)
        run_ids |= {r["run_id"] for r in rows}
        assert in_step(out / f"{task}.csv"), task
        assert (tmp_path / "plots" / task / "combined.png").stat().st_size > 10_000
    (run_id,) = run_ids  # one run, whichever rank measured the row
    assert [p.name for p in (out / "runs").iterdir()] == [f"{run_id}.json"]  # one manifest, by rank 0
    assert (tmp_path / "plots" / "report.html").is_file()

    # the same rows as in one process, as scripts/compare_runs.py (used on the GPU) finds
    same = compare_runs(plain, out)
    assert same.returncode == 0, same.stdout + same.stderr
    for task in TASKS:
        assert f"{task}: 12 rows vs 12; same measurements: True (same order); status differs in 0" in same.stdout
    assert "eager (baseline)   latency second/first over 6 points" in same.stdout
    with (out / "qa.csv").open() as f:
        rows = list(csv.DictReader(f))
    rows[3]["status"] = "error"  # one measurement that failed in the second run
    (out / "qa.csv").unlink()
    rewritten = ResultsFile(out / "qa.csv")
    for row in rows:
        rewritten.append(row)
    rewritten.close()
    differs = compare_runs(plain, out, "qa")
    assert differs.returncode == 1 and "status differs in 1" in differs.stdout


def compare_runs(first: Path, second: Path, *tasks: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/compare_runs.py", str(first), str(second), *tasks],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_compare_runs_refuses_a_missing_folder_and_an_empty_comparison(tmp_path):
    missing = compare_runs(tmp_path, tmp_path / "nowhere")
    assert missing.returncode == 2 and missing.stderr.strip() == f"compare_runs: {tmp_path / 'nowhere'} is not a folder"
    empty = compare_runs(tmp_path, tmp_path)
    assert empty.returncode == 1 and "no rows" in empty.stderr


def test_resume_after_a_crashed_rank_skips_its_points_and_merges_its_part(tmp_path, tiny_config):
    from bertbench.run import sweep
    from bertbench.store.results import part_path

    config = tiny_config("--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    first = sweep.run(config, progress=False)  # stands in for the rows a rank finished
    (config.output_dir / "qa.csv").unlink()
    (config.output_dir / "qa.jsonl").unlink()  # else the CSV is written back from its record
    part = ResultsFile(part_path(config.output_dir, "qa", 1))
    part.append(first[1])  # batch 2, left behind in rank 1's part file
    part.close()
    resumed = sweep.run(tiny_config(
        "--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa --resume"
    ), progress=False)  # fmt: skip
    assert [r["batch_size"] for r in resumed] == [1]
    with (config.output_dir / "qa.csv").open() as f:
        assert [r["batch_size"] for r in csv.DictReader(f)] == ["1", "2"]


def test_a_plain_gpu_run_does_not_pick_a_device(monkeypatch):
    """Outside torchrun the device is "cuda" without an index, which torch.cuda.set_device refuses."""
    import torch

    from bertbench.run.distributed import Rank, start

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    start(Rank(), torch.device("cuda"))
    start(Rank(), torch.device("cuda", 1))
    assert chosen == [torch.device("cuda", 1)]
