"""The largest-batch search against a fake memory limit, and the out-of-memory probe."""

from __future__ import annotations

import math

import pytest
import torch

from bertbench.measure import capacity
from bertbench.measure.capacity import MemoryModel, is_out_of_memory, largest_batch, oom_probe

CPU = torch.device("cpu")


def memory_limit(n: int):
    """A fits function for a device where batches up to n fit."""
    return lambda batch: batch <= n


def probe_bound(n: int, start: int = 1) -> int:
    """Doubling from start past n, then bisecting the last doubling's interval."""
    return math.ceil(math.log2(max(n, 1) / start + 1)) + 1 + math.ceil(math.log2(max(n, 2)))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 100, 1000, 4095, 4096, 4097, 50_000])
def test_finds_the_exact_limit_in_logarithmic_probes(n):
    result = largest_batch(memory_limit(n), limit=2**16)
    assert (result.status, result.largest, result.smallest_failure) == ("ok", n, n + 1)
    assert result.probe_count <= probe_bound(n)
    assert result.probe_count <= 2 * math.log2(n + 1) + 2
    assert all(fitted == (batch <= n) for batch, fitted in result.probes)
    assert len({batch for batch, _ in result.probes}) == result.probe_count  # nothing probed twice


def test_nothing_fits():
    result = largest_batch(memory_limit(0))
    assert (result.status, result.largest, result.smallest_failure) == ("ok", 0, 1)
    assert result.probes == ((1, False),)
    assert "no batch fits" in result.detail


def test_a_start_that_does_not_fit_bisects_below_it():
    result = largest_batch(memory_limit(5), start=16)
    assert (result.largest, result.smallest_failure) == (5, 6)
    assert result.probes[0] == (16, False)
    result = largest_batch(memory_limit(0), start=16)
    assert (result.largest, result.smallest_failure) == (0, 1)


@pytest.mark.parametrize("limit", [1, 100, 2**16])
def test_everything_up_to_the_limit_fits(limit):
    result = largest_batch(memory_limit(limit), limit=limit)
    assert (result.status, result.largest, result.smallest_failure) == ("limit", limit, None)
    assert result.probes[-1] == (limit, True)  # the last doubling is clamped to the limit
    assert result.probe_count <= math.ceil(math.log2(limit)) + 1
    beyond = largest_batch(memory_limit(limit + 1000), limit=limit)
    assert beyond.status == "limit" and beyond.largest == limit


def test_a_probe_that_raises_ends_the_search_with_the_bounds_known_so_far():
    def fits(batch):
        if batch >= 32:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")
        return True

    result = largest_batch(fits)
    assert (result.status, result.largest, result.smallest_failure) == ("error", 16, None)
    assert result.detail == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert [batch for batch, _ in result.probes] == [1, 2, 4, 8, 16]


def test_a_reason_returned_by_the_probe_counts_as_not_fitting_and_is_kept():
    result = largest_batch(lambda batch: True if batch <= 6 else f"needs {batch * 10} GiB")
    assert (result.largest, result.smallest_failure) == (6, 7)
    assert result.detail == "batch 6 fits, 7 does not: needs 70 GiB"


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        largest_batch(memory_limit(3), start=0)
    with pytest.raises(ValueError):
        largest_batch(memory_limit(3), start=8, limit=4)


def test_oom_probe_turns_out_of_memory_into_false_and_frees_after_every_probe(monkeypatch):
    freed, made = [], []

    def call_for_batch(batch):
        if batch > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")  # building inputs
        if batch > 24:
            return _raise_oom  # the call itself runs out
        return lambda: made.append(batch) or torch.zeros(batch)

    monkeypatch.setattr(capacity, "release_memory", lambda device: freed.append(device))
    fits = oom_probe(call_for_batch, CPU)
    result = largest_batch(fits)
    assert (result.status, result.largest, result.smallest_failure) == ("ok", 24, 25)
    assert len(freed) == result.probe_count and set(freed) == {CPU}
    assert made == [batch for batch, fitted in result.probes if fitted]


def _raise_oom():
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")


def test_oom_probe_raises_other_errors_and_the_search_reports_them():
    def call_for_batch(batch):
        def call():
            raise ValueError(f"shape mismatch at batch {batch}")

        return call

    result = largest_batch(oom_probe(call_for_batch, CPU))
    assert result.status == "error" and result.detail == "ValueError: shape mismatch at batch 1"
    assert result.largest == 0 and result.probes == ()


def test_cublas_allocation_failure_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert not is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))


def test_oom_probe_on_a_real_model_fits_on_the_cpu():
    """One forward of the tiny preset per probe: everything fits up to the limit."""
    from bertbench.model.batches import make_batch
    from bertbench.model.heads import load_baseline

    loaded = load_baseline("mlm", "sdpa", "tiny", None, CPU, torch.float32, seed=0)

    def call_for_batch(batch):
        inputs = make_batch("mlm", batch, 16, 12, 2, 1000, 0, True, 0, "cpu").model_inputs()
        forward = loaded.forward(inputs)

        def call():
            with torch.inference_mode():
                return forward()

        return call

    result = largest_batch(oom_probe(call_for_batch, CPU), limit=8)
    assert (result.status, result.largest) == ("limit", 8)
    assert [batch for batch, _ in result.probes] == [1, 2, 4, 8]


@pytest.mark.parametrize("n", [100, 4700, 50_000])
def test_a_right_guess_settles_the_search_in_two_probes_after_the_doubling(n):
    doubling = math.ceil(math.log2(n + 1)) + 1
    plain = largest_batch(memory_limit(n), limit=2**16, precision=1 / 32)
    guided = largest_batch(memory_limit(n), limit=2**16, precision=1 / 32, guess=lambda: n)
    assert guided.status == "ok" and n * (1 - 1 / 32) <= guided.largest <= n < guided.smallest_failure
    assert guided.probe_count == doubling + 2 < plain.probe_count


@pytest.mark.parametrize("wrong", [None, 0, 1, 7, 3000, 10**9])
def test_a_wrong_guess_costs_probes_never_the_answer(wrong):
    result = largest_batch(memory_limit(4700), limit=2**16, guess=lambda: wrong)
    assert (result.status, result.largest, result.smallest_failure) == ("ok", 4700, 4701)
    assert result.probe_count <= probe_bound(4700) + 2


def test_the_memory_model_extrapolates_the_fitting_probes_to_the_devices_memory():
    model = MemoryModel(device_bytes=1000.0)
    assert model.guess() is None  # nothing to fit yet
    model.peaks[1] = 110.0
    assert model.guess() is None
    model.peaks.update({2: 120.0, 4: 140.0})  # 100 of weights, 10 per sequence
    assert model.guess() == 90
    model.peaks = {2: 140.0, 4: 140.0}  # a flat line predicts nothing
    assert model.guess() is None


def test_the_guided_search_on_a_fake_device_finds_what_the_plain_one_does():
    memory = MemoryModel(device_bytes=2**30)
    per_sequence, weights = 3 * 2**18, 2**27  # 0.75 MiB a sequence over 128 MiB of weights

    def fits(batch: int) -> bool:
        peak = weights + per_sequence * batch
        if peak > 0.98 * memory.device_bytes:  # the allocator's rounding: a little short of the model
            return False
        memory.peaks[batch] = peak
        return True

    guided = largest_batch(fits, limit=2**16, precision=1 / 32, guess=memory.guess)
    plain = largest_batch(fits, limit=2**16, precision=1 / 32)
    assert abs(guided.largest - plain.largest) <= plain.largest / 32 and guided.probe_count < plain.probe_count
