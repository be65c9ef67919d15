"""The model holder: one task's models, loaded once, and the calls they make at a grid point.

It owns loading (the baseline first, then every implementation with the baseline's weights
and a config of its own), input preparation (a batch per point, packed where asked, the
calls each measurement variant times) and clean-up. Whether an implementation can run at
all is decided here once, at load time, never again per point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.attention import registry
from bertbench.measure.failures import Failure, one_line, release_memory
from bertbench.model import capture
from bertbench.model.batches import Batch, PackedBatch, make_batch, pack
from bertbench.model.families import family_of, pad_id
from bertbench.model.heads import (
    LoadedModel,
    evaluated,
    load_baseline,
    load_like,
    per_token,
    task_logits,
    training_step,
    unavailable_reason,
)
from bertbench.spec.catalog import NUM_LABELS
from bertbench.spec.config import GridPoint, RunConfig

BASELINE = "(baseline)"  # the baseline's key among a point's calls; no implementation is named so
Call = Callable[[], object]


@dataclass
class PointInputs:
    """One grid point's batch and the calls made on it, keyed by BASELINE or implementation."""

    batch: Batch
    packed: PackedBatch | None
    calls: dict[str, Call]  # timed in the loop: forwards, or training steps in train mode
    parity: dict[str, Call]  # the output compared for parity: the forward without dropout
    reference: Call | None  # the float32 baseline's logits (reference_logits); None: the baseline is float32
    graph_ready: dict[str, Call]  # forwards ready to capture (model.capture.graph_ready)


class TaskModels:
    def __init__(self, task: str, config: RunConfig, reference: bool = True):
        self.task, self.config = task, config
        device, dtype = config.torch_device, config.torch_dtype
        self.failed: dict[str, Failure] = {}  # implementation -> why it cannot run at all
        # (max seqlen, mask passed) -> implementation -> the attention kernels its loop ran (point.known_kernels)
        self.loop_kernels: dict[tuple[int, bool], dict[str, str]] = {}
        self.models: dict[str, LoadedModel] = {}
        self.baseline: LoadedModel | None = None
        self.baseline_failure: Failure | None = None
        try:
            self.baseline = load_baseline(
                task, config.baseline, config.model_size, config.model_path, device, dtype, config.seed
            )
        except Exception as e:
            self.baseline_failure = Failure.of(e).within(f"baseline {config.baseline}")
            return
        self.baseline.model.train(config.mode == "train")
        if "flex_attention" in config.implementations:
            _no_silent_fallback()
        self.reference: LoadedModel | None = None  # the baseline in float32: what exact arithmetic gives
        self.reference_failure = ""
        if dtype != torch.float32 and reference:
            try:
                self.reference = load_like(self.baseline, config.baseline, device, torch.float32)
            except Exception as e:
                self.reference_failure = f"no float32 reference ({one_line(e)})"
                release_memory(device)
        for name in config.implementations:
            reason = unavailable_reason(name, device, dtype)
            if reason is None and config.packed and not registry.get(name).packed:
                reason = f"{name} has no variable-length path; --packed runs {', '.join(registry.packed_names())}"
            if reason is None and config.packed:
                reason = family_of(self.model_config).packed_reason(self.model_config)
            if reason is not None:
                self.failed[name] = Failure("unavailable", reason)
                continue
            try:
                self.models[name] = load_like(self.baseline, name, device, dtype)
                self.models[name].model.train(config.mode == "train")
                continue
            except Exception as e:  # out of memory while loading is oom, anything else unavailable
                failure = Failure.of(e)
                self.failed[name] = failure if failure.status == "oom" else Failure("unavailable", failure.detail)
            release_memory(device)  # outside the except block, whose frames held the failed tensors

    @property
    def model_config(self):
        assert self.baseline is not None
        return self.baseline.model.config

    def runs_label(self, name: str) -> str:
        """What the implementation's model really runs, with the SDPA backend it is pinned to."""
        loaded = self.models[name]
        backend = registry.get(name).sdpa_backend
        return f"{loaded.runs}[{backend}]" if backend is not None else loaded.runs

    def inputs(self, point: GridPoint, pending: list[str]) -> PointInputs:
        """The batch of one point and the calls of the baseline and each pending implementation."""
        config = self.config
        batch = make_batch(
            self.task,
            point.batch_size,
            point.max_seqlen,
            point.avg_seqlen,
            config.seqlen_stdev,
            self.model_config.vocab_size,
            NUM_LABELS[self.task],
            config.use_mask,
            config.seed,
            config.torch_device,
            config.length_distribution,
            config.lengths,
            pad_id(self.model_config),
        )
        inputs = batch.model_inputs()
        packed = pack(batch) if config.packed else None
        assert self.baseline is not None
        models = {BASELINE: self.baseline, **{n: self.models[n] for n in pending if n in self.models}}
        forwards = {
            key: m.forward_packed(packed) if packed is not None and key != BASELINE else m.forward(inputs)
            for key, m in models.items()
        }
        if config.mode == "train":
            calls = {key: training_step(models[key].model, forward) for key, forward in forwards.items()}
            parity = {key: evaluated(models[key].model, forward) for key, forward in forwards.items()}
        else:
            calls, parity = forwards, forwards
        graph_ready = (
            {  # a padded call's mask and unpadding metadata built before the capture (model.capture)
                key: forward
                if packed is not None and key != BASELINE
                else capture.graph_ready(models[key].model, models[key].forward, inputs)
                for key, forward in forwards.items()
            }
            if config.cuda_graphs
            else {}
        )
        reference = None
        if self.reference is not None:
            reference = reference_logits(self.task, self.reference, batch)
        return PointInputs(batch, packed, calls, parity, reference, graph_ready)

    def close(self) -> None:
        self.models.clear()
        self.baseline = self.reference = None
        release_memory(self.config.torch_device)


REFERENCE_POSITIONS = 8192  # token positions (rows x padded width) the float32 reference runs on, ...
REFERENCE_ROWS = 16  # ... but never fewer sequences than this (or the batch's)


def reference_rows(batch_size: int, width: int) -> int:
    """How many of the batch's sequences, the first ones, the float32 reference runs on: as many
    as fill REFERENCE_POSITIONS, at least REFERENCE_ROWS (16 at 512, 64 at 128)."""
    return min(batch_size, max(REFERENCE_ROWS, -(-REFERENCE_POSITIONS // width)))


def reference_logits(task: str, reference: LoadedModel, batch: Batch) -> Call:
    """The float32 reference's task logits for the first reference_rows sequences of the batch, in
    float32, laid out as the padded batch's (heads.task_logits) for those rows.

    The sequences of a BERT batch never meet (each attends to its own tokens only) and their
    lengths are drawn independently, so the first rows are a fair sample of the batch; parity
    compares every row with the baseline (rel_err) and these with the reference (ref_err). It
    runs on those rows cut after their longest sequence, without the labels. With the padding
    mask passed, every real token's attention masks the cut columns out (exactly: the mask's
    exp underflows to 0), so no real token's logit changes. The cut columns' logits are zeros,
    and parity compares real tokens only (heads.per_token). Nothing compares the loss. The
    float32 forward is the most expensive untimed call of a point: at 128 x 512 the rows take
    seven eighths of it off, and at pad 0.5 the cut about half of the rest. Without the mask
    (--no-use-mask, or nothing padded) the rows run whole."""
    width = batch.input_ids.shape[1]
    rows = reference_rows(batch.input_ids.shape[0], width)
    longest = int(batch.lengths[:rows].max()) if batch.mask_passed else width
    inputs = {"input_ids": batch.input_ids[:rows, :longest]}
    if batch.mask_passed:
        inputs["attention_mask"] = batch.attention_mask[:rows, :longest]
    forward = reference.forward(inputs)

    def call() -> list[torch.Tensor]:
        logits = [t.float() for t in task_logits(task, forward())]
        if longest == width or not per_token(task):
            return logits
        return [torch.nn.functional.pad(t, (0, 0) * (t.dim() - 2) + (0, width - longest)) for t in logits]

    return call


def _no_silent_fallback() -> None:
    """flex_attention runs through torch.compile, which recompiles for new shapes (and masks) and,
    past its recompile limit, would silently run the uncompiled reference code: a slow kernel
    timed as if it were flex. A grid has a few dozen shapes; past that, an error row instead."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    torch._dynamo.config.fail_on_recompile_limit_hit = True
