"""Parity against the float32 reference: rounding is never flagged, a wrong kernel always is."""

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from bertbench.model import heads as models
from bertbench.run import sweep


def perturbed_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA whose output lanes are shifted by one within each head: a layout bug of a kernel.

    (A wrong softmax scale is a poor test here: random-weight BERT attends almost uniformly.)"""
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return output.roll(1, dims=-1), weights


@pytest.fixture
def wrong_sdpa(monkeypatch):
    """The implementation named sdpa-math runs the perturbed attention instead."""
    AttentionInterface.register("perturbed_for_test", perturbed_attention)
    real = models.hf_implementation
    monkeypatch.setattr(models, "hf_implementation", lambda n: "perturbed_for_test" if n == "sdpa-math" else real(n))


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_a_wrong_implementation_is_caught_in_every_dtype(tiny_config, wrong_sdpa, dtype):
    rows = sweep.run(tiny_config(f"--task qa --dtype {dtype} --optimization sdpa sdpa-math"), progress=False)
    right, wrong = rows
    assert right.status == "ok" and right.ref_err <= max(2 * right.ref_err_baseline, 1e-4), right.detail
    assert wrong.status == "mismatch" and wrong.ref_err > 2 * wrong.ref_err_baseline
    assert "against the float32 reference" in wrong.detail
    if dtype == "fp32":  # the baseline is its own reference
        assert right.ref_err_baseline == 0 and right.ref_err == pytest.approx(right.rel_err)
    else:
        assert right.ref_err_baseline > 0


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_a_wrong_implementation_is_caught_on_two_logits_too(tiny_config, wrong_sdpa, dtype):
    """Classification at batch 1 compares 2 numbers, where the floor is widest."""
    grid = "--sweep --batch-sizes 1 --seqlens 32 --pad-fractions 0 0.5"
    rows = sweep.run(tiny_config(f"--task classification --dtype {dtype} --optimization sdpa sdpa-math {grid}"))
    assert [r.status for r in rows] == ["ok", "mismatch"] * 2, [r.detail for r in rows]
    assert all("over 2 values" in r.detail for r in rows if r.status == "mismatch")


def wrong_after_two_rows(module, query, key, value, attention_mask, **kwargs):
    """SDPA whose output lanes are shifted on every sequence but the batch's first two."""
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return torch.cat([output[:2], output[2:].roll(1, dims=-1)]), weights


@pytest.fixture
def reference_on_two_rows(monkeypatch):
    from bertbench.model import holder

    monkeypatch.setattr(holder, "REFERENCE_ROWS", 2)
    monkeypatch.setattr(holder, "REFERENCE_POSITIONS", 1)


@pytest.mark.parametrize("task", ["qa", "classification"])
def test_a_reference_on_the_first_rows_holds_their_values_and_the_other_rows_to_the_baseline(
    tiny_config, monkeypatch, reference_on_two_rows, task
):
    """A kernel wrong only beyond the rows the float32 reference ran on is a mismatch too, a right
    one stays ok, and the floor counts the values the reference compared."""
    AttentionInterface.register("wrong_after_two_rows_for_test", wrong_after_two_rows)
    real = models.hf_implementation
    monkeypatch.setattr(
        models, "hf_implementation", lambda n: "wrong_after_two_rows_for_test" if n == "sdpa-math" else real(n)
    )
    grid = "--sweep --batch-sizes 6 --seqlens 32 --pad-fractions 0 0.5"
    rows = sweep.run(tiny_config(f"--task {task} --dtype bf16 --optimization sdpa sdpa-math {grid}"), progress=False)
    assert [r.status for r in rows] == ["ok", "mismatch"] * 2, [r.detail for r in rows]
    for wrong in rows[1::2]:  # its first two rows are right: only the rest gives it away
        assert "against the baseline over the whole batch" in wrong.detail
        assert "against the float32 reference" not in wrong.detail
    if task == "classification":  # 2 logits on each of the reference's 2 rows
        with pytest.MonkeyPatch.context() as m:
            m.setattr(models, "hf_implementation", lambda n: "perturbed_for_test" if n == "sdpa-math" else real(n))
            AttentionInterface.register("perturbed_for_test", perturbed_attention)
            grid = "--sweep --batch-sizes 6 --seqlens 32 --pad-fractions 0.5"
            cfg = tiny_config(f"--task classification --dtype bf16 --optimization sdpa-math {grid}")
            (row,) = sweep.run(cfg, progress=False)
        assert row.status == "mismatch" and "over 4 values" in row.detail, row.detail


@pytest.mark.parametrize("size", ["tiny", "mini"])
def test_rounding_in_bf16_is_never_a_mismatch(tiny_config, size):
    """eager, sdpa and sdpa-math compute the same arithmetic as the bf16 baseline: each is as far
    from the exact result as the baseline is, which a fixed tolerance could not tell apart."""
    config = tiny_config(
        f"--task all --model-size {size} --dtype bf16 --optimization eager sdpa sdpa-math --sweep "
        "--batch-sizes 2 --seqlens 32 --pad-fractions 0 0.5 --num-batches 1 --warmup 0"
    )
    rows = sweep.run(config, progress=False)
    assert len(rows) == 4 * 2 * 3
    for row in rows:
        assert row.status == "ok", (row.task, row.attn_implementation, row.detail)
        assert 0 < row.ref_err_baseline < 0.05 and row.ref_err < 0.05


def test_without_a_reference_the_fixed_tolerance_applies_and_the_row_says_so(tiny_config, monkeypatch):
    from bertbench.model import holder

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (the float32 copy)")

    real = holder.load_like
    monkeypatch.setattr(holder, "load_like", lambda b, n, d, t: no_memory() if t == torch.float32 else real(b, n, d, t))
    (row,) = sweep.run(tiny_config("--task qa --dtype bf16 --optimization sdpa"), progress=False)
    assert row.status == "ok" and row.ref_err is None and row.rel_err < 2e-2
    assert "parity against the baseline only: no float32 reference (OutOfMemoryError" in row.detail


def test_energy_is_turned_into_joules_per_1k_real_tokens_and_power(tiny_config, monkeypatch):
    from bertbench.measure.energy import EnergyReading
    from bertbench.measure.energy_use import Energy
    from bertbench.run import point

    def fake(calls, device, mode):  # 2 J over 1.25 s for 10 calls of the baseline, 1 J for the implementation
        return {
            key: Energy(EnergyReading(2.0 if key == "(baseline)" else 1.0, 1.25, 1.6, "ok", ""), 10) for key in calls
        }

    monkeypatch.setattr(point, "measure_energy", fake)
    (row,) = sweep.run(tiny_config("--task qa --optimization sdpa --energy"), progress=False)
    assert row.joules_per_1k_tokens == pytest.approx(1.0 / 10 / row.real_tokens * 1000)
    assert row.joules_per_1k_tokens_baseline == pytest.approx(2 * row.joules_per_1k_tokens)
    assert row.power_w == row.power_w_baseline == 1.6


def test_energy_on_the_cpu_is_unavailable_and_says_why(tiny_config):
    (row,) = sweep.run(tiny_config("--task qa --optimization sdpa --energy"), progress=False)
    assert row.status == "ok" and row.joules_per_1k_tokens is None
    assert "energy unavailable: energy is read from a CUDA GPU's counter (NVML)" in row.detail


def test_the_loop_is_profiled_once_per_max_seqlen_and_mask_and_every_row_names_its_kernels(tiny_config, monkeypatch):
    from bertbench.measure import variants

    profiled = []
    real = variants.attention_kernels

    def counted(fn):
        profiled.append(fn)
        return real(fn)

    monkeypatch.setattr(variants, "attention_kernels", counted)
    grid = "--sweep --batch-sizes 1 2 3 --seqlens 16 32 --pad-fractions 0 0.5"
    rows = sweep.run(tiny_config(f"--task qa --optimization sdpa {grid}"), progress=False)
    assert len(rows) == 12 and {r.status for r in rows} == {"ok"}
    assert len(profiled) == 4  # (16, 32) x (no mask, a padding mask); batch sizes 2 and 3 reuse them
    assert {r.attention_kernels for r in rows} == {"sdpa_flash_attention_for_cpu"}  # the rows of batch 2, 3 too
