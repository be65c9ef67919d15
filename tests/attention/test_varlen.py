"""sdpa-varlen on the CPU: the real varlen_attn has no CPU kernel, so a fake that attends each
segment with plain torch stands in, and the reshaping around it is checked against eager BERT."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from bertbench.attention import varlen
from bertbench.attention.registry import names, packed_names
from bertbench.measure.failures import Failure
from bertbench.measure.probes import agreement
from bertbench.model.batches import make_batch, pack, unpack
from bertbench.model.heads import (
    hf_implementation,
    load_baseline,
    load_like,
    per_token,
    task_logits,
    unavailable_reason,
)
from bertbench.spec.catalog import NUM_LABELS, TASKS

IMPLEMENTATIONS, VARLEN = names(), packed_names()  # the registry's names, and those with a packed route

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


class FakeVarlen:
    """varlen_attn's contract, computed per segment with SDPA; it records what each call got.
    A window_size (left, right) lets query i see keys i - left .. i + right, as flash's does."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1)):
        assert query.dim() == 3 and query.shape == key.shape == value.shape  # (tokens, heads, head_dim)
        assert cu_seq_q.dtype == torch.int32 and cu_seq_k.dtype == torch.int32
        assert isinstance(max_q, int) and isinstance(max_k, int)
        assert int(cu_seq_q[-1]) == query.shape[0]
        call = {"cu_q": cu_seq_q, "cu_k": cu_seq_k, "max_q": max_q, "scale": scale, "q": query.shape}
        self.calls.append({**call, "window": window_size})
        out = torch.empty_like(query)
        bounds = cu_seq_q.tolist()
        for start, end in itertools.pairwise(bounds):
            assert end - start <= max_q
            q, k, v = (t[start:end].transpose(0, 1) for t in (query, key, value))
            mask = None
            if window_size != (-1, -1):
                offset = torch.arange(end - start)[None, :] - torch.arange(end - start)[:, None]  # key - query
                mask = (offset >= -window_size[0]) & (offset <= window_size[1])
            out[start:end] = scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale).transpose(0, 1)
        return out


@pytest.fixture
def fake(monkeypatch) -> FakeVarlen:
    """The fake kernel, taking float32 too so that parity can be held to fp32 tolerances."""
    kernel = FakeVarlen()
    monkeypatch.setattr(varlen, "varlen_kernel", lambda: kernel)
    monkeypatch.setattr(varlen, "KERNEL_DTYPES", (torch.float16, torch.bfloat16, torch.float32))
    return kernel


def assert_packed_matches(eager, model, batch, task: str) -> None:
    """The packed call's logits, laid out as the padded batch, match eager's on the padded batch."""
    with torch.inference_mode():
        want = eager.forward(batch.model_inputs())()
        got = model.forward_packed(pack(batch))()
    real = batch.attention_mask.bool()
    logits = task_logits(task, got)
    if per_token(task):
        logits = [unpack(values, real) for values in logits]
    max_abs, rel = agreement(logits, task_logits(task, want), real if per_token(task) else None)
    assert rel < 1e-4 and max_abs < 1e-4


def test_sdpa_varlen_is_a_named_implementation_with_a_packed_path():
    assert "sdpa-varlen" in IMPLEMENTATIONS and "sdpa-varlen" in VARLEN
    assert hf_implementation("sdpa-varlen") == "sdpa_varlen"


def test_on_the_cpu_it_is_unavailable_with_a_reason():
    reason = unavailable_reason("sdpa-varlen", CPU)
    assert reason is not None and "CUDA" in reason
    assert unavailable_reason("sdpa-varlen", CPU, torch.bfloat16) == reason


def test_the_real_varlen_attn_has_no_cpu_kernel():
    """Why the CPU is unavailable; should a PyTorch release add a CPU kernel, this fails and the
    reason in varlen.unavailable_reason should go."""
    kernel = varlen.varlen_kernel()
    if kernel is None:
        pytest.skip(f"torch {torch.__version__} has no varlen_attn")
    q = torch.randn(6, 2, 16, dtype=torch.bfloat16)
    cu = torch.tensor([0, 2, 6], dtype=torch.int32)
    with pytest.raises(NotImplementedError, match="CPU"):
        kernel(q, q, q, cu, cu, 4, 4)


def test_without_varlen_attn_it_is_unavailable(monkeypatch):
    monkeypatch.setattr(varlen, "varlen_kernel", lambda: None)
    reason = unavailable_reason("sdpa-varlen", CUDA)
    assert "varlen_attn" in reason and torch.__version__ in reason


@pytest.mark.parametrize(
    ("flash", "capability", "dtype", "expected"),
    [
        (True, (9, 0), torch.bfloat16, None),
        (True, (8, 0), torch.float16, None),
        (True, (9, 0), None, None),
        (True, (9, 0), torch.float32, "float32"),
        (True, (7, 5), torch.bfloat16, "sm_75"),
        (False, (9, 0), torch.bfloat16, "no FlashAttention"),
    ],
)
def test_on_a_gpu_it_needs_flash_sm80_and_half_precision(monkeypatch, flash, capability, dtype, expected):
    monkeypatch.setattr(torch.backends.cuda, "is_flash_attention_available", lambda: flash)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    reason = varlen.unavailable_reason(CUDA, dtype)
    assert reason is None if expected is None else expected in reason


@pytest.mark.parametrize("task", TASKS)
def test_packed_sdpa_varlen_agrees_with_padded_eager(fake, task):
    eager = load_baseline(task, "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    assert model.runs == "sdpa_varlen"
    batch = make_batch(task, 5, 32, 18, 8, eager.model.config.vocab_size, NUM_LABELS[task], True, 0, "cpu")
    assert_packed_matches(eager, model, batch, task)
    layers = eager.model.config.num_hidden_layers
    assert len(fake.calls) == layers  # the real varlen kernel ran, once per layer


def test_packed_cu_seqlens_reach_every_layer_as_given_and_no_mask_is_passed(fake, monkeypatch):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = load_baseline("mlm", "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    masks = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        masks.append(attention_mask)
        return varlen.sdpa_varlen_attention(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "sdpa_varlen", spy)
    packed = pack(make_batch("mlm", 4, 24, 14, 6, 1000, 0, True, 1, "cpu"))
    with torch.inference_mode():
        model.forward_packed(packed)()
    assert masks == [None, None]  # packed inputs carry no mask, and transformers builds none
    for call in fake.calls:
        assert call["cu_q"] is packed.cu_seqlens and call["cu_k"] is packed.cu_seqlens  # not rebuilt per layer
        assert call["max_q"] == packed.max_length
        assert call["q"] == (packed.input_ids.shape[1], 2, 64)
        assert call["scale"] == pytest.approx(64**-0.5)
        assert call["window"] == (-1, -1)  # BERT's layers are global: no window reaches the kernel


@pytest.mark.parametrize("use_mask", [True, False])
def test_padded_batches_are_unpadded_in_each_layer_and_agree_with_eager(fake, use_mask):
    """Not packed: the 2D padding mask (flash_attention_mask) is unpadded per layer; with no mask
    every row is one sequence of the full length, as eager attends it."""
    eager = load_baseline("token_classification", "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    batch = make_batch("token_classification", 4, 20, 12, 5, 1000, 9, use_mask, 2, "cpu")
    with torch.inference_mode():
        want, got = eager.forward(batch.model_inputs())(), model.forward(batch.model_inputs())()
    real = batch.attention_mask.bool()
    max_abs, rel = agreement([got.logits], [want.logits], real)
    assert rel < 1e-4 and max_abs < 1e-4
    expected_tokens = int(batch.lengths.sum()) if use_mask else 4 * 20
    assert all(call["q"][0] == expected_tokens for call in fake.calls)


def test_a_full_batch_with_a_mask_takes_the_unmasked_path(fake):
    eager = load_baseline("mlm", "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    batch = make_batch("mlm", 3, 16, 16, 0, 1000, 0, True, 0, "cpu")
    with torch.inference_mode():
        model.forward(batch.model_inputs())()
    assert fake.calls[0]["cu_q"].tolist() == [0, 16, 32, 48]


def test_dropout_is_refused_as_unavailable(fake):
    eager = load_baseline("mlm", "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    model.model.train()  # BERT's attention dropout is 0.1 in training
    packed = pack(make_batch("mlm", 2, 16, 10, 2, 1000, 0, True, 0, "cpu"))
    with pytest.raises(varlen.DropoutUnsupported) as error:
        model.forward_packed(packed)()
    assert Failure.of(error.value).status == "unavailable"


def test_float32_on_the_real_kernel_is_refused_as_unavailable(monkeypatch):
    monkeypatch.setattr(varlen, "varlen_kernel", lambda: FakeVarlen())  # the real dtype list: halves only
    q = torch.randn(1, 2, 5, 16)
    cu = torch.tensor([0, 5], dtype=torch.int32)
    with pytest.raises(varlen.NoKernel) as error:
        varlen.sdpa_varlen_attention(None, q, q, q, None, cu_seq_lens_q=cu, max_length_q=5)
    assert Failure.of(error.value).status == "unavailable" and "float32" in str(error.value)


def test_a_kernel_without_scale_gets_a_non_default_scale_folded_into_the_query(fake, monkeypatch):
    """torch 2.10's varlen_attn took no scale: BERT's default 1/sqrt(d) needs none, another is folded in."""
    seen = []

    def old_kernel(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k):
        seen.append(query)
        return FakeVarlen()(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k)

    monkeypatch.setattr(varlen, "varlen_kernel", lambda: old_kernel)
    q, k, v = torch.randn(3, 1, 2, 6, 8)
    cu = torch.tensor([0, 2, 6], dtype=torch.int32)
    out, weights = varlen.sdpa_varlen_attention(
        None, q, k, v, None, scaling=0.5, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=4, max_length_k=4
    )
    assert weights is None and out.shape == (1, 6, 2, 8)
    want = FakeVarlen()(q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1), cu, cu, 4, 4, scale=0.5)
    torch.testing.assert_close(out[0], want)
    torch.testing.assert_close(seen[0], q[0].transpose(0, 1) * (0.5 * 8**0.5))


needs_gpu = pytest.mark.skipif(
    not torch.cuda.is_available() or varlen.unavailable_reason(CUDA, torch.bfloat16) is not None,
    reason="needs a CUDA GPU where varlen_attn runs",
)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("task", TASKS)
def test_on_the_gpu_packed_sdpa_varlen_agrees_with_padded_eager(task, dtype):
    """The real kernel: the same weights, the packed forward against the padded eager one."""
    from bertbench.measure.probes import tolerance

    eager = load_baseline(task, "eager", "base", None, CUDA, dtype, seed=0)
    model = load_like(eager, "sdpa-varlen", CUDA, dtype)
    batch = make_batch(task, 8, 128, 64, 30, eager.model.config.vocab_size, NUM_LABELS[task], True, 0, CUDA)
    with torch.inference_mode():
        want = eager.forward(batch.model_inputs())()
        got = model.forward_packed(pack(batch))()
        padded = model.forward(batch.model_inputs())()  # unpadded in each layer
    real = batch.attention_mask.bool()
    logits = task_logits(task, got)
    if per_token(task):
        logits = [unpack(values, real) for values in logits]
    keep = real if per_token(task) else None
    _, rel = agreement(logits, task_logits(task, want), keep)
    _, rel_padded = agreement(task_logits(task, padded), task_logits(task, want), keep)
    assert rel < tolerance(dtype) and rel_padded < tolerance(dtype), (rel, rel_padded)


@needs_gpu
@pytest.mark.gpu
def test_on_the_gpu_a_training_step_runs_without_dropout_and_is_refused_with_it():
    from bertbench.model.heads import training_step

    eager = load_baseline("mlm", "eager", "mini", None, CUDA, torch.bfloat16, seed=0)
    model = load_like(eager, "sdpa-varlen", CUDA, torch.bfloat16)
    packed = pack(make_batch("mlm", 4, 64, 40, 10, 1000, 0, True, 0, CUDA))
    model.model.train()
    with pytest.raises(varlen.DropoutUnsupported):
        training_step(model.model, model.forward_packed(packed))()
    for layer in model.model.bert.encoder.layer:
        layer.attention.self.dropout.p = 0.0
    output = training_step(model.model, model.forward_packed(packed))()
    assert torch.isfinite(output.loss)


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra", "modernbert"])
@pytest.mark.parametrize("task", TASKS)
def test_each_family_packed_agrees_with_its_padded_eager(fake, family, task):
    """The packed route with each family's inputs: RoBERTa's position ids after its pad id, no
    token_type_ids for DistilBERT and ModernBERT, ModernBERT's local layers as a window."""
    from bertbench.model.families import pad_id

    eager = load_baseline(task, "eager", f"{family}-tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    config = eager.model.config
    batch = make_batch(task, 3, 96, 72, 16, config.vocab_size, NUM_LABELS[task], True, 0, "cpu", pad_id=pad_id(config))
    assert_packed_matches(eager, model, batch, task)
    windows = [call["window"] for call in fake.calls]
    local = [kind == "sliding_attention" for kind in getattr(config, "layer_types", None) or []]
    assert windows == [(64, 64) if is_local else (-1, -1) for is_local in local] or not local
    assert len(windows) == config.num_hidden_layers
