"""One failure type: why a model could not be measured, as a row's status and detail.

Nothing stops a sweep: an implementation that cannot run, a backend that refuses the
inputs, or an out-of-memory point becomes a Failure, and its row says so.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


class NotCapturable(RuntimeError):
    """The call synchronises with the host, so a CUDA graph cannot hold it."""


@dataclass(frozen=True)
class Failure:
    status: str  # oom, unavailable or error
    detail: str

    @classmethod
    def of(cls, error: BaseException, prefix: str = "") -> Failure:
        detail = str(error) if isinstance(error, NotCapturable) else one_line(error)
        return cls(failure_status(error), prefix + detail)

    def because(self, seen: list[warnings.WarningMessage]) -> Failure:
        """An `unavailable` failure with the reasons PyTorch gave as warnings just before: SDPA
        refuses with "No available kernel" and says why only in warnings, e.g. "Flash Attention
        does not support non-null attn_mask"."""
        if self.status != "unavailable":
            return self
        reasons = dict.fromkeys(
            text.split(" (Triggered internally")[0].strip()
            for w in seen
            if not any(skip in (text := str(w.message)) for skip in _NOT_A_REASON)
        )
        return Failure(self.status, f"{self.detail} ({' '.join(reasons)})") if reasons else self

    def within(self, context: str) -> Failure:
        """The same failure, its detail prefixed with where it happened."""
        return Failure(self.status, f"{context}: {self.detail}")


# SDPA's warnings that head a list of reasons, or say only that a pinned backend left the others off
_NOT_A_REASON = ("not used because", "has been runtime disabled")


def failure_status(error: BaseException) -> str:
    if isinstance(error, torch.OutOfMemoryError):
        return "oom"
    if isinstance(error, NotCapturable):
        return "unavailable"
    text = str(error)
    if "No available kernel" in text or "No viable backend" in text:
        return "unavailable"
    if "dropout" in text.lower() and "support" in text.lower():  # e.g. flex attention in training
        return "unavailable"
    if BUILD_LACKS in text:  # flash-attn compiled without a path the model asks for
        return "unavailable"
    return "error"


# flash-attn's TORCH_CHECKs where a path was compiled out (FLASHATTENTION_DISABLE_LOCAL and the like):
# "This flash attention build does not support local attention." (ModernBERT's sliding-window layers)
BUILD_LACKS = "flash attention build does not support"


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def release_memory(device: torch.device) -> None:
    """Free what a failed call left: call it outside the except block, whose frames hold the tensors.

    A full garbage collection walks every object the imports made (~400,000 once transformers
    is loaded: 0.2-0.3 s): inside frozen_heap() it walks only those made since, in microseconds."""
    gc.collect()
    return_cached(device)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive now (modules, classes, the imports) out of every garbage
    collection until the block ends, as gc.freeze does for forked servers: what a run makes
    afterwards (models, inputs, a failed call's tensors) is still collected. A capacity search
    collects after every probe that runs out of memory; a sweep after every failure and model
    clean-up. Nested blocks leave the outer one's freeze in place."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def return_cached(device: torch.device) -> None:
    """Give the allocator's cached blocks back, so the next peak is measured from a clean pool."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
