"""The dataset pass's parity: each sequence's task logits, from the batch it was in, against the
reference's (the baseline's pad-max pass), accumulated over a whole pass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.model.batches import Batch, PackedBatch
from bertbench.model.heads import per_token, task_logits
from bertbench.model.strategies import Planned


@dataclass
class Agreement:
    """Each sequence's logits against the reference's, accumulated over a pass (float32)."""

    max_abs: float = 0.0
    err_sq: float = 0.0
    ref_sq: float = 0.0
    values: int = 0

    def add(self, outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
        for out, ref in zip(outputs, reference, strict=True):
            diff = out - ref
            self.max_abs = max(self.max_abs, float(diff.abs().max()) if diff.numel() else 0.0)
            self.err_sq += float(diff.square().sum())
            self.ref_sq += float(ref.square().sum())
            self.values += diff.numel()

    @property
    def rel_err(self) -> float:
        return (self.err_sq / self.ref_sq) ** 0.5 if self.ref_sq else self.err_sq**0.5


def sequence_logits(
    task: str, output, batch: Batch | PackedBatch, columns: torch.Tensor | None
) -> list[list[torch.Tensor]]:
    """Each sequence's task logits (its real tokens only, for per-token heads), float32 on the host."""
    logits = [t[..., columns] if columns is not None else t for t in task_logits(task, output)]
    logits = [t.detach().float().cpu() for t in logits]
    lengths = batch.lengths.tolist()
    if not per_token(task):
        return [[t[b] for t in logits] for b in range(len(lengths))]
    if isinstance(batch, PackedBatch):
        starts = batch.first_token_index.tolist()
        return [[t[0, s : s + n] for t in logits] for s, n in zip(starts, lengths, strict=True)]
    return [[t[b, :n] for t in logits] for b, n in enumerate(lengths)]


def parity_pass(
    task: str,
    calls: list[Callable[[], object]],
    batches: list[Batch | PackedBatch],
    planned: list[Planned],
    columns: torch.Tensor | None,
    reference: dict[int, list[torch.Tensor]],
) -> Agreement:
    """One untimed pass; the reference's, the first, fills `reference` (sequence index -> logits)."""
    agreement = Agreement()
    filling = not reference
    with torch.inference_mode():
        for call, batch, plan in zip(calls, batches, planned, strict=True):
            for index, logits in zip(plan.indices, sequence_logits(task, call(), batch, columns), strict=True):
                if filling:
                    reference[index] = logits
                else:
                    agreement.add(logits, reference[index])
    return agreement
