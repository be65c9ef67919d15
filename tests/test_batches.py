import torch

from bertbench.batches import IGNORE_INDEX, PAD_ID, make_batch, sample_lengths
from bertbench.models import TASKS


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
    clamped = sample_lengths(1000, 128, 128.0, 10.0, gen)
    assert clamped.max() == 128 and (clamped == 128).float().mean() > 0.4  # the upper half is clamped


def test_padding_and_mask_match_the_lengths():
    b = batch()
    positions = torch.arange(128)[None]
    real = positions < b.lengths[:, None]
    assert torch.equal(b.attention_mask.bool(), real)
    assert (b.input_ids[~real] == PAD_ID).all()
    assert (b.input_ids[real] != PAD_ID).all() and b.input_ids.max() < 1000
    assert b.real_tokens == int(real.sum())


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
