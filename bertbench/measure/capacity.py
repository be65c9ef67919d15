"""The largest batch that fits in memory: doubling until a probe fails, then bisection.

A probe is one forward or one training step at a batch size; it fits or runs out of memory.
Doubling from `start` finds a batch that fails in about log2(N / start) probes, and bisection
between the last fit and the first failure takes about log2(N) more, so the search costs
O(log N) probes where a linear scan would cost N. It assumes that what fits at one batch fits
at every smaller one (memory grows with the batch); a probe that breaks that shows up in the
list of probes, where a row can show it.

largest_batch knows only a `fits` callable, no torch: oom_probe turns a call per batch into
one, catching out-of-memory and freeing what the failed probe left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.failures import one_line, release_memory

Probe = Callable[[int], "bool | str"]


@dataclass(frozen=True)
class CapacityResult:
    """What the search found.

    status: "ok" (largest fits and largest + 1 does not; largest is 0 when not even `start`
    ... down to 1 fits), "limit" (everything probed up to `limit` fitted: the capacity is at
    least `limit`) or "error" (a probe raised something other than out-of-memory: largest and
    smallest_failure are the bounds known until then, detail says what was raised).
    """

    largest: int  # the largest batch seen to fit; 0 if none did
    smallest_failure: int | None  # the smallest batch seen not to fit; None if none failed
    probes: tuple[tuple[int, bool], ...]  # (batch, fitted) in the order probed
    status: str  # ok, limit or error
    detail: str

    @property
    def probe_count(self) -> int:
        return len(self.probes)


class _Search:
    """The bounds and probes of one search; a probe that raises ends it."""

    def __init__(self, fits: Probe):
        self.fits = fits
        self.largest, self.failure = 0, None
        self.probes: list[tuple[int, bool]] = []
        self.reasons: dict[int, str] = {}  # why a batch did not fit, where the probe said

    def probe(self, batch: int) -> bool:
        answer = self.fits(batch)
        fitted = answer is True
        if isinstance(answer, str):
            self.reasons[batch] = answer
        self.probes.append((batch, fitted))
        if fitted:
            self.largest = max(self.largest, batch)
        else:
            self.failure = batch if self.failure is None else min(self.failure, batch)
        return fitted

    def result(self, status: str, detail: str) -> CapacityResult:
        return CapacityResult(self.largest, self.failure, tuple(self.probes), status, detail)


def largest_batch(
    fits: Probe,
    start: int = 1,
    limit: int = 2**16,
    precision: float = 0.0,
    guess: Callable[[], int | None] | None = None,
) -> CapacityResult:
    """The largest batch in [1, limit] for which `fits(batch)` holds.

    fits(batch) runs one probe and returns True when it fits, False (or a string saying why)
    when it runs out of memory, and raises for anything else, which ends the search with
    status "error". Batches are probed at start, 2 start, 4 start, ... (the last one clamped to
    limit) until one fails, then bisected between the last fit and that failure, until they are
    1 apart or, with `precision` p > 0, within p x the last fit (large probes cost seconds).

    `guess`, asked once the doubling has failed, may predict the largest fit (MemoryModel: from
    the memory the fitting probes took); the bisection then first probes just below and just
    above it, which settles a search to 3 % in two large probes where halving takes five. A
    wrong guess costs those two probes and the bisection goes on from the bounds they left.
    """
    if not 1 <= start <= limit:
        raise ValueError(f"need 1 <= start <= limit, got start={start}, limit={limit}")
    search = _Search(fits)
    try:
        batch = start
        while search.probe(batch):
            if batch == limit:
                return search.result("limit", f"every batch probed up to the limit {limit} fitted")
            batch = min(2 * batch, limit)
        low, high = search.largest, batch  # low fits (0: trivially), high does not
        guided = _guided(guess() if guess is not None else None, precision)
        while high - low > max(1, precision * low):
            middle = next((b for b in guided if low < b < high), (low + high) // 2)
            guided = [b for b in guided if b != middle]
            if search.probe(middle):
                low = middle
            else:
                high = middle
    except Exception as e:
        return search.result("error", one_line(e))
    failure = search.failure
    assert failure is not None
    why = f": {search.reasons[failure]}" if failure in search.reasons else ""
    if search.largest == 0:
        return search.result("ok", f"no batch fits: batch {failure} does not{why}")
    return search.result("ok", f"batch {search.largest} fits, {failure} does not{why}")


def _guided(predicted: int | None, precision: float) -> list[int]:
    """The batches probed first around a predicted largest fit: just below it, then just above."""
    if predicted is None or predicted < 2:
        return []
    margin = max(1, int(predicted * precision / (2 + precision)))  # below and above within precision x below
    return [predicted - margin, predicted + margin]


class MemoryModel:
    """Peak memory as a + c x batch, fitted to the probes that fitted, and the batch where it
    meets the device's memory: the capacity search's guess (largest_batch). Activations grow
    linearly with the batch at a fixed seqlen, so two fits of different batches suffice."""

    def __init__(self, device_bytes: float):
        self.device_bytes = device_bytes
        self.peaks: dict[int, float] = {}  # batch -> peak bytes reserved, of probes that fitted

    def guess(self) -> int | None:
        if len(self.peaks) < 2:
            return None
        (b1, m1), (b2, m2) = sorted(self.peaks.items())[-2:]
        slope = (m2 - m1) / (b2 - b1)
        if slope <= 0:
            return None
        return int(b2 + (self.device_bytes - m2) / slope)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an error means the device ran out of memory.

    torch.OutOfMemoryError is the caching allocator's; cuBLAS reports a failed workspace
    allocation as a plain RuntimeError (CUBLAS_STATUS_ALLOC_FAILED), which is the same limit
    reached by another road.
    """
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "CUBLAS_STATUS_ALLOC_FAILED" in str(error)


def oom_probe(
    call_for_batch: Callable[[int], Callable[[], object]], device: torch.device, model: MemoryModel | None = None
) -> Callable[[int], bool]:
    """A `fits` for largest_batch: build the call for a batch, make it once, wait for the device.

    Out of memory anywhere (building the inputs or the call) gives False; anything else is
    raised. Memory is freed after every probe, fitted or not, outside the except block (whose
    frames hold the failed tensors), so that each probe starts from the same free memory. On a
    GPU the peak reserved memory of each probe that fits goes to `model` (the allocated peak
    predicted 32.5k sequences where 24.8k fitted, eager classification at seqlen 128 on the H100).
    """

    def fits(batch: int) -> bool:
        fitted = False
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            output = call_for_batch(batch)()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                if model is not None:  # reserved: the allocator's rounding and fragmentation count too
                    model.peaks[batch] = torch.cuda.max_memory_reserved(device)
            del output
            fitted = True
        except Exception as e:
            if not is_out_of_memory(e):
                raise
        release_memory(device)
        return fitted

    return fits
