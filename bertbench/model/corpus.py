"""The sequences of a whole-dataset pass (--dataset) and the batches a strategy cuts them into.

The corpus is drawn once per task and shared by every implementation and strategy, so every pass
sees the same sequences: their lengths (drawn on the CPU from the seed, so a GPU and a CPU run
draw the same ones; or the --lengths file's first, in file order, each truncated at the max
seqlen) and their token ids (random from the seed, as make_batch draws them, or the file's texts
as the checkpoint's tokenizer reads them). A planned batch (model.strategies.Planned) becomes a
padded Batch, or a PackedBatch for the packed strategy, built before anything is timed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bertbench.model.batches import PAD_ID, Batch, PackedBatch, make_labels, pack, sample_lengths
from bertbench.model.strategies import Planned


@dataclass(frozen=True)
class Corpus:
    lengths: tuple[int, ...]  # real tokens of each sequence, in dataset order
    tokens: torch.Tensor  # (sequences, longest) token ids on the device, pad_id past each length
    source: str  # "random" or "tokenizer"
    pad_id: int = PAD_ID  # what fills each sequence past its length (the model's pad_token_id)

    @property
    def real_tokens(self) -> int:
        return sum(self.lengths)


def draw_lengths(
    sequences: int,
    max_seqlen: int,
    avg_seqlen: float,
    stdev: float,
    seed: int,
    distribution: str,
    pool: tuple[int, ...] | None,
) -> tuple[int, ...]:
    """The pass's lengths: the file's first `sequences` in file order (distribution file), else drawn."""
    if distribution == "file":
        if not pool or len(pool) < sequences:
            raise ValueError("the file distribution needs at least as many lengths as sequences")
        return tuple(min(n, max_seqlen) for n in pool[:sequences])
    generator = torch.Generator().manual_seed(seed)
    return tuple(sample_lengths(sequences, max_seqlen, avg_seqlen, stdev, generator, distribution).tolist())


def random_corpus(
    lengths: tuple[int, ...], vocab_size: int, seed: int, device: torch.device, pad_id: int = PAD_ID
) -> Corpus:
    """Random token ids in [1, vocab_size) but `pad_id` (as model.batches.make_batch draws them),
    drawn on the CPU from the seed, then moved to the device."""
    generator = torch.Generator().manual_seed(seed + 1)  # not the lengths' stream
    longest = max(lengths)
    tokens = torch.randint(1, vocab_size, (len(lengths), longest), generator=generator)
    if pad_id != 0:
        tokens = torch.where(tokens == pad_id, 0, tokens)
    real = torch.arange(longest) < torch.tensor(lengths)[:, None]
    return Corpus(lengths, torch.where(real, tokens, pad_id).to(device), "random", pad_id)


def text_corpus(ids: list[list[int]], device: torch.device, pad_id: int = PAD_ID) -> Corpus:
    """The tokenizer's ids of each text (model.lengths.token_ids_of), padded with `pad_id`."""
    lengths = tuple(len(row) for row in ids)
    tokens = torch.full((len(ids), max(lengths)), pad_id, dtype=torch.long)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return Corpus(lengths, tokens.to(device), "tokenizer", pad_id)


def batch_of(
    corpus: Corpus, planned: Planned, task: str, num_labels: int, use_mask: bool, seed: int
) -> Batch | PackedBatch:
    """The planned batch's tensors: its sequences padded to its length, then packed if it is packed.
    Labels as make_batch draws them (each head's loss stays part of the forward), from a seed per batch."""
    device = corpus.tokens.device
    index = torch.tensor(planned.indices, dtype=torch.long, device=device)
    lengths = torch.tensor([corpus.lengths[i] for i in planned.indices], dtype=torch.long, device=device)
    width = planned.padded_length
    tokens = corpus.tokens[index, :width]
    if tokens.shape[1] < width:  # padded past the corpus's longest sequence (pad-max)
        tokens = torch.nn.functional.pad(tokens, (0, width - tokens.shape[1]), value=corpus.pad_id)
    real = torch.arange(width, device=device) < lengths[:, None]
    generator = torch.Generator(device=device).manual_seed(seed + planned.indices[0])
    labels = make_labels(task, tokens, real, lengths, num_labels, generator)
    batch = Batch(tokens, real.long(), lengths, labels, use_mask, bool(lengths.min() < width))
    return pack(batch) if planned.packed else batch
