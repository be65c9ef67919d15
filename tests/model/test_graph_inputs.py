"""The dataset pass's graph inputs on the CPU: how many graphs a plan needs, the packed capacity
padding (cu_seqlens padded with the total, real tokens' outputs unchanged), and the static buffers."""

from __future__ import annotations

import pytest
import torch

from bertbench.model import strategies
from bertbench.model.batches import IGNORE_INDEX, PAD_ID, make_batch, pack
from bertbench.model.corpus import batch_of, draw_lengths, random_corpus
from bertbench.model.graph_inputs import (
    Capacity,
    NotReplayable,
    buffers,
    capacity_of,
    capacity_padded,
    fill,
    graph_key,
    packed_static,
    padded_static,
)
from bertbench.model.heads import load_baseline, load_like, per_token, task_logits
from bertbench.model.strategies import Sizes
from bertbench.spec.catalog import NUM_LABELS, TASKS

CPU = torch.device("cpu")


def corpus_batches(strategy: str, use_mask: bool = True, sequences: int = 19):
    lengths = draw_lengths(sequences, 32, 16.0, 9.0, seed=1, distribution="normal", pool=None)
    corpus = random_corpus(lengths, 100, seed=1, device=CPU)
    planned = strategies.get(strategy).plan(lengths, Sizes(4, 32, 96))
    return lengths, planned, [batch_of(corpus, p, "qa", 0, use_mask, seed=0) for p in planned]


def test_pad_max_needs_a_graph_for_its_full_batches_and_one_for_the_shorter_last():
    _, planned, batches = corpus_batches("pad-max")
    assert [len(p.indices) for p in planned] == [4, 4, 4, 4, 3]
    assert {graph_key(b) for b in batches} == {("padded", 4, 32, True), ("padded", 3, 32, True)}


@pytest.mark.parametrize("strategy", ["pad-longest", "sorted"])
def test_a_padded_strategy_needs_a_graph_per_shape_and_mask(strategy):
    lengths, planned, batches = corpus_batches(strategy)
    expected = {(len(p.indices), p.padded_length, min(lengths[i] for i in p.indices) < p.padded_length)
                for p in planned}  # fmt: skip
    keys = {graph_key(b) for b in batches}
    assert keys == {("padded", *shape) for shape in expected} and 1 < len(keys) <= len(batches)


def test_without_the_mask_a_shape_is_one_graph_whatever_its_padding():
    _, _, batches = corpus_batches("pad-max", use_mask=False)
    assert {graph_key(b) for b in batches} == {("padded", 4, 32, False), ("padded", 3, 32, False)}


def test_every_packed_batch_is_served_by_one_graph_of_one_capacity():
    _, planned, batches = corpus_batches("packed", sequences=40)
    assert len(batches) > 2 and {graph_key(b) for b in batches} == {("packed",)}
    capacity = capacity_of(batches, 96)
    assert capacity == Capacity(96, max(len(p.indices) for p in planned), max(p.padded_length for p in planned))
    for batch in batches:
        padded = capacity_padded(batch, capacity)
        total, n = batch.input_ids.shape[1], len(batch.lengths)
        assert padded.input_ids.shape == padded.position_ids.shape == (1, 96)
        assert torch.equal(padded.input_ids[0, :total], batch.input_ids[0]) and set(
            padded.input_ids[0, total:].tolist()
        ) <= {PAD_ID}
        assert padded.cu_seqlens.tolist() == batch.cu_seqlens.tolist() + [total] * (capacity.sequences - n)
        assert padded.lengths.tolist() == batch.lengths.tolist() + [0] * (capacity.sequences - n)
        assert int(padded.first_token_index.max()) < 96 and padded.max_length == capacity.max_length
        for name, value in padded.labels.items():  # qa: one per sequence, the added ones ignored
            assert value.tolist() == batch.labels[name].tolist() + [IGNORE_INDEX] * (capacity.sequences - n)
    with pytest.raises(ValueError, match="above the capacity"):
        capacity_padded(batches[0], Capacity(8, 1, 1))


@pytest.mark.parametrize("task", TASKS)
def test_padding_a_packed_batch_to_its_capacity_leaves_the_real_tokens_outputs_unchanged(fake_varlen, task):
    eager = load_baseline(task, "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = load_like(eager, "sdpa-varlen", CPU, torch.float32)
    packed = pack(make_batch(task, 5, 32, 18, 8, eager.model.config.vocab_size, NUM_LABELS[task], True, 0, "cpu"))
    total, n = packed.input_ids.shape[1], len(packed.lengths)
    padded = capacity_padded(packed, Capacity(total + 37, n + 3, packed.max_length + 4))
    with torch.inference_mode():
        want = task_logits(task, model.forward_packed(packed)())
        got = task_logits(task, model.forward_packed(padded)())
    for w, g in zip(want, got, strict=True):
        real = g[:, :total] if per_token(task) else g[:n]
        assert torch.isfinite(w).all() and torch.allclose(real, w, atol=1e-5, rtol=1e-5)
        if per_token(task):
            assert torch.isnan(g[:, total:]).all()  # the padding computed nothing a real token read


def test_a_filled_buffer_holds_the_batch_and_another_kind_of_input_is_refused():
    _, _, batches = corpus_batches("packed", sequences=40)
    capacity = capacity_of(batches, 96)
    static = packed_static(capacity_padded(batches[0], capacity))
    held = buffers(static)
    second = buffers(capacity_padded(batches[1], capacity))
    fill(held, second)
    assert torch.equal(static.input_ids, second["input_ids"]) and torch.equal(static.cu_seqlens, second["cu_seqlens"])
    assert static.input_ids.data_ptr() != second["input_ids"].data_ptr()
    with pytest.raises(NotReplayable, match="input_ids"):
        fill(held, {**second, "input_ids": second["input_ids"][:, :10]})
    with pytest.raises(NotReplayable, match="not the graph's"):
        fill(held, {"input_ids": second["input_ids"]})
    with pytest.raises(NotReplayable, match="max_length"):
        fill(held, {**second, "max_length": capacity.max_length + 1})


def test_a_padded_graphs_buffers_are_copies_and_flash_attentions_unpadding_is_refused():
    model = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, seed=0)
    batch = make_batch("qa", 3, 16, 8, 4, model.model.config.vocab_size, 0, True, 0, "cpu")
    static = padded_static(model.model, batch.model_inputs())
    assert (
        static["attention_mask"].shape == (3, 1, 16, 16)
        and static["input_ids"].data_ptr() != batch.input_ids.data_ptr()
    )
    model.model.config._attn_implementation_internal = "flash_attention_2"  # its mask: the 2-D padding mask
    with pytest.raises(NotReplayable, match="unpads each padded batch on the host"):
        padded_static(model.model, batch.model_inputs())
