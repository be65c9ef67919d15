"""GPU behaviour, run on a CUDA machine (python -m pytest -m gpu); skipped without one."""

import csv

import pytest
import torch

from bertbench.cli import parse_args
from bertbench.measure.energy import POWER_LIMIT_MARGIN
from bertbench.run import sweep

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

PARITY_IMPLEMENTATIONS = "sdpa sdpa-efficient sdpa-cudnn flash_attention_2 flex_attention"


def gpu_config(tmp_path, extra: str):
    return parse_args(
        ["--use-cuda", "--output-dir", str(tmp_path), "--warmup", "2", "--num-batches", "5", *extra.split()]
    )


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_every_task_and_implementation_matches_eager_on_real_tokens(tmp_path, dtype):
    config = gpu_config(
        tmp_path,
        f"--task all --model-size base --dtype {dtype} --batch-size 8 --max-seqlen 128 --avg-seqlen 64 "
        f"--optimization {PARITY_IMPLEMENTATIONS}",
    )
    rows = sweep.run(config, progress=False)
    assert len(rows) == 4 * 5
    report = [(r["task"], r["attn_implementation"], r["status"], r["rel_err"], r["detail"]) for r in rows]
    print("\n".join(map(str, report)))
    for task, name, status, rel_err, detail in report:
        assert status == "ok", (task, name, detail)
        assert rel_err < 2e-2


def test_peak_memory_is_positive_and_lower_than_eager_at_64x512(tmp_path):
    config = gpu_config(
        tmp_path, "--task qa --model-size base --batch-size 64 --max-seqlen 512 --optimization sdpa flash_attention_2"
    )
    rows = sweep.run(config, progress=False)
    for r in rows:
        assert r["status"] == "ok", r["detail"]
        assert 0 < r["mem_mb"] < r["mem_mb_baseline"]


def test_out_of_memory_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    # MLM logits alone at 4096 x 512 x 30522 in fp16 are 128 GB: more than any single GPU here holds.
    config = gpu_config(
        tmp_path,
        "--task mlm --model-size base --sweep --batch-sizes 4096 8 --seqlens 512 --pad-fractions 0 --optimization sdpa",
    )
    rows = sweep.run(config, progress=False)
    assert [r["status"] for r in rows] == ["oom", "ok"] and rows[0].baseline_status == "oom"
    with (config.output_dir / "mlm.csv").open() as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["oom", "ok"]


def test_bf16_large_has_no_false_mismatch(tmp_path):
    """Through 24 bf16 layers eager itself is ~3 % off the exact result; a fixed 2 % tolerance
    flagged every implementation here, sdpa-math (eager's arithmetic) included."""
    config = gpu_config(
        tmp_path,
        "--task classification --model-size large --dtype bf16 --optimization all --batch-size 16 "
        "--max-seqlen 256 --avg-seqlen 200",
    )
    rows = sweep.run(config, progress=False)
    print("\n".join(str((r.attn_implementation, r.status, r.rel_err, r.ref_err, r.ref_err_baseline)) for r in rows))
    assert rows and all(r.status in ("ok", "unavailable") for r in rows), [
        (r.attn_implementation, r.detail) for r in rows
    ]
    assert sum(r.status == "ok" for r in rows) >= 5 and all(r.ref_err_baseline > 0 for r in rows if r.status == "ok")


def test_implementations_are_measured_where_the_baseline_runs_out_of_memory(tmp_path):
    """At bert-large MLM 8192 x 512 eager runs out of memory; sdpa is still measured (its own
    status, which may be oom too: the logits alone are 256 GB in fp16) and the speedup is empty."""
    config = gpu_config(
        tmp_path, "--task mlm --model-size large --batch-size 8192 --max-seqlen 512 --optimization sdpa"
    )
    (row,) = sweep.run(config, progress=False)
    print(row.status, row.baseline_status, row.latency_ms, row.detail)
    assert row.baseline_status == "oom" and row.speedup_pct is None
    assert row.status in ("ok", "oom") and not row.detail.startswith("baseline eager: ")


def test_two_runs_of_one_point_agree_within_5_percent(tmp_path):
    """At a point that keeps the GPU busy (64 x 512); launch-bound points vary more (README)."""
    config = gpu_config(
        tmp_path,
        "--task qa --model-size base --batch-size 64 --max-seqlen 512 --optimization sdpa --warmup 5 --num-batches 50",
    )
    first, second = (sweep.run(config, progress=False)[0] for _ in range(2))
    for column in ("latency_ms_baseline", "latency_ms"):
        assert abs(first[column] / second[column] - 1) < 0.05, (column, first[column], second[column])


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_packed_flash_attention_matches_padded_eager(tmp_path, dtype):
    config = gpu_config(
        tmp_path,
        f"--task all --model-size base --dtype {dtype} --batch-size 8 --max-seqlen 128 --avg-seqlen 64 --packed "
        "--optimization flash_attention_2 flash_attention_3 sdpa-varlen",
    )
    rows = sweep.run(config, progress=False)
    print(
        "\n".join(
            str((r["task"], r["attn_implementation"], r["status"], r["rel_err"], r["attention_kernels"], r["detail"]))
            for r in rows
        )
    )
    for r in rows:
        if r["attn_implementation"] == "flash_attention_3" and r["status"] == "unavailable":
            continue  # no FlashAttention-3 build on this machine
        assert r["attention_kernels"] != "none", r  # the varlen kernel is named, as the padded ones are
        assert r["status"] == "ok" and r["packed"] and r["rel_err"] < 2e-2, (
            r["task"],
            r["attn_implementation"],
            r["detail"],
        )


def test_train_mode_runs_and_attention_saves_training_memory(tmp_path):
    config = gpu_config(
        tmp_path,
        "--task qa --model-size base --mode train --batch-size 32 --max-seqlen 512 --avg-seqlen 384 "
        "--optimization sdpa flash_attention_2",
    )
    rows = sweep.run(config, progress=False)
    print("\n".join(str((r["attn_implementation"], r["status"], r["mem_mb"], r["mem_mb_baseline"])) for r in rows))
    for r in rows:
        assert r["status"] == "ok" and r["mode"] == "train", r["detail"]
        assert 0 < r["mem_mb"] < r["mem_mb_baseline"] and r["rel_err"] < 2e-2


def test_cuda_graph_replays_agree_with_eager_and_record_what_was_captured(tmp_path):
    """Eager and sdpa capture with their mask prepared first; flash_attention_2 on a padded, masked
    batch with its unpadding computed before the capture (model.capture); packed captures."""
    args = "--task qa --model-size base --batch-size 8 --max-seqlen 128 --avg-seqlen 64 --cuda-graphs"
    padded = sweep.run(gpu_config(tmp_path / "padded", f"{args} --optimization sdpa flash_attention_2"), False)
    packed = sweep.run(gpu_config(tmp_path / "packed", f"{args} --packed --optimization flash_attention_2"), False)
    rows = {("packed " if r["packed"] else "") + r["attn_implementation"]: r for r in padded + packed}
    for name, r in rows.items():
        print(
            name,
            {
                k: r[k]
                for k in (
                    "latency_ms",
                    "latency_ms_graph",
                    "latency_ms_graph_baseline",
                    "attention_kernels",
                    "attention_kernels_graph",
                    "launch_bound",
                    "detail",
                )
            },
        )
        assert r["status"] == "ok", r["detail"]
        assert 0 < r["latency_ms_graph_baseline"] < r["latency_ms_baseline"]  # eager at 8 x 128 is launch-bound
        assert 0 < r["latency_ms_graph"] < r["latency_ms"], r["detail"]
        assert r["attention_kernels_graph"] == r["attention_kernels"], r["detail"]
    assert rows["sdpa"]["attention_kernels_graph"].startswith("sdpa_")
    assert "flash_attn" in rows["flash_attention_2"]["attention_kernels_graph"]
    assert "flash_attn" in rows["packed flash_attention_2"]["attention_kernels_graph"]


def test_every_model_captures_with_no_padding_and_padded_and_replays_its_loops_kernels(tmp_path):
    """#25: eager, sdpa, FA2 and FA3 in a CUDA graph at pad 0 and half padded, the graph running
    the loop's work: the same attention operator and, with nothing padded, kernels that add up to
    the loop's within 5 % (a 4-D mask eager's loop never adds made its replay 25 % slower; sdpa at
    pad 0 replayed the math kernel). Padded, the mask and FlashAttention's unpadding are built
    once before the capture, so the replay runs no more than the loop (FA2 at 8 x 512: 10 % less,
    the per-layer metadata its loop recomputes)."""
    names = "sdpa flash_attention_2 flash_attention_3"
    grid = "--sweep --batch-sizes 8 32 --seqlens 512 --pad-fractions 0 0.5"
    rows = sweep.run(
        gpu_config(tmp_path, f"--task qa --model-size base {grid} --optimization {names} --cuda-graphs"), False
    )
    assert len(rows) == 12
    for r in rows:
        point = (r["attn_implementation"], r["batch_size"], r["pad_fraction"])
        print(point, r["latency_ms"], r["latency_ms_graph"], r["gpu_ms"], r["gpu_ms_graph"],
              r["gpu_ms_baseline"], r["gpu_ms_graph_baseline"], r["attention_kernels_graph"], r["detail"])  # fmt: skip
        assert r["status"] == "ok", (point, r["detail"])
        assert r["attention_kernels_graph"] == r["attention_kernels"], (point, r["detail"])
        for suffix in ("", "_baseline"):
            assert r[f"latency_ms_graph{suffix}"] > 0, (point, suffix, r["detail"])
            ratio = r[f"gpu_ms_graph{suffix}"] / r[f"gpu_ms{suffix}"]
            assert (abs(ratio - 1) < 0.05) if r["pad_fraction"] == 0 else (0.8 < ratio < 1.05), (point, suffix, ratio)


def test_compiled_models_agree_with_eager_and_compile_time_is_kept_apart(tmp_path):
    config = gpu_config(
        tmp_path,
        "--task qa --model-size base --batch-size 16 --max-seqlen 256 --avg-seqlen 192 --compile --optimization sdpa",
    )
    (row,) = sweep.run(config, progress=False)
    print(
        {
            k: row[k]
            for k in (
                "latency_ms",
                "latency_ms_compiled",
                "latency_ms_compiled_baseline",
                "compile_s",
                "compile_s_baseline",
                "attention_kernels",
                "attention_kernels_compiled",
            )
        }
    )
    assert row["status"] == "ok", row["detail"]
    assert row["compile_s"] > 1 and row["compile_s_baseline"] > 1  # seconds, against milliseconds of latency
    assert 0 < row["latency_ms_compiled"] < 1000 * row["compile_s"] / 10
    assert row["attention_kernels_compiled"]


def test_energy_per_token_is_read_within_the_boards_power_limit(tmp_path):
    pynvml = pytest.importorskip("pynvml")
    config = gpu_config(
        tmp_path, "--task qa --model-size base --batch-size 64 --max-seqlen 512 --energy --optimization sdpa"
    )
    (row,) = sweep.run(config, progress=False)
    print((row["joules_per_1k_tokens"], row["joules_per_1k_tokens_baseline"], row["power_w"], row["power_w_baseline"]))
    pynvml.nvmlInit()
    limit_w = pynvml.nvmlDeviceGetEnforcedPowerLimit(pynvml.nvmlDeviceGetHandleByIndex(0)) / 1000
    assert row["status"] == "ok", row["detail"]
    for power in (row["power_w"], row["power_w_baseline"]):
        # the counter moves every 100 ms: over a ~1.2 s window one step either side is up to ~10 %
        # (energy.py); on the H100 sdpa read 693 W once and 742 W another time against 700 W
        assert 50 < power <= POWER_LIMIT_MARGIN * limit_w
    # sdpa does the same work as eager in about half the time at 64 x 512, at no higher power
    assert 0 < row["joules_per_1k_tokens"] < row["joules_per_1k_tokens_baseline"]


def test_gpu_time_is_one_calls_kernels_and_matches_cuda_events_where_the_gpu_sets_the_pace():
    """Four 8192^2 fp16 products a call: the GPU, not the host, sets the time, so the events
    around a call and the sum of its kernels' durations agree; each call ran the same kernels
    (cuBLAS adds a workspace fill to each product). Measured in turn, one call each way, since
    the power cap lowers the clock under this load for seconds at a time."""
    import statistics

    from bertbench.measure.gpu_time import gpu_times
    from bertbench.measure.timing import latencies

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    cuda = torch.device("cuda")

    def call():
        for _ in range(4):
            a @ a

    latencies(call, cuda, 3)
    ratios, counts = [], set()
    for _ in range(7):
        events = latencies(call, cuda, 1)[0]
        gpu = gpu_times({"products": call, "small": lambda: a[:1] + 1}, cuda, 1)
        ratios.append(gpu["products"].median / events)
        counts.add((gpu["products"].activities, gpu["small"].activities))
    print("kernel sum / events", ratios, "activities", counts)
    assert len(counts) == 1 and min(counts.pop()[0]) >= 4
    assert abs(statistics.median(ratios) - 1) < 0.05


def test_gpu_time_agrees_with_the_graph_replay_at_the_same_clock(tmp_path):
    """A second method at a GPU-bound point (64 x 512, half padded: eager and sdpa capture with their
    mask). The row's replay runs the loop's kernels (their sums within 5 %), and CUDA events around
    replays agree within 5 % with the kernel sum of replays launched the same way: each on an idle
    GPU, as the profiled calls run, and back to back, as the timed rounds run (scripts/replay_clock.py).

    The row's own replay median (a back-to-back burst) is not held against `gpu_ms_graph`
    (idle-launched): the power cap lowers the clock through a burst of replays at this point. On the
    H200 (6 December) sdpa's replays read 17.0-17.1 ms back to back at 1770-1785 MHz and 15.9-16.0 ms
    after idle at 1980, against kernel sums of 16.8-16.9 and 15.8 ms launched the same ways
    (results/h200/replay-clock.txt; an H100 alike: results/h100/replay-clock.txt, where this test
    passed and the row's replay median read 6.2 % above its kernel sum); the row prints its clock
    and throttle flag."""
    from bertbench.measure.clock import for_device
    from scripts.replay_clock import replay_clock, replays

    flags = "--task qa --model-size base --batch-size 64 --max-seqlen 512 --avg-seqlen 256 --optimization sdpa"
    config = gpu_config(tmp_path, f"{flags} --cuda-graphs --num-batches 20")
    (r,) = sweep.run(config, False)
    assert r.status == "ok", r.detail
    for suffix in ("", "_baseline"):
        replay, replay_gpu, loop_gpu = r[f"latency_ms_graph{suffix}"], r[f"gpu_ms_graph{suffix}"], r[f"gpu_ms{suffix}"]
        print(suffix or "sdpa", "replay", replay, "replay kernels", replay_gpu, "loop kernels", loop_gpu,
              "clock", r[f"sm_clock_mhz{suffix}"], "throttled", r.throttled, r.throttle_reasons)  # fmt: skip
        assert abs(replay_gpu / loop_gpu - 1) < 0.05
    assert r.sm_clock_mhz > 0 and r.sm_clock_mhz_baseline > 0 and r.throttled in (True, False)

    watch = for_device(config.torch_device)
    try:
        with torch.inference_mode():
            for name, replay in replays(config):
                assert callable(replay), (name, replay)
                figures = replay_clock(replay, config.torch_device, watch)
                print(name, figures)
                assert abs(figures.events_after_idle / figures.kernels_idle_launched - 1) < 0.05
                assert abs(figures.events_back_to_back / figures.kernels_back_to_back - 1) < 0.05
    finally:
        if watch is not None:  # no NVML: the clocks read NaN, the assertions stand
            watch.close()


def test_two_fresh_processes_agree_on_the_gpu_time(tmp_path):
    """The GPU time repeats across processes where the end-to-end latency of a host-bound point
    need not: within 3 % per model, 3 points of GPU speedup per row."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    grid = "--task qa --sweep --batch-sizes 1 8 64 --seqlens 128 512 --pad-fractions 0 0.5 --optimization sdpa"
    runs = []
    for name in "ab":
        out = tmp_path / name
        subprocess.run([sys.executable, str(root / "benchmark_bert.py"), *grid.split(), "--output-dir", str(out),
                        "--quiet"], check=True)  # fmt: skip
        with (out / "qa.csv").open(newline="") as f:
            runs.append({(r["batch_size"], r["max_seqlen"], r["pad_fraction"]): r for r in csv.DictReader(f)})
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) == 12
    for key, a in runs[0].items():
        b = runs[1][key]
        assert a["status"] == b["status"] == "ok", (key, a["detail"], b["detail"])
        for column in ("gpu_ms", "gpu_ms_baseline"):
            assert abs(float(a[column]) / float(b[column]) - 1) < 0.03, (key, column, a[column], b[column])
        assert abs(float(a["speedup_gpu_pct"]) - float(b["speedup_gpu_pct"])) < 3, key


def test_the_dataset_pass_packs_with_sdpa_varlen_and_measures_memory_and_gpu_time(tmp_path):
    from bertbench.run import dataset_run
    from bertbench.store.dataset_file import dataset_path, read_dataset

    config = parse_args(["--use-cuda", "--output-dir", str(tmp_path), "--task", "qa", "--model-size", "base",
                         "--dataset", "--sequences", "256", "--batch-size", "32", "--max-seqlen", "256",
                         "--length-distribution", "lognormal", "--avg-seqlen", "64", "--seqlen-stdev", "60",
                         "--optimization", "sdpa", "sdpa-varlen", "--passes", "2"])  # fmt: skip
    assert dataset_run.main(config) == 0
    rows = {(r["attn_implementation"], r["strategy"]): r for r in read_dataset(dataset_path(tmp_path, "qa"))}
    packed = rows[("sdpa-varlen", "packed")]
    assert packed["status"] == "ok" and float(packed["rel_err"]) < 2e-2 and float(packed["padded_share"]) == 0
    for key, r in rows.items():
        if r["status"] == "unavailable":
            assert key[1] == "packed" and key[0] != "sdpa-varlen"
            continue
        assert r["status"] == "ok", (key, r["detail"])
        assert float(r["peak_mem_mb"]) > 0 and 0 < float(r["gpu_s"]) <= float(r["total_s"]) * 1.05
    assert float(rows[("sdpa", "sorted")]["padded_share"]) < float(rows[("sdpa", "pad-max")]["padded_share"])


def test_the_dataset_pass_replays_each_shape_from_one_cuda_graph_and_matches_its_loop(tmp_path):
    """--dataset --cuda-graphs: one graph per padded shape and mask (sdpa), one per packed capacity
    (sdpa-varlen, flash_attention_2 where flash-attn is installed), each replay within the loop's tolerance."""
    from bertbench.model.corpus import batch_of
    from bertbench.model.graph_inputs import graph_key
    from bertbench.model.heads import preset_config
    from bertbench.run import dataset_run
    from bertbench.spec.catalog import NUM_LABELS
    from bertbench.store.dataset_file import dataset_path, read_dataset

    config = parse_args(["--use-cuda", "--output-dir", str(tmp_path), "--task", "token_classification",
                         "--model-size", "base", "--dataset", "--cuda-graphs", "--sequences", "200",
                         "--batch-size", "16", "--max-seqlen", "256", "--length-distribution", "lognormal",
                         "--avg-seqlen", "64", "--seqlen-stdev", "60", "--passes", "2",
                         "--optimization", "sdpa", "sdpa-varlen", "flash_attention_2"])  # fmt: skip
    assert dataset_run.main(config) == 0
    corpus = dataset_run.corpus_of(config, preset_config("token_classification", "base"))
    (point,) = config.points
    plans = dataset_run.plans(corpus, config.dataset, point.batch_size, point.max_seqlen)
    shapes = {s: len({graph_key(batch_of(corpus, p, "token_classification", NUM_LABELS["token_classification"],
                                         config.use_mask, config.seed)) for p in ps})
              for s, ps in plans.items()}  # fmt: skip
    assert shapes["packed"] == 1 and shapes["pad-max"] == 2 and shapes["sorted"] > 2
    rows = {
        (r["attn_implementation"], r["strategy"]): r
        for r in read_dataset(dataset_path(tmp_path, "token_classification"))
    }
    print("\n".join(f"{k}: {r['status']} {r['graphs']} {r['graph_total_s']} {r['graph_gain_pct']} {r['graph_note']}"
                    for k, r in rows.items()))  # fmt: skip
    replayed = [("eager", "pad-max"), ("sdpa", "pad-max"), ("sdpa", "pad-longest"), ("sdpa", "sorted"),
                ("sdpa-varlen", "packed")]  # fmt: skip
    if rows[("flash_attention_2", "packed")]["status"] == "ok":
        replayed.append(("flash_attention_2", "packed"))
        assert rows[("flash_attention_2", "sorted")]["graph_note"].startswith("unavailable: FlashAttention unpads")
    for key in replayed:
        r = rows[key]
        assert r["status"] == "ok" and r["graph_note"] == "ok", (key, r["detail"], r["graph_note"])
        assert int(r["graphs"]) == shapes[key[1]] >= 1
        assert float(r["graph_rel_err"]) < 2e-2 and float(r["graph_total_s"]) > 0 and float(r["graph_capture_s"]) > 0
        assert float(r["graph_tokens_per_s"]) > 0 and r["graph_gain_pct"] != ""
    for key, r in rows.items():  # a graph pass that cannot run says why, and the loop's figures stand
        assert not r["graph_note"].startswith("error"), (key, r["graph_note"])
        if r["status"] == "ok":
            assert float(r["total_s"]) > 0
