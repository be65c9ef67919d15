"""The inputs the whole-dataset pass's CUDA graphs replay from (--dataset --cuda-graphs): which graph
serves a batch, the static buffers a graph is captured on, and each batch copied into them.

A padded batch is served by the graph of its shape and mask, (rows, padded length, mask passed):
a replay does the loop's work on the same shape with the same mask. Its buffers are the inputs the
model's call takes once its mask is prepared (model.capture.prepared_inputs, built for each batch
as the loop's forward builds it), so a replay holds no host decision of another batch.

A packed batch is padded up to one capacity (Capacity: the token budget, the plan's most sequences,
its longest sequence), so one graph serves every packed batch of a plan: PAD_ID tokens at position 0
after the last sequence, cu_seqlens padded with the real total repeated (the added sequences are
empty), their labels ignored by the losses. No real token attends to a padding one, so its outputs
are the unpadded batch's; the kernel is told the plan's longest sequence, never less than a batch's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.functional import pad
from transformers import PreTrainedModel

from bertbench.measure.failures import NotCapturable
from bertbench.model import capture
from bertbench.model.batches import IGNORE_INDEX, PAD_ID, Batch, PackedBatch

GraphKey = tuple[object, ...]


class NotReplayable(NotCapturable):
    """A graph captured on one batch cannot serve another: what the call holds differs per batch."""


def graph_key(batch: Batch | PackedBatch) -> GraphKey:
    """The graph that serves the batch: one per padded shape and mask, one for every packed batch."""
    if isinstance(batch, PackedBatch):
        return ("packed",)
    rows, width = batch.input_ids.shape
    return ("padded", rows, width, batch.mask_passed)


@dataclass(frozen=True)
class Capacity:
    """The size every packed batch of a plan is padded to."""

    tokens: int
    sequences: int
    max_length: int


def capacity_of(batches: Sequence[PackedBatch], tokens_per_batch: int) -> Capacity:
    """The token budget (or a larger batch's tokens), the most sequences and the longest of any batch."""
    return Capacity(
        max(tokens_per_batch, *(b.input_ids.shape[1] for b in batches)),
        max(len(b.lengths) for b in batches),
        max(b.max_length for b in batches),
    )


def capacity_padded(packed: PackedBatch, capacity: Capacity) -> PackedBatch:
    """The packed batch at the capacity: padding tokens past its last sequence, empty sequences after it."""
    total, sequences = packed.input_ids.shape[1], len(packed.lengths)
    tokens, extra = capacity.tokens - total, capacity.sequences - sequences
    if tokens < 0 or extra < 0 or packed.max_length > capacity.max_length:
        raise ValueError(f"a packed batch of {total} tokens in {sequences} sequences is above the capacity {capacity}")
    return PackedBatch(
        input_ids=pad(packed.input_ids, (0, tokens), value=PAD_ID),
        position_ids=pad(packed.position_ids, (0, tokens), value=0),
        cu_seqlens=pad(packed.cu_seqlens, (0, extra), value=total),
        max_length=capacity.max_length,
        first_token_index=pad(packed.first_token_index, (0, extra), value=min(total, capacity.tokens - 1)),
        lengths=pad(packed.lengths, (0, extra), value=0),
        labels={
            name: pad(value, (0, tokens if value.dim() == 2 else extra), value=IGNORE_INDEX)
            for name, value in packed.labels.items()
        },
    )


def padded_static(model: PreTrainedModel, inputs: dict) -> dict:
    """Buffers a padded graph is captured on: the batch's prepared inputs, copied. NotReplayable where
    the call would hold the batch's own unpadding (FlashAttention's padded path)."""
    prepared = capture.prepared_inputs(model, inputs)
    if capture.unpad_data(model, prepared) is not None:
        raise NotReplayable(
            "FlashAttention unpads each padded batch on the host (where its real tokens are, its longest "
            "sequence), so a graph would hold one batch's; the packed strategy serves every batch"
        )
    return {name: _copy(value) for name, value in prepared.items()}


def packed_static(packed: PackedBatch) -> PackedBatch:
    """Buffers a packed graph is captured on: the capacity-padded batch, copied."""
    return dataclasses.replace(
        packed,
        **{f.name: _copy(getattr(packed, f.name)) for f in dataclasses.fields(packed) if f.name != "labels"},
        labels={name: _copy(value) for name, value in packed.labels.items()},
    )


def buffers(inputs: dict | PackedBatch) -> dict[str, object]:
    """What a graph reads, by name: the inputs themselves, or a packed batch's fields (labels flattened)."""
    if isinstance(inputs, dict):
        return inputs
    fields = {f.name: getattr(inputs, f.name) for f in dataclasses.fields(inputs) if f.name != "labels"}
    return {**fields, **{f"labels.{name}": value for name, value in inputs.labels.items()}}


def fill(static: dict[str, object], values: dict[str, object]) -> None:
    """Copy a batch into a graph's buffers; NotReplayable where it is not the same kind of input."""
    if static.keys() != values.keys():
        raise NotReplayable(f"a batch's inputs {sorted(values)} are not the graph's {sorted(static)}")
    for name, value in values.items():
        target = static[name]
        if isinstance(target, torch.Tensor) and isinstance(value, torch.Tensor) and target.shape == value.shape:
            target.copy_(value)
        elif isinstance(target, torch.Tensor) or isinstance(value, torch.Tensor) or target != value:
            raise NotReplayable(
                f"a batch's {name} cannot be copied into the graph's ({_kind(value)}, not {_kind(target)})"
            )


def _kind(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _copy(value: object) -> object:
    return value.clone(memory_format=torch.contiguous_format) if isinstance(value, torch.Tensor) else value
