from types import SimpleNamespace

import pytest
import torch

from bertbench.measure.probes import agreement
from bertbench.model.batches import make_batch
from bertbench.model.heads import (
    TASK_HEADS,
    LoadedModel,
    load_baseline,
    load_like,
    per_token,
    task_logits,
    unavailable_reason,
)
from bertbench.spec.catalog import NUM_LABELS, PRESETS, TASKS

CPU = torch.device("cpu")


@pytest.mark.parametrize("task", TASKS)
def test_each_task_head_runs_eager_and_sdpa_with_the_same_weights_and_agrees(task):
    eager = load_baseline(task, "eager", "tiny", None, CPU, torch.float32, seed=0)
    sdpa = load_like(eager, "sdpa", CPU, torch.float32)
    assert isinstance(eager.model, TASK_HEADS[task])
    assert eager.runs == "eager" and sdpa.runs == "sdpa"
    assert eager.model.config is not sdpa.model.config  # a shared config would run one attention for both
    layers, hidden, _heads = PRESETS["tiny"]
    assert (eager.model.config.num_hidden_layers, eager.model.config.hidden_size) == (layers, hidden)
    for (name, a), b in zip(eager.model.state_dict().items(), sdpa.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # built without random weights: the buffers no state dict carries are set too (position ids)
    for (name, a), (_, b) in zip(eager.model.named_buffers(), sdpa.model.named_buffers(), strict=True):
        assert torch.equal(a, b), name
    batch = make_batch(task, 4, 32, 20, 8, eager.model.config.vocab_size, NUM_LABELS[task], True, 0, "cpu")
    with torch.inference_mode():
        out_e = eager.forward(batch.model_inputs())()
        out_s = sdpa.forward(batch.model_inputs())()
    assert out_e.loss is not None and torch.isfinite(out_e.loss)  # labels were passed: the loss is timed too
    real = batch.attention_mask.bool() if per_token(task) else None
    max_abs, rel = agreement(task_logits(task, out_s), task_logits(task, out_e), real)
    assert rel < 1e-5 and max_abs < 1e-4


def test_pinned_sdpa_backend_really_is_pinned():
    eager = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, seed=0)
    math_only = load_like(eager, "sdpa-math", CPU, torch.float32)
    batch = make_batch("qa", 2, 16, 16, 0, 1000, 2, True, 0, "cpu")
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        from torch.backends.cuda import math_sdp_enabled, mem_efficient_sdp_enabled

        calls.append((math_sdp_enabled(), mem_efficient_sdp_enabled()))
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
        with torch.inference_mode():
            math_only.forward(batch.model_inputs())()
    assert calls and all(calls_ == (True, False) for calls_ in calls)


def test_different_seeds_give_different_weights():
    a = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, seed=0).model.state_dict()
    b = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, seed=1).model.state_dict()
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(a[key], b[key])


def test_flash_implementations_are_unavailable_without_a_gpu():
    assert "CUDA" in unavailable_reason("flash_attention_2", CPU)
    assert "CUDA" in unavailable_reason("flash_attention_3", CPU)
    assert unavailable_reason("sdpa", CPU) is None and unavailable_reason("eager", CPU) is None


def test_real_checkpoint_loads_with_its_weights_in_every_implementation(minilm_path):
    """all-MiniLM-L6-v2 is a real BertModel: encoder weights come from the file, the QA head is new."""
    from safetensors.torch import load_file

    eager = load_baseline("qa", "eager", "tiny", str(minilm_path), CPU, torch.float32, seed=0)
    sdpa = load_like(eager, "sdpa", CPU, torch.float32)
    stored = load_file(minilm_path / "model.safetensors")
    key = next(k for k in stored if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert torch.equal(sdpa.model.bert.encoder.layer[0].attention.self.query.weight, stored[key])
    assert torch.equal(eager.model.qa_outputs.weight, sdpa.model.qa_outputs.weight)


def test_packed_classification_pools_each_sequences_first_token(monkeypatch):
    """The gather at cu_seqlens[:-1] must feed sequence i's first hidden state to its pooler row."""
    from bertbench.model.batches import pack

    loaded = load_baseline("classification", "eager", "tiny", None, CPU, torch.float32, seed=0)
    head = loaded.model
    packed = pack(make_batch("classification", 3, 12, 8, 3, 1000, 2, True, 0, "cpu"))
    hidden = torch.randn(1, packed.input_ids.shape[1], 128)
    monkeypatch.setattr(head, "bert", StubEncoder(hidden, head.bert.pooler))
    with torch.inference_mode():
        output = loaded.forward_packed(packed)()
        firsts = torch.stack([hidden[0, int(start)] for start in packed.cu_seqlens[:-1]])
        expected = head.classifier(head.bert.pooler(firsts[:, None]))
    assert torch.allclose(output.logits, expected)
    assert torch.isfinite(output.loss)


class StubEncoder(torch.nn.Module):
    """Stands in for BertModel: returns fixed packed hidden states for a packed varlen call."""

    def __init__(self, hidden: torch.Tensor, pooler: torch.nn.Module):
        super().__init__()
        self.hidden, self.pooler = hidden, pooler

    def forward(self, **inputs):
        assert inputs["input_ids"].shape == self.hidden.shape[:2] and "cu_seq_lens_q" in inputs
        return SimpleNamespace(last_hidden_state=self.hidden)


def test_packed_qa_loss_is_a_softmax_over_each_sequences_own_tokens(monkeypatch):
    from bertbench.model.batches import pack

    loaded = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, seed=0)
    batch = make_batch("qa", 4, 16, 10, 4, 1000, 2, True, 0, "cpu")
    packed = pack(batch)
    start, end = torch.randn(2, 1, packed.input_ids.shape[1])
    monkeypatch.setattr(loaded.model, "forward", lambda **inputs: SimpleNamespace(start_logits=start, end_logits=end))
    output = loaded.forward_packed(packed)()
    expected = 0.0
    for logits, positions in ((start, batch.labels["start_positions"]), (end, batch.labels["end_positions"])):
        for i, (offset, length) in enumerate(zip(packed.cu_seqlens[:-1], batch.lengths, strict=True)):
            own = logits[0, offset : offset + length]
            expected += -torch.log_softmax(own, 0)[positions[i]] / len(batch.lengths) / 2
    assert torch.allclose(output.loss, expected)


def test_flex_attention_runs_compiled_for_dynamic_shapes_and_nothing_else_does():
    """transformers compiles flex_attention on first use; for static shapes it recompiled at
    every batch size, seqlen and mask kind (7-10 s a point on the H100)."""
    seen = {}

    def model(name):
        def record(**inputs):
            seen[name] = (torch._dynamo.config.assume_static_by_default, torch._dynamo.config.recompile_limit)

        return record

    before = (torch._dynamo.config.assume_static_by_default, torch._dynamo.config.recompile_limit)
    for name in ("flex_attention", "sdpa", "eager"):
        LoadedModel(name, model(name)).forward({})()
    assert seen["flex_attention"] == (False, 64)
    assert seen["sdpa"] == seen["eager"] == before == (torch._dynamo.config.assume_static_by_default,
                                                        torch._dynamo.config.recompile_limit)  # fmt: skip
