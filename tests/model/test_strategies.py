"""The batching strategies of --dataset: every sequence once, the padding each strategy promises."""

from __future__ import annotations

import itertools
import random

import pytest

from bertbench.model import strategies
from bertbench.model.strategies import Sizes

_DRAW = random.Random(7)
LENGTHS = [_DRAW.randint(1, 128) for _ in range(203)]
SIZES = Sizes(batch_size=16, max_seqlen=128, tokens_per_batch=600)


@pytest.mark.parametrize("name", strategies.names())
def test_every_sequence_lands_in_exactly_one_batch_and_fits_its_padding(name):
    planned = strategies.get(name).plan(LENGTHS, SIZES)
    seen = [i for p in planned for i in p.indices]
    assert sorted(seen) == list(range(len(LENGTHS)))
    for p in planned:
        assert p.indices and all(LENGTHS[i] <= p.padded_length <= SIZES.max_seqlen for i in p.indices)
        assert p.packed == strategies.get(name).packed
        if not p.packed:
            assert len(p.indices) <= SIZES.batch_size


def test_pad_max_pads_everything_to_the_max_seqlen_in_dataset_order():
    planned = strategies.get("pad-max").plan(LENGTHS, SIZES)
    assert [i for p in planned for i in p.indices] == list(range(len(LENGTHS)))
    assert {p.padded_length for p in planned} == {128}
    assert [len(p.indices) for p in planned] == [16] * 12 + [11]
    assert sum(p.positions(LENGTHS) for p in planned) == 203 * 128


def test_pad_longest_pads_each_batch_to_its_longest_as_a_collator_does():
    planned = strategies.get("pad-longest").plan(LENGTHS, SIZES)
    assert [i for p in planned for i in p.indices] == list(range(len(LENGTHS)))
    assert [p.padded_length for p in planned] == [max(LENGTHS[i] for i in p.indices) for p in planned]


def test_sorted_batches_are_length_sorted_and_pad_less_than_in_dataset_order():
    planned = strategies.get("sorted").plan(LENGTHS, SIZES)
    order = [LENGTHS[i] for p in planned for i in p.indices]
    assert order == sorted(LENGTHS)
    assert [p.padded_length for p in planned] == sorted(p.padded_length for p in planned)
    padded = {n: sum(p.positions(LENGTHS) for p in strategies.get(n).plan(LENGTHS, SIZES)) for n in strategies.names()}
    assert padded["packed"] == sum(LENGTHS) < padded["sorted"] < padded["pad-longest"] < padded["pad-max"]


def test_packed_batches_keep_the_token_budget_and_the_dataset_order():
    planned = strategies.get("packed").plan(LENGTHS, SIZES)
    assert [i for p in planned for i in p.indices] == list(range(len(LENGTHS)))
    for p, after in itertools.pairwise(planned):
        tokens = sum(LENGTHS[i] for i in p.indices)
        assert tokens <= SIZES.tokens_per_batch < tokens + LENGTHS[after.indices[0]]  # filled: the next did not fit
    assert all(p.positions(LENGTHS) == sum(LENGTHS[i] for i in p.indices) for p in planned)


def test_a_sequence_as_long_as_the_budget_is_a_batch_of_its_own():
    planned = strategies.get("packed").plan([5, 10, 10, 3], Sizes(2, 10, 10))
    assert [p.indices for p in planned] == [(0,), (1,), (2,), (3,)]


def test_names_are_registered_once():
    assert strategies.names() == ("pad-max", "pad-longest", "sorted", "packed")
    with pytest.raises(ValueError, match="registered already"):
        strategies.register(strategies.get("sorted"))
