import pytest
import torch
from transformers import masking_utils
from transformers import modeling_flash_attention_utils as flash_utils
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, create_bidirectional_mask

from bertbench.model import capture
from bertbench.model.batches import make_batch
from bertbench.model.capture import UnpadData, capture_paths, graph_ready, prepared_inputs
from bertbench.model.heads import load_baseline, load_like

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models():
    eager = load_baseline("qa", "eager", "tiny", None, CPU, torch.float32, 0)
    return eager, load_like(eager, "sdpa", CPU, torch.float32)


def _batches(vocab_size: int):
    padded = make_batch("qa", 3, 32, 20, 6, vocab_size, 2, True, 0, CPU)
    full = make_batch("qa", 3, 32, 32, 0, vocab_size, 2, True, 0, CPU)
    assert padded.mask_passed and not full.mask_passed  # nothing padded: no mask is passed
    return padded.model_inputs(), full.model_inputs()


def test_a_prepared_mask_gives_the_same_logits_and_takes_the_uncaptured_path(models):
    """What --cuda-graphs captures for a padded batch: the forward after the model's own mask."""
    padded, full = _batches(models[0].model.config.vocab_size)
    with torch.inference_mode():
        for model in models:
            prepared = prepared_inputs(model.model, padded)
            assert prepared["attention_mask"].dim() == 4 and padded["attention_mask"].dim() == 2
            want, got = model.forward(padded)(), model.forward(prepared)()
            torch.testing.assert_close(got.start_logits, want.start_logits)
            torch.testing.assert_close(got.loss, want.loss)
            assert prepared_inputs(model.model, full) is full  # no padding mask: nothing to build


def test_a_graph_ready_call_runs_what_the_loop_runs(models):
    padded, full = _batches(models[0].model.config.vocab_size)
    with torch.inference_mode():
        for model in models:
            for inputs in (padded, full):
                want = model.forward(inputs)()
                got = graph_ready(model.model, model.forward, inputs)()
                torch.testing.assert_close(got.start_logits, want.start_logits)
                torch.testing.assert_close(got.loss, want.loss)


def test_while_capturing_the_mask_with_no_padding_is_skipped_as_outside_a_capture(monkeypatch, models):
    """transformers 5.17 builds a full mask for a batch with nothing padded while a stream
    captures (sdpa then replays its math kernel, eager adds a mask its loop never adds)."""
    monkeypatch.setattr(masking_utils, "is_tracing", lambda *args: True)  # as under a capture
    config = models[1].model.config
    embeds = torch.empty(3, 32, config.hidden_size)
    padding = torch.ones(3, 32, dtype=torch.long)
    padding[0, 20:] = 0
    with capture_paths():
        assert masking_utils._ignore_bidirectional_mask_sdpa is capture._skip_without_padding
        assert create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=None) is None
        masked = create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=padding)
        assert masked is not None and not bool(masked[0, 0, 0, 25])  # a padding mask is still applied
        assert capture._skip_without_padding(None, 32, local_attention_size=16) is False  # local attention: kept
    assert masking_utils._ignore_bidirectional_mask_sdpa is capture._ORIGINAL_SKIP


def _padding_mask() -> torch.Tensor:
    lengths = torch.tensor([5, 8, 3])
    return torch.arange(8)[None] < lengths[:, None]


def test_flash_attentions_unpadding_is_computed_once_and_given_to_every_layer():
    mask = _padding_mask()
    unpad = UnpadData.of(mask)
    indices, cu_seqlens, max_seqlen = capture._ORIGINAL_UNPAD(mask)
    assert torch.equal(unpad.indices, indices) and torch.equal(unpad.cu_seqlens, cu_seqlens)
    assert unpad.max_seqlen == max_seqlen == 8 and cu_seqlens.tolist() == [0, 5, 13, 16]
    other = _padding_mask()
    with capture_paths(unpad):
        for name in capture.FLASH:
            assert ALL_MASK_ATTENTION_FUNCTIONS[name] is capture._padded_flash_mask
        # the mask function hands the layers a view of the same mask: they get the values computed once
        view = ALL_MASK_ATTENTION_FUNCTIONS["flash_attention_2"](attention_mask=mask, kv_length=8)
        assert flash_utils._get_unpad_data(view)[0] is unpad.indices
        assert flash_utils._get_unpad_data(other)[0] is not unpad.indices  # another mask: computed as before
        # transformers' own unpadding, with the metadata given, gathers what it gathers without it
        q, k, v = (torch.randn(3, 8, 2, 4) for _ in range(3))
        inside = flash_utils._upad_input(q, k, v, view, 8, None)
    outside = flash_utils._upad_input(q, k, v, mask, 8, None)
    for got, want in zip(inside[:4], outside[:4], strict=True):
        torch.testing.assert_close(got, want)
    assert inside[4][0].tolist() == outside[4][0].tolist() and inside[5] == outside[5]
    assert flash_utils._get_unpad_data is capture._ORIGINAL_UNPAD
    for name in capture.FLASH:
        assert name not in ALL_MASK_ATTENTION_FUNCTIONS._local_mapping  # the shared interface is as it was
    assert capture._padded_flash_mask(attention_mask=None, kv_length=8) is None
