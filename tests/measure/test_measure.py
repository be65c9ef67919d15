import math
import time

import pytest
import torch

from bertbench.measure.probes import (
    agreement,
    attention_kernels,
    compared_values,
    forward_flops,
    matmul_tflops,
    reference_limit,
    run_with_peak_memory,
    tolerance,
)
from bertbench.model.batches import make_batch
from bertbench.model.heads import load_baseline, load_like, preset_config


@pytest.mark.parametrize("slice_values", [8 * 5 * 3, 2**24])  # slices of 8 rows; all 20 rows at once
def test_agreement_is_the_same_however_the_rows_are_sliced(monkeypatch, slice_values):
    monkeypatch.setattr("bertbench.measure.probes.SLICE_VALUES", slice_values)
    generator = torch.Generator().manual_seed(0)
    ref = torch.randn(20, 5, 3, generator=generator)
    out = ref + 0.01 * torch.randn(20, 5, 3, generator=generator)
    out[7, 2, 1] += 1.0  # the largest error, in the first slice of 8 rows
    real = torch.rand(20, 5, generator=generator) > 0.3
    keep = real[..., None]
    diff = (out - ref) * keep
    max_abs, rel = agreement([out.half()], [ref], real)
    exact_max, exact_rel = agreement([out], [ref], real)
    assert exact_max == pytest.approx(float(diff.abs().max()), rel=1e-6)
    assert exact_rel == pytest.approx(float(diff.norm() / (ref * keep).norm()), rel=1e-5)
    assert max_abs == pytest.approx(exact_max, rel=1e-2) and rel == pytest.approx(exact_rel, rel=1e-2)


def test_agreement_ignores_padding_and_measures_relative_error():
    ref = torch.ones(2, 4, 3)
    out = ref.clone()
    out[:, 3] = 100.0  # padding: must not count
    out[0, 0, 0] = 1.5
    real = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]]).bool()
    max_abs, rel = agreement([out], [ref], real)
    assert max_abs == 0.5
    assert math.isclose(rel, 0.5 / math.sqrt(18), rel_tol=1e-6)
    assert agreement([ref], [ref], None) == (0.0, 0.0)
    assert tolerance(torch.float32) < tolerance(torch.float16) == tolerance(torch.bfloat16)
    assert compared_values([out], real) == 6 * 3 and compared_values([out, out], None) == 2 * 24


def test_the_parity_floor_widens_only_for_a_handful_of_values():
    fp16 = torch.float16
    assert reference_limit(0.0, fp16, 8) == reference_limit(0.0, fp16, 10**6) == 2e-3
    assert reference_limit(0.0, fp16, 2) == 4e-3  # classification, batch 1: 2 logits
    assert reference_limit(0.0, fp16, 4) == 2e-3 * math.sqrt(2)
    assert reference_limit(0.01, fp16, 2) == 0.02  # twice the baseline's error where that is more


def test_flops_against_a_hand_count():
    config = preset_config("qa", "tiny")  # 2 layers, hidden 128, intermediate 512
    h, i, layers = 128, 512, 2
    lengths = [10, 20]
    tokens = 30
    linear = 2 * tokens * (4 * h * h + 2 * h * i)
    attention = 4 * h * (10**2 + 20**2)
    head = 2 * tokens * h * 2
    assert forward_flops(config, "qa", lengths) == layers * (linear + attention) + head
    padded = layers * (2 * 64 * (4 * h * h + 2 * h * i) + 2 * 4 * h * 32**2) + 2 * 64 * h * 2
    assert forward_flops(config, "qa", lengths, seqlen=32) == padded
    mlm = preset_config("mlm", "tiny")
    assert forward_flops(mlm, "mlm", lengths) - forward_flops(config, "qa", lengths) == (
        2 * tokens * (h * h + h * mlm.vocab_size) - head
    )
    cls = preset_config("classification", "tiny")
    assert forward_flops(cls, "classification", lengths) == layers * (linear + attention) + 2 * 2 * (h * h + h * 2)


def test_matmul_rate_is_positive_and_its_probe_fits_the_device():
    assert matmul_tflops(torch.device("cpu"), torch.float32) > 0
    start = time.perf_counter()  # fp16 on the CPU: an 8192 product would take minutes
    assert matmul_tflops(torch.device("cpu"), torch.float16) > 0
    assert time.perf_counter() - start < 30


def test_peak_memory_is_not_measured_on_the_cpu():
    output, memory = run_with_peak_memory(lambda: 7, torch.device("cpu"))
    assert output == 7 and math.isnan(memory.allocated_mb) and math.isnan(memory.reserved_mb)


def test_attention_kernels_name_the_operator_that_really_ran(capfd):
    """The profiler sees what SDPA dispatched to, whatever was asked; eager runs no fused operator."""
    cpu = torch.device("cpu")
    eager = load_baseline("qa", "eager", "tiny", None, cpu, torch.float32, 0)
    batch = make_batch("qa", 2, 32, 24, 4, eager.model.config.vocab_size, 2, True, 0, cpu)
    seen = {}
    with torch.inference_mode():
        for model in (
            eager,
            load_like(eager, "sdpa", cpu, torch.float32),
            load_like(eager, "sdpa-math", cpu, torch.float32),
        ):
            output, seen[model.name] = attention_kernels(model.forward(batch.model_inputs()))
            assert output.start_logits.shape == (2, 32)
    assert seen == {"eager": "none", "sdpa": "sdpa_flash_attention_for_cpu", "sdpa-math": "sdpa_attention_math"}
    assert "profiler" not in capfd.readouterr().err  # the profiler's own start/stop lines are silenced


def test_kernel_names_fall_in_their_class():
    from bertbench.measure.probes import kernel_class

    flash = "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, cutlass::half_t>>"
    assert kernel_class(flash) == "attention"  # cutlass in its template arguments, attention all the same
    assert kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3") == "attention"
    softmax = "void (anonymous namespace)::softmax_warp_forward<c10::Half, c10::Half, float, 9>"  # eager's
    assert kernel_class(softmax) == "attention"
    assert kernel_class("sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1") == "gemm"
    assert kernel_class("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NNT") == "gemm"
    assert kernel_class("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>") == "other"
    assert kernel_class("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::Half>") == "other"


def test_flops_of_the_other_families_count_their_own_layers():
    """DistilBERT's feed-forward is hidden_dim wide; ModernBERT's gated one has three H x I products,
    and its local layers attend within their window (|i - j| <= 64), not every pair."""
    lengths = [10, 100]
    distil = preset_config("qa", "distilbert-tiny")  # 2 layers, dim 128, hidden_dim 512
    bert = preset_config("qa", "tiny")  # the same shape
    assert forward_flops(distil, "qa", lengths) == forward_flops(bert, "qa", lengths)
    modern = preset_config("qa", "modernbert-tiny")  # 3 layers (global, local, local), 128, intermediate 192
    h, i, tokens = 128, 192, 110
    linear = 2 * tokens * (4 * h * h + 3 * h * i)
    full = 4 * h * (10**2 + 100**2)
    local = 4 * h * (10**2 + sum(min(q + 64, 99) - max(q - 64, 0) + 1 for q in range(100)))
    assert forward_flops(modern, "qa", lengths) == 3 * linear + full + 2 * local + 2 * tokens * h * 2
