"""The model holder's float32 reference: the batch's first rows, cut after their longest sequence."""

from __future__ import annotations

import pytest
import torch

from bertbench.model import holder
from bertbench.model.heads import per_token, task_logits
from bertbench.model.holder import TaskModels
from bertbench.spec.catalog import TASKS
from bertbench.spec.config import GridPoint

FAMILIES = ["tiny", "roberta-tiny", "distilbert-tiny", "electra-tiny", "modernbert-tiny"]


def _reference_widths(models: TaskModels) -> list[int]:
    """The sequence axis of every batch the float32 reference is called on."""
    widths: list[int] = []
    models.reference.model.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    return widths


@pytest.mark.parametrize(
    ("task", "size"), [(task, "tiny") for task in TASKS] + [("mlm", size) for size in FAMILIES[1:]]
)
def test_the_reference_runs_on_the_batch_cut_after_its_longest_sequence_and_gives_its_logits(tiny_config, task, size):
    config = tiny_config(f"--task {task} --dtype bf16 --model-size {size} --seqlen-stdev 4")
    models = TaskModels(task, config)
    widths = _reference_widths(models)
    inputs = models.inputs(GridPoint(4, 64, 24.0), [])
    batch = inputs.batch
    longest = int(batch.lengths.max())
    assert batch.mask_passed and longest < 40
    with torch.inference_mode():
        cut = inputs.reference()
        whole = [t.float() for t in task_logits(task, models.reference.forward(batch.model_inputs())())]
    assert widths[0] == longest and widths[1] == 64  # the cut call, then the whole batch above
    real = batch.attention_mask.bool()
    for c, w in zip(cut, whole, strict=True):
        assert c.dtype == torch.float32 and c.shape == w.shape
        if per_token(task):
            assert torch.allclose(c[real], w[real], rtol=1e-4, atol=1e-5)
            assert not c[:, longest:].any()  # the cut columns are zeros; parity compares real tokens only
        else:
            assert torch.allclose(c, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flags", ["--no-use-mask", ""])
def test_without_a_padding_mask_the_reference_runs_the_whole_batch(tiny_config, flags):
    """Unmasked padding is attended to: cutting it would change the real tokens' logits."""
    config = tiny_config(f"--task qa --dtype bf16 {flags}")
    models = TaskModels("qa", config)
    widths = _reference_widths(models)
    avg = 24.0 if flags else 64.0  # unmasked padding, or none
    inputs = models.inputs(GridPoint(4, 64, avg), [])
    assert not inputs.batch.mask_passed
    with torch.inference_mode():
        logits = inputs.reference()
    assert widths == [64] and logits[0].shape == (4, 64)


@pytest.mark.parametrize(
    ("batch", "width", "rows"),
    [(1, 512, 1), (8, 512, 8), (128, 512, 16), (32, 512, 16), (128, 256, 32), (128, 128, 64)],
)
def test_the_reference_runs_on_as_many_first_rows_as_fill_its_positions_and_never_fewer_than_16(batch, width, rows):
    assert holder.reference_rows(batch, width) == rows


@pytest.mark.parametrize("task", TASKS)
def test_on_a_large_batch_the_reference_runs_on_its_first_rows_and_gives_their_logits(tiny_config, monkeypatch, task):
    monkeypatch.setattr(holder, "REFERENCE_ROWS", 2)
    monkeypatch.setattr(holder, "REFERENCE_POSITIONS", 1)
    config = tiny_config(f"--task {task} --dtype bf16 --seqlen-stdev 8")
    models = TaskModels(task, config)
    widths = _reference_widths(models)
    inputs = models.inputs(GridPoint(6, 64, 24.0), [])
    batch = inputs.batch
    longest = int(batch.lengths[:2].max())
    assert batch.mask_passed and longest < 64
    with torch.inference_mode():
        first = inputs.reference()
        whole = [t.float() for t in task_logits(task, models.reference.forward(batch.model_inputs())())]
    assert widths[0] == longest  # cut after the longest of the first rows
    real = batch.attention_mask.bool()[:2]
    for f, w in zip(first, whole, strict=True):
        assert f.shape == (2, *w.shape[1:])
        if per_token(task):
            assert torch.allclose(f[real], w[:2][real], rtol=1e-4, atol=1e-5)
        else:
            assert torch.allclose(f, w[:2], rtol=1e-4, atol=1e-5)
