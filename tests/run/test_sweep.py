import itertools
from types import SimpleNamespace

import pytest
import torch

import benchmark_bert
from bertbench.measure.timing import INTERLEAVE_ROUNDS
from bertbench.model.batches import make_batch
from bertbench.model.heads import LoadedModel
from bertbench.run import sweep
from bertbench.spec.catalog import TASKS
from bertbench.spec.schema import COLUMNS
from bertbench.store.results import read_rows


def test_all_tasks_sweep_writes_a_row_per_point_and_implementation(tiny_config):
    config = tiny_config(
        "--task all --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 0.5 "
        "--optimization sdpa flash_attention_2 eager"
    )
    rows = sweep.run(config, progress=False)
    assert len(rows) == 4 * 4 * 3
    for task in TASKS:
        written = read_rows(config.output_dir / f"{task}.csv")
        assert list(written[0]) == list(COLUMNS) and len(written) == 4 * 3
        by_impl = {}
        for r in written:
            by_impl.setdefault(r["attn_implementation"], []).append(r)
        assert {r["status"] for r in by_impl["sdpa"]} == {"ok"}
        assert {r["status"] for r in by_impl["eager"]} == {"ok"}
        assert {r["status"] for r in by_impl["flash_attention_2"]} == {"unavailable"}
        assert all("CUDA" in r["detail"] for r in by_impl["flash_attention_2"])
        for r in by_impl["sdpa"]:
            assert r["runs"] == "sdpa" and float(r["rel_err"]) < 1e-4 and float(r["latency_ms"]) > 0
            base, lat = float(r["latency_ms_baseline"]), float(r["latency_ms"])
            assert float(r["speedup_pct"]) + 100 == pytest.approx(base / lat * 100, rel=1e-4)  # 6 digits in the CSV
            assert float(r["tokens_per_s"]) == pytest.approx(int(r["real_tokens"]) / lat * 1e3, rel=1e-4)
            assert r["torch"] == torch.__version__ and r["model"] == "bert-tiny" and r["dtype"] == "fp32"
        # the baseline was measured at every point, not once: its latencies differ across points
        assert len({r["latency_ms_baseline"] for r in by_impl["sdpa"]}) > 1


def test_resume_skips_finished_points_and_reruns_the_rest(tiny_config):
    args = "--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa --resume"
    first = sweep.run(tiny_config(args), progress=False)
    assert len(first) == 2
    assert sweep.run(tiny_config(args), progress=False) == []
    wider = tiny_config(
        "--task qa --sweep --batch-sizes 1 2 4 --seqlens 16 --pad-fractions 0 --optimization sdpa --resume"
    )
    third = sweep.run(wider, progress=False)
    assert [r["batch_size"] for r in third] == [4]
    assert len(read_rows(wider.output_dir / "qa.csv")) == 3


def patch_forward(monkeypatch, wrap):
    """Replace every model's call by wrap(name, inputs, original call)."""
    original = LoadedModel.forward

    def forward(self, inputs):
        call = original(self, inputs)
        return lambda: wrap(self.name, inputs, call)

    monkeypatch.setattr(LoadedModel, "forward", forward)


def test_out_of_memory_at_one_point_is_a_row_and_the_sweep_goes_on(tiny_config, monkeypatch):
    def wrap(name, inputs, call):
        if name == "sdpa" and inputs["input_ids"].shape[0] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")
        return call()

    patch_forward(monkeypatch, wrap)
    config = tiny_config("--task qa --sweep --batch-sizes 1 2 4 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    rows = sweep.run(config, progress=False)
    assert [r["status"] for r in rows] == ["ok", "oom", "ok"]
    assert "out of memory" in rows[1]["detail"] and rows[1]["latency_ms_baseline"] > 0


def test_a_baseline_out_of_memory_still_measures_every_implementation(tiny_config, monkeypatch):
    def wrap(name, inputs, call):
        if name == "eager":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return call()

    patch_forward(monkeypatch, wrap)
    rows = sweep.run(tiny_config("--task qa --optimization sdpa sdpa-math"), progress=False)
    for row in rows:  # measured where a memory-saving implementation matters most
        assert row.status == "ok" and row.latency_ms > 0 and row.baseline_status == "oom"
        assert row.speedup_pct is None and row.mem_saved_pct is None and row.rel_err is None
        assert row.detail.startswith("baseline eager oom: OutOfMemoryError")


def test_backend_refusing_the_inputs_is_unavailable_not_a_crash(tiny_config):
    rows = sweep.run(tiny_config("--task qa --optimization sdpa-efficient sdpa-math"), progress=False)
    assert [r["status"] for r in rows] == ["unavailable", "ok"]
    assert rows[1]["runs"] == "sdpa[MATH]"


def test_mismatch_is_flagged(tiny_config, monkeypatch):
    def wrap(name, inputs, call):
        output = call()
        if name != "sdpa":
            return output
        return SimpleNamespace(start_logits=output.start_logits + 1, end_logits=output.end_logits)

    patch_forward(monkeypatch, wrap)
    rows = sweep.run(tiny_config("--task qa --optimization sdpa"), progress=False)
    assert rows[0]["status"] == "mismatch" and "against the float32 reference" in rows[0]["detail"]


def record_call_order(monkeypatch) -> list[str]:
    order = []

    def wrap(name, inputs, call):
        order.append(name)
        return call()

    patch_forward(monkeypatch, wrap)
    return order


def test_timed_calls_of_the_baseline_and_implementations_are_interleaved(tiny_config, monkeypatch):
    order = record_call_order(monkeypatch)
    rows = sweep.run(tiny_config("--task qa --optimization sdpa --num-batches 50 --warmup 1"), progress=False)
    assert rows[0]["num_batches"] == rows[0]["num_batches_baseline"] == 50
    runs = [len(list(group)) for _, group in itertools.groupby(order)]
    # one untimed call each (--warmup 1), which also gives its peak memory, kernels (under the
    # profiler) and output: no call after the timed ones; then five rounds of ten consecutive calls
    # visiting each model in turn
    assert runs == [1, 1, *[10] * 2 * INTERLEAVE_ROUNDS]
    assert order[0] == "eager" and order[2] == "eager"


def test_short_measurements_are_one_round_of_consecutive_calls(tiny_config, monkeypatch):
    order = record_call_order(monkeypatch)
    sweep.run(tiny_config("--task qa --optimization sdpa --num-batches 12 --warmup 0"), progress=False)
    # --warmup 0 still makes the one untimed call that reads memory, kernels and output
    assert [len(list(group)) for _, group in itertools.groupby(order)] == [1, 1, 12, 12]


def test_main_exits_non_zero_when_nothing_requested_can_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_bert.main(
            [
                "--no-use-cuda",
                "--task",
                "qa",
                "--optimization",
                "flash_attention_2",
                "--model-size",
                "tiny",
                "--num-batches",
                "1",
                "--output-dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 1
    assert "nothing requested could run" in capsys.readouterr().err
    assert read_rows(tmp_path / "qa.csv")[0]["status"] == "unavailable"


def test_main_prints_what_it_runs_and_a_table(tmp_path, capsys):
    assert (
        benchmark_bert.main(
            [
                "--no-use-cuda",
                "--task",
                "classification",
                "--optimization",
                "sdpa",
                "--num-batches",
                "2",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "running on the CPU with CPU-sized defaults" in out and "classification" in out and " ok" in out


def test_real_checkpoint_through_the_command_line(tmp_path, minilm_path):
    assert (
        benchmark_bert.main(
            [
                "--no-use-cuda",
                "--task",
                "token_classification",
                "--model",
                str(minilm_path),
                "--optimization",
                "sdpa",
                "--batch-size",
                "4",
                "--max-seqlen",
                "64",
                "--avg-seqlen",
                "40",
                "--num-batches",
                "2",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = read_rows(tmp_path / "token_classification.csv")
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["model"] == str(minilm_path)
    assert float(rows[0]["rel_err"]) < 1e-4


def test_interrupt_keeps_the_rows_already_written(tiny_config, monkeypatch):
    def wrap(name, inputs, call):
        if inputs["input_ids"].shape[0] == 4:  # Ctrl-C during the third point
            raise KeyboardInterrupt
        return call()

    patch_forward(monkeypatch, wrap)
    config = tiny_config("--task qa --sweep --batch-sizes 1 2 4 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    with pytest.raises(KeyboardInterrupt):
        sweep.run(config, progress=False)
    rows = read_rows(config.output_dir / "qa.csv")
    assert [r["batch_size"] for r in rows] == ["1", "2"] and all(r["status"] == "ok" for r in rows)


def test_packed_runs_only_varlen_implementations(tiny_config):
    rows = sweep.run(tiny_config("--task qa --packed --optimization sdpa flash_attention_2"), progress=False)
    assert [r["status"] for r in rows] == ["unavailable", "unavailable"]
    assert "no variable-length path" in rows[0]["detail"] and "CUDA" in rows[1]["detail"]
    assert all(r["packed"] for r in rows)


@pytest.mark.parametrize("task", TASKS)
def test_train_mode_times_forward_and_backward_and_checks_parity_without_dropout(tiny_config, task):
    point = "--batch-size 2 --max-seqlen 32"  # mlm's head: 30522 logits a token, each with a backward
    rows = sweep.run(tiny_config(f"--task {task} --mode train --optimization sdpa {point}"), progress=False)
    inference = sweep.run(tiny_config(f"--task {task} --optimization sdpa {point}"), progress=False)
    (row,) = rows
    assert row["status"] == "ok" and row["mode"] == "train" and row["rel_err"] < 1e-4
    assert row["gflop"] == pytest.approx(3 * inference[0]["gflop"])


def test_training_step_backpropagates_through_the_dropout_model():
    from bertbench.model.heads import load_baseline, training_step

    loaded = load_baseline("qa", "eager", "tiny", None, torch.device("cpu"), torch.float32, seed=0)
    loaded.model.train()
    batch = make_batch("qa", 2, 16, 12, 2, 1000, 2, True, 0, "cpu")
    grads = []
    loaded.model.qa_outputs.weight.register_hook(lambda grad: grads.append(grad))
    a, b = (training_step(loaded.model, loaded.forward(batch.model_inputs()))() for _ in range(2))
    assert len(grads) == 2 and grads[0].abs().sum() > 0
    assert not torch.equal(a.start_logits, b.start_logits)  # dropout is on
    assert loaded.model.qa_outputs.weight.grad is None  # each step starts bare


def test_compile_times_every_model_compiled_and_keeps_compile_time_out_of_the_latency(tiny_config):
    config = tiny_config("--task qa --batch-size 2 --max-seqlen 32 --optimization sdpa --compile")
    (row,) = sweep.run(config, progress=False)
    assert row["status"] == "ok" and row["compile"] and not row["cuda_graphs"], row["detail"]
    for column in ("latency_ms_compiled", "latency_ms_compiled_baseline", "compile_s", "compile_s_baseline"):
        assert row[column] > 0, column
    assert row["attention_kernels"] == row["attention_kernels_compiled"] == "sdpa_flash_attention_for_cpu"
    assert row.latency_ms_graph is None and row.launch_bound is None
    assert row.speedup_compiled_pct == pytest.approx(
        (row.latency_ms_compiled_baseline / row.latency_ms_compiled - 1) * 100
    )


def test_a_model_that_does_not_compile_keeps_its_row_and_says_why(tiny_config, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("backend refused")

    monkeypatch.setattr(torch, "compile", refuse)
    config = tiny_config("--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    assert len(sweep.run(config, progress=False)) == 2
    resumed = tiny_config(
        "--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa --compile --resume"
    )
    rows = sweep.run(resumed, progress=False)  # rows without compiled timings do not count as done
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "ok" and row["latency_ms"] > 0 and row.latency_ms_compiled is None
        assert "torch.compile error: compile failed: RuntimeError: backend refused" in row["detail"]
        assert "torch.compile of the baseline error" in row["detail"]


def test_gpu_time_and_the_clock_fill_their_columns(tiny_config, monkeypatch):
    """Where the device gives kernel durations and clocks (stood in here on the CPU), every row
    carries both models' GPU time, the GPU-time speedup, the busy share and the clock; where the
    record cannot be read the timings stand and the detail says why."""
    from bertbench.measure import gpu_time, variants
    from bertbench.measure.clock import ClockSample

    kernel_ms = {"eager": 4.0, "sdpa": 2.0}

    def fake_gpu_times(calls, device, count):
        assert count == 3
        return {name: gpu_time.GpuTime((kernel_ms.get(name, 4.0),) * count, (10,) * count) for name in calls}

    class Watch:
        max_mhz, reason = 1980, ""
        readings = iter([1980, 1980, 1700] * 100)

        def sample(self):
            return ClockSample(next(self.readings), 0, 1980)

        def close(self):
            pass

    monkeypatch.setattr(variants, "gpu_times", fake_gpu_times)
    monkeypatch.setattr(sweep, "for_device", lambda device: Watch())
    point = "--task qa --optimization sdpa --batch-size 2 --max-seqlen 16"
    (row,) = sweep.run(tiny_config(f"{point} --num-batches 30"))
    assert row.status == "ok", row.detail
    assert row.gpu_ms_baseline == 4.0 and row.gpu_ms == 2.0 and row.speedup_gpu_pct == pytest.approx(100.0)
    assert row.gpu_busy_pct == pytest.approx(100 * 2.0 / row.latency_ms)
    assert row.sm_clock_mhz in (1700, 1980) and row.sm_clock_mhz_baseline is not None
    assert row.throttled and row.throttle_reasons == ""  # 1700 MHz is below 90 % of 1980, no reason named

    def broken(calls, device, count):
        raise gpu_time.GpuTimeUnavailable("the profiler recorded 0 of 7 marker kernels")

    monkeypatch.setattr(variants, "gpu_times", broken)
    (row,) = sweep.run(tiny_config(point))
    assert row.status == "ok" and row.latency_ms > 0 and row.gpu_ms is None and row.speedup_gpu_pct is None
    assert "GPU time unavailable: GpuTimeUnavailable: the profiler recorded 0 of 7 marker kernels" in row.detail
