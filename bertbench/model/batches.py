"""Random padded batches, built with tensor operations on the device that runs the model.

A batch is made once per grid point and handed unchanged to the baseline and to every
attention implementation, so they all see the same tokens, lengths and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PAD_ID = 0  # BERT's; a model whose pad_token_id differs (RoBERTa: 1) passes its own to make_batch
IGNORE_INDEX = -100  # label value the task losses skip


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (batch, max_seqlen), the pad id after each sequence's length
    attention_mask: torch.Tensor  # (batch, max_seqlen), 1 on real tokens
    lengths: torch.Tensor  # (batch,), real tokens per sequence
    labels: dict[str, torch.Tensor]  # task labels, passed to the forward so the loss is computed
    use_mask: bool  # whether the model is given the attention mask when something is padded
    padded: bool  # some sequence is shorter than max_seqlen

    @property
    def mask_passed(self) -> bool:
        """A batch with no padding is passed no mask, as a user with full sequences would run it."""
        return self.use_mask and self.padded

    def model_inputs(self) -> dict[str, torch.Tensor]:
        inputs = {"input_ids": self.input_ids, **self.labels}
        if self.mask_passed:
            inputs["attention_mask"] = self.attention_mask
        return inputs


@dataclass(frozen=True)
class PackedBatch:
    """The real tokens of a padded batch laid end to end in one row, as varlen kernels take them."""

    input_ids: torch.Tensor  # (1, real tokens)
    position_ids: torch.Tensor  # (1, real tokens), restarting at 0 for each sequence
    cu_seqlens: torch.Tensor  # (batch + 1,) int32 offsets of each sequence
    max_length: int
    first_token_index: torch.Tensor  # (batch,) where each sequence's first token sits
    lengths: torch.Tensor  # (batch,)
    labels: dict[str, torch.Tensor]  # the padded batch's labels, moved to packed positions

    def model_inputs(self, token_types: bool = True, position_offset: int = 0) -> dict:
        """Inputs for a varlen forward: cu_seqlens given, so transformers need not rebuild them per layer.

        token_types: the model takes token_type_ids (zeros, as its padded forward defaults them;
        DistilBERT and ModernBERT take none). position_offset: added to the 0-based position ids
        (RoBERTa numbers its positions from pad_token_id + 1, as its padded forward does)."""
        types = {"token_type_ids": torch.zeros_like(self.input_ids)} if token_types else {}
        return {
            "input_ids": self.input_ids,
            "position_ids": self.position_ids + position_offset if position_offset else self.position_ids,
            **types,
            "cu_seq_lens_q": self.cu_seqlens,
            "cu_seq_lens_k": self.cu_seqlens,
            "max_length_q": self.max_length,
            "max_length_k": self.max_length,
        }


def sample_lengths(
    batch_size: int,
    max_seqlen: int,
    avg_seqlen: float,
    stdev: float,
    generator: torch.Generator,
    distribution: str = "normal",
    pool: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Per-sequence lengths, rounded and clamped to [1, max_seqlen], drawn from

    - normal: N(avg, stdev);
    - uniform: U[avg - stdev sqrt 3, avg + stdev sqrt 3] (that mean and standard deviation);
    - lognormal: the lognormal of that mean and standard deviation (a long tail, cut at max_seqlen);
    - file: `pool` (a user's lengths), with replacement, each truncated at max_seqlen.

    avg_seqlen = max_seqlen (nominal padding 0) means no padding: every sequence is full, not a
    draw around the maximum that the clamp would leave about half padded (a file whose lengths all
    reach the max seqlen has that mean too; --capacity asks for full sequences so)."""
    device = generator.device
    if avg_seqlen >= max_seqlen:  # also from a file: --capacity probes full sequences
        return torch.full((batch_size,), max_seqlen, dtype=torch.long, device=device)
    if distribution == "file":
        if not pool:
            raise ValueError("the file distribution draws from a pool of lengths")
        values = torch.tensor(pool, dtype=torch.long, device=device)
        picks = torch.randint(len(pool), (batch_size,), generator=generator, device=device)
        return values[picks].clamp(1, max_seqlen)
    if distribution == "normal":
        draws = torch.randn(batch_size, generator=generator, device=device) * stdev + avg_seqlen
    elif distribution == "uniform":
        half = stdev * math.sqrt(3)
        draws = avg_seqlen - half + 2 * half * torch.rand(batch_size, generator=generator, device=device)
    elif distribution == "lognormal":
        sigma2 = math.log1p((stdev / avg_seqlen) ** 2)
        mu = math.log(avg_seqlen) - sigma2 / 2
        normal = torch.randn(batch_size, generator=generator, device=device, dtype=torch.float64)
        draws = torch.exp(normal * math.sqrt(sigma2) + mu)
    else:
        raise ValueError(f"unknown length distribution {distribution!r}")
    return draws.round().clamp(1, max_seqlen).long()


def make_batch(
    task: str,
    batch_size: int,
    max_seqlen: int,
    avg_seqlen: float,
    seqlen_stdev: float,
    vocab_size: int,
    num_labels: int,
    use_mask: bool,
    seed: int,
    device: str | torch.device,
    distribution: str = "normal",
    pool: tuple[int, ...] | None = None,
    pad_id: int = PAD_ID,
) -> Batch:
    """A random batch: tokens drawn from the vocabulary but `pad_id`, which fills each sequence's
    padding (the model's pad_token_id: RoBERTa numbers positions past it, and a real token equal
    to it would be counted as padding). Token 0 stands for a draw of the pad id, so BERT's
    batches (pad id 0, never drawn) are the same as before pad ids were read."""
    generator = torch.Generator(device=device).manual_seed(seed)
    lengths = sample_lengths(batch_size, max_seqlen, avg_seqlen, seqlen_stdev, generator, distribution, pool)
    positions = torch.arange(max_seqlen, device=device).expand(batch_size, max_seqlen)
    real = positions < lengths[:, None]
    tokens = torch.randint(1, vocab_size, (batch_size, max_seqlen), generator=generator, device=device)
    if pad_id != 0:
        tokens = torch.where(tokens == pad_id, 0, tokens)
    input_ids = torch.where(real, tokens, pad_id)
    attention_mask = real.long()
    labels = make_labels(task, input_ids, real, lengths, num_labels, generator)
    return Batch(input_ids, attention_mask, lengths, labels, use_mask, bool(lengths.min() < max_seqlen))


def make_labels(
    task: str,
    input_ids: torch.Tensor,
    real: torch.Tensor,
    lengths: torch.Tensor,
    num_labels: int,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Labels as the seed passed them, so each head's loss is part of the timed forward."""
    batch_size, max_seqlen = input_ids.shape
    device = input_ids.device
    if task == "mlm":
        return {"labels": torch.where(real, input_ids, IGNORE_INDEX)}
    if task == "classification":
        return {"labels": torch.randint(0, num_labels, (batch_size,), generator=generator, device=device)}
    if task == "token_classification":
        tags = torch.randint(0, num_labels, (batch_size, max_seqlen), generator=generator, device=device)
        return {"labels": torch.where(real, tags, IGNORE_INDEX)}
    if task == "qa":
        start = (torch.rand(batch_size, generator=generator, device=device) * lengths).long()
        span = (torch.rand(batch_size, generator=generator, device=device) * (lengths - start)).long()
        return {"start_positions": start, "end_positions": start + span}
    raise ValueError(f"unknown task {task!r}")


def pack(batch: Batch) -> PackedBatch:
    """Drop the padding: real tokens in order, cu_seqlens computed once for the whole forward.

    Per-token labels are packed with their tokens; per-sequence labels (classification, QA
    start/end positions within each sequence) stay as they are.
    """
    real = batch.attention_mask.bool()
    lengths = batch.lengths
    cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32, device=lengths.device)
    cu_seqlens[1:] = lengths.cumsum(0)
    offsets = cu_seqlens[:-1].long()
    positions = torch.arange(batch.input_ids.shape[1], device=lengths.device).expand_as(batch.input_ids)
    labels = {name: value[real][None] if value.dim() == 2 else value for name, value in batch.labels.items()}
    return PackedBatch(
        input_ids=batch.input_ids[real][None],
        position_ids=positions[real][None],
        cu_seqlens=cu_seqlens,
        max_length=int(lengths.max()),
        first_token_index=offsets,
        lengths=lengths,
        labels=labels,
    )


def segments(values: torch.Tensor, packed: PackedBatch, fill: float) -> torch.Tensor:
    """Packed per-token values (1, tokens) as (batch, max_length), `fill` past each length."""
    positions = torch.arange(packed.max_length, device=values.device)
    index = (packed.first_token_index[:, None] + positions).clamp(max=values.shape[1] - 1)
    return values[0][index].masked_fill(positions >= packed.lengths[:, None], fill)


def unpack(values: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Packed per-token values (1, tokens, ...) laid back out as (batch, max_seqlen, ...), zeros at padding."""
    out = values.new_zeros(*real.shape, *values.shape[2:])
    out[real] = values[0]
    return out
