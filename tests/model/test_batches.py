import torch

from bertbench.model.batches import IGNORE_INDEX, PAD_ID, make_batch, pack, sample_lengths, segments, unpack
from bertbench.spec.catalog import TASKS


def batch(task="mlm", **kw):
    args = dict(
        task=task,
        batch_size=64,
        max_seqlen=128,
        avg_seqlen=64,
        seqlen_stdev=20,
        vocab_size=1000,
        num_labels=9,
        use_mask=True,
        seed=3,
        device="cpu",
    )
    return make_batch(**{**args, **kw})


def test_lengths_follow_the_requested_distribution_and_stay_in_range():
    gen = torch.Generator().manual_seed(0)
    lengths = sample_lengths(10_000, 128, 100.0, 10.0, gen)
    assert lengths.min() >= 1 and lengths.max() <= 128
    assert abs(lengths.float().mean().item() - 100) < 0.5
    assert abs(lengths.float().std().item() - 10) < 0.5
    clamped = sample_lengths(1000, 128, 120.0, 10.0, gen)
    assert clamped.max() == 128 and (clamped == 128).float().mean() > 0.15  # the upper tail is clamped


def test_nominal_padding_zero_is_no_padding_and_no_mask():
    full = batch(avg_seqlen=128, seqlen_stdev=10)
    assert (full.lengths == 128).all() and full.attention_mask.bool().all()
    assert not full.padded and not full.mask_passed and "attention_mask" not in full.model_inputs()
    padded = batch(avg_seqlen=127, seqlen_stdev=10)
    assert padded.padded and padded.mask_passed and "attention_mask" in padded.model_inputs()


def test_padding_and_mask_match_the_lengths():
    b = batch()
    positions = torch.arange(128)[None]
    real = positions < b.lengths[:, None]
    assert torch.equal(b.attention_mask.bool(), real)
    assert (b.input_ids[~real] == PAD_ID).all()
    assert (b.input_ids[real] != PAD_ID).all() and b.input_ids.max() < 1000
    assert int(b.lengths.sum()) == int(real.sum())


def test_same_seed_same_batch_other_seed_other_batch():
    assert torch.equal(batch().input_ids, batch().input_ids)
    assert not torch.equal(batch().input_ids, batch(seed=4).input_ids)


def test_labels_per_task():
    for task in TASKS:
        b = batch(task, num_labels=2 if task == "classification" else 9)
        real = b.attention_mask.bool()
        if task == "mlm":
            assert torch.equal(b.labels["labels"][real], b.input_ids[real])
            assert (b.labels["labels"][~real] == IGNORE_INDEX).all()
        elif task == "classification":
            assert b.labels["labels"].shape == (64,) and set(b.labels["labels"].tolist()) <= {0, 1}
        elif task == "token_classification":
            assert (b.labels["labels"][~real] == IGNORE_INDEX).all()
            assert b.labels["labels"][real].min() >= 0 and b.labels["labels"][real].max() < 9
        else:
            start, end = b.labels["start_positions"], b.labels["end_positions"]
            assert (start >= 0).all() and (start <= end).all() and (end < b.lengths).all()


def test_mask_is_left_out_when_not_used():
    assert "attention_mask" in batch().model_inputs()
    assert "attention_mask" not in batch(use_mask=False).model_inputs()


def test_packing_keeps_the_real_tokens_in_order_with_offsets_and_positions():
    b = batch("qa", batch_size=5, max_seqlen=16, avg_seqlen=9, seqlen_stdev=4)
    p = pack(b)
    lengths = b.lengths.tolist()
    assert p.cu_seqlens.dtype == torch.int32
    assert p.cu_seqlens.tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert p.max_length == max(lengths) and p.input_ids.shape == (1, sum(lengths))
    for i, n in enumerate(lengths):
        start = p.cu_seqlens[i]
        assert torch.equal(p.input_ids[0, start : start + n], b.input_ids[i, :n])
        assert p.position_ids[0, start : start + n].tolist() == list(range(n))
        assert p.first_token_index[i] == start and p.input_ids[0, start] == b.input_ids[i, 0]
    # per-sequence segments of the packed row line up with the padded rows
    assert torch.equal(segments(p.input_ids, p, PAD_ID), b.input_ids[:, : p.max_length])
    assert torch.equal(p.labels["start_positions"], b.labels["start_positions"])
    assert "attention_mask" not in p.model_inputs() and p.model_inputs()["cu_seq_lens_q"] is p.cu_seqlens


def test_packed_labels_and_unpack_round_trip():
    b = batch("token_classification")
    p = pack(b)
    real = b.attention_mask.bool()
    assert torch.equal(p.labels["labels"][0], b.labels["labels"][real])
    values = torch.randn(1, p.input_ids.shape[1], 3)
    padded = unpack(values, real)
    assert padded.shape == (64, 128, 3) and (padded[~real] == 0).all()
    assert torch.equal(padded[real], values[0])
    assert torch.equal(
        pack(batch("classification", num_labels=2)).labels["labels"],
        batch("classification", num_labels=2).labels["labels"],
    )
