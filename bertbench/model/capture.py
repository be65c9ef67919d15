"""A model's call made ready for a CUDA graph: everything transformers works out from the
padding mask on the host, worked out once before the capture, so the graph holds the same
kernels as the loop's call and nothing that waits on the host.

Three places in transformers' padded and unpadded paths synchronise with the host, which a
capture cannot hold (measure.graphs.check_capturable refuses the call):

- eager's mask builder copies a scalar from host memory into the 4-D additive mask it makes
  in every forward: the mask is built here, with the model's own function, and passed in;
- with nothing padded, transformers skips the mask outside a capture (sdpa then runs its
  fused kernel with no mask, eager adds none) but not while a stream captures, although with
  no padding mask the skip reads no data (transformers 5.17; later releases skip it there
  too): sdpa would replay the math kernel, several times slower than its loop, and eager a
  full additive mask its loop never adds. While preparing the graph the skip is taken as it
  is outside a capture;
- FlashAttention's padded path asks whether anything is padded (`mask.all()`) in every
  forward and, in every layer, where the real tokens are (`nonzero`) and the longest
  sequence (`.item()`): computed here once per batch, with transformers' own function, and
  handed to every layer while the graph is prepared. The graph then gathers the real tokens,
  runs the varlen kernel and scatters them back in every layer as the loop does.

The patches hold only while the returned call runs (warm-up, rehearsal, capture); a replay
runs no Python.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, masking_utils
from transformers import modeling_flash_attention_utils as flash_utils
from transformers.masking_utils import (
    ALL_MASK_ATTENTION_FUNCTIONS,
    create_bidirectional_mask,
    create_bidirectional_sliding_window_mask,
)

FLASH = ("flash_attention_2", "flash_attention_3")  # transformers' names of the unpadding implementations


@dataclass(frozen=True)
class UnpadData:
    """transformers' `_get_unpad_data` of one padding mask: where its real tokens are."""

    mask: torch.Tensor  # the (batch, seqlen) bool mask the layers are given
    indices: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int

    @classmethod
    def of(cls, mask: torch.Tensor) -> UnpadData:
        return cls(mask, *flash_utils._get_unpad_data(mask))

    def answers(self, mask: torch.Tensor) -> bool:
        """Whether `mask` is the one this was computed from (the layers get it, or a view of all of it)."""
        return mask.data_ptr() == self.mask.data_ptr() and mask.shape == self.mask.shape


def prepared_inputs(model: PreTrainedModel, inputs: dict) -> dict:
    """The inputs with the attention mask the model builds from the padding mask, built now
    (a 4-D mask for eager and sdpa, the bool padding mask for FlashAttention, a block mask for
    flex). With no padding mask there is nothing to build, unless the model has local layers.

    A model of local and global layers (ModernBERT's config.layer_types) is given its mapping
    of layer type to mask, each built as it builds them: one mask would drop the local window,
    which applies with no padding too."""
    mask = inputs.get("attention_mask")
    layer_types = set(getattr(model.config, "layer_types", None) or ())
    local = "sliding_attention" in layer_types
    if mask is None and not local:
        return inputs
    ids = inputs["input_ids"]
    shape_of_embeddings = torch.empty(*ids.shape, model.config.hidden_size, dtype=model.dtype, device=ids.device)
    kwargs = {"config": model.config, "inputs_embeds": shape_of_embeddings, "attention_mask": mask}
    if local:
        builders = {
            "full_attention": create_bidirectional_mask,
            "sliding_attention": create_bidirectional_sliding_window_mask,
        }
        return {**inputs, "attention_mask": {kind: builders[kind](**kwargs) for kind in sorted(layer_types)}}
    prepared = create_bidirectional_mask(**kwargs)
    if prepared is None:
        return {key: value for key, value in inputs.items() if key != "attention_mask"}
    return {**inputs, "attention_mask": prepared}


def _padding_mask(mask: object) -> torch.Tensor | None:
    """The 2-D padding mask FlashAttention's layers get: the mask, or one of a per-layer-type mapping's."""
    masks = mask.values() if isinstance(mask, dict) else [mask]
    return next((m for m in masks if isinstance(m, torch.Tensor) and m.dim() == 2), None)


def graph_ready(model: PreTrainedModel, forward: Callable[[dict], Callable[[], object]], inputs: dict) -> Callable:
    """The call `forward(inputs)` makes, ready to capture: its mask and, for FlashAttention, its
    unpadding metadata built now; the call runs inside `capture_paths`."""
    return ready(model, forward, prepared_inputs(model, inputs))


def ready(model: PreTrainedModel, forward: Callable[[dict], Callable[[], object]], prepared: dict) -> Callable:
    """The call `forward(prepared)` makes on inputs prepare_inputs built, inside `capture_paths`
    with FlashAttention's unpadding of their mask (unpad_data) worked out now."""
    unpad = unpad_data(model, prepared)
    call = forward(prepared)

    def run():
        with capture_paths(unpad):
            return call()

    return run


def unpad_data(model: PreTrainedModel, prepared: dict) -> UnpadData | None:
    """FlashAttention's unpadding of the prepared padding mask (where its real tokens are): what a
    graph of this call holds of this one batch's mask. None for every other implementation, and
    when no mask is passed."""
    mask = _padding_mask(prepared.get("attention_mask"))
    if model.config._attn_implementation in FLASH and mask is not None:
        return UnpadData.of(mask)
    return None


@contextlib.contextmanager
def capture_paths(unpad: UnpadData | None = None) -> Iterator[None]:
    """transformers takes, inside the block, the paths it takes outside a capture, with the
    host's answers given beforehand: the all-visible mask skipped when no padding mask is
    given; with `unpad`, FlashAttention's mask known to be padded and its metadata known."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(masking_utils, "_ignore_bidirectional_mask_sdpa", _skip_without_padding))
        if unpad is not None:
            stack.enter_context(_patched(flash_utils, "_get_unpad_data", _known_unpad(unpad)))
            for name in FLASH:
                stack.enter_context(_mask_function(name, _padded_flash_mask))
        yield


_ORIGINAL_SKIP = masking_utils._ignore_bidirectional_mask_sdpa
_ORIGINAL_UNPAD = flash_utils._get_unpad_data


def _skip_without_padding(padding_mask, kv_length, local_attention_size=None) -> bool:
    """No padding mask: nothing to read, the mask is skipped as outside a capture."""
    if padding_mask is None and (local_attention_size is None or kv_length < local_attention_size):
        return True
    return _ORIGINAL_SKIP(padding_mask, kv_length, local_attention_size)


def _known_unpad(unpad: UnpadData) -> Callable:
    def get_unpad_data(attention_mask: torch.Tensor):
        if unpad.answers(attention_mask):
            return unpad.indices, unpad.cu_seqlens, unpad.max_seqlen
        return _ORIGINAL_UNPAD(attention_mask)

    return get_unpad_data


def _padded_flash_mask(attention_mask=None, kv_length: int = 0, **kwargs):
    """transformers' flash_attention_mask for a batch known to be padded: the padding mask
    itself, without asking the GPU whether anything is padded."""
    if attention_mask is None:
        return None
    return attention_mask[:, -kv_length:]


@contextlib.contextmanager
def _patched(module: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@contextlib.contextmanager
def _mask_function(name: str, fn: Callable) -> Iterator[None]:
    """A mask function for one implementation in transformers' shared mask interface, for the block."""
    local = ALL_MASK_ATTENTION_FUNCTIONS._local_mapping
    saved = local.get(name)
    ALL_MASK_ATTENTION_FUNCTIONS[name] = fn
    try:
        yield
    finally:
        if saved is None:
            local.pop(name, None)
        else:
            local[name] = saved
