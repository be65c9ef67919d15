import csv
import os
import subprocess
import sys
from pathlib import Path

from bertbench.config import GridPoint
from bertbench.distributed import point_cost, shard
from bertbench.results import ResultsFile

ROOT = Path(__file__).resolve().parents[1]


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


def test_two_processes_on_gloo_sweep_and_merge_in_grid_order(tmp_path):
    out = tmp_path / "results"
    args = " ".join(
        ["--no-use-cuda --model-size tiny --num-batches 2 --warmup 1 --task qa --sweep --batch-sizes 1 2 4",
         "--seqlens 16 32 --pad-fractions 0 --optimization sdpa eager"]
    ).split()  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "benchmark_bert.py", *args, "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with (out / "qa.csv").open() as f:
        rows = list(csv.DictReader(f))
    points = [(r["batch_size"], r["max_seqlen"], r["attn_implementation"]) for r in rows]
    assert points == [(b, s, n) for b in ("1", "2", "4") for s in ("16", "32") for n in ("sdpa", "eager")]
    assert all(r["status"] == "ok" for r in rows)
    assert sorted(p.name for p in out.iterdir()) == ["qa.csv", "runs"]  # the parts merged and gone
    (run_id,) = {r["run_id"] for r in rows}  # one run, whichever rank measured the row
    assert [p.name for p in (out / "runs").iterdir()] == [f"{run_id}.json"]  # one manifest, by rank 0

    # The same sweep in one process, one thread as torchrun gives each rank: the same rows, as
    # scripts/compare_runs.py (used on the GPU) finds (in grid order unless a point was measured
    # again at the end because the host ran slow).
    plain = tmp_path / "plain"
    single = subprocess.run(
        [sys.executable, "benchmark_bert.py", *args, "--output-dir", str(plain)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    same = compare_runs(plain, out)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "qa: 12 rows vs 12; same measurements: True" in same.stdout
    assert "status differs in 0" in same.stdout
    assert "eager (baseline)   latency second/first over 6 points" in same.stdout

    rows[3]["status"] = "error"  # one measurement that failed in the second run
    (out / "qa.csv").unlink()
    rewritten = ResultsFile(out / "qa.csv")
    for row in rows:
        rewritten.append(row)
    rewritten.close()
    differs = compare_runs(plain, out)
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
    from bertbench import sweep
    from bertbench.results import part_path

    config = tiny_config("--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    first = sweep.run(config, progress=False)  # stands in for the rows a rank finished
    (config.output_dir / "qa.csv").unlink()
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

    from bertbench.distributed import Rank, start

    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    start(Rank(), torch.device("cuda"))
    start(Rank(), torch.device("cuda", 1))
    assert chosen == [torch.device("cuda", 1)]
