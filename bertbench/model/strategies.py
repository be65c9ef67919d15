"""The batching strategies of the whole-dataset pass (--dataset): how a list of real lengths is cut
into batches, one registry entry each.

A strategy turns the lengths (in dataset order) into batches of sequence indices, each with the
length its sequences are padded to; every sequence lands in exactly one batch. It knows lengths
and sizes, nothing of tensors or models: no torch here, so the command line checks the names
before PyTorch loads.

Adding a strategy: a function (lengths, Sizes) -> list[Planned] and one register(Strategy(...)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """What a strategy may use: sequences per batch, the max seqlen, the packed token budget."""

    batch_size: int
    max_seqlen: int
    tokens_per_batch: int


@dataclass(frozen=True)
class Planned:
    """One batch: which sequences (dataset indices), and the length each is padded to."""

    indices: tuple[int, ...]
    padded_length: int  # every row's length; for a packed batch, its longest sequence (no row is padded)
    packed: bool = False  # laid end to end in one row (cu_seqlens), no padding at all

    def positions(self, lengths: Sequence[int]) -> int:
        """Token positions the model computes: real tokens only when packed, else rows x padded length."""
        if self.packed:
            return sum(lengths[i] for i in self.indices)
        return len(self.indices) * self.padded_length


Plan = Callable[[Sequence[int], Sizes], list["Planned"]]


@dataclass(frozen=True)
class Strategy:
    name: str  # as the user names it in --strategies
    plan: Plan
    packed: bool  # needs an implementation with a varlen route (registry Implementation.packed)
    help: str  # one line for --help and docs/reference.md


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    if strategy.name in STRATEGIES:
        raise ValueError(f"batching strategy {strategy.name!r} is registered already")
    STRATEGIES[strategy.name] = strategy
    return strategy


def names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def get(name: str) -> Strategy:
    return STRATEGIES[name]


def _chunks(order: Sequence[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(order[start : start + size]) for start in range(0, len(order), size)]


def pad_max(lengths: Sequence[int], sizes: Sizes) -> list[Planned]:
    """Batches in dataset order, each padded to the max seqlen (a fixed-shape input pipeline)."""
    return [Planned(chunk, sizes.max_seqlen) for chunk in _chunks(range(len(lengths)), sizes.batch_size)]


def pad_longest(lengths: Sequence[int], sizes: Sizes) -> list[Planned]:
    """Batches in dataset order, each padded to its longest sequence (DataCollatorWithPadding)."""
    return [Planned(chunk, max(lengths[i] for i in chunk)) for chunk in _chunks(range(len(lengths)), sizes.batch_size)]


def length_sorted(lengths: Sequence[int], sizes: Sizes) -> list[Planned]:
    """The dataset sorted by length (stable: ties in dataset order), then cut into batches, each padded
    to its longest: neighbours in a batch have near the same length, so little is padded."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [Planned(chunk, max(lengths[i] for i in chunk)) for chunk in _chunks(order, sizes.batch_size)]


def packed(lengths: Sequence[int], sizes: Sizes) -> list[Planned]:
    """Sequences in dataset order, each batch filled up to the token budget and laid end to end with
    no padding (a varlen forward). A sequence that would overflow the budget starts the next batch."""
    batches: list[list[int]] = [[]]
    tokens = 0
    for i, n in enumerate(lengths):
        if batches[-1] and tokens + n > sizes.tokens_per_batch:
            batches.append([])
            tokens = 0
        batches[-1].append(i)
        tokens += n
    return [Planned(tuple(b), max(lengths[i] for i in b), packed=True) for b in batches if b]


register(Strategy("pad-max", pad_max, False, "batches in dataset order, every one padded to the max seqlen"))
register(Strategy("pad-longest", pad_longest, False, "batches in dataset order, each padded to its longest"))
register(Strategy("sorted", length_sorted, False, "sorted by length, then batched, each padded to its longest"))
register(Strategy("packed", packed, True, "token-budget batches, padding-free (implementations with a varlen route)"))
