"""One grid point: the baseline and each pending implementation measured on one batch, in
every variant the run asks for, and their logits compared.

The result is typed data (PointResult); rows.py turns it into CSV rows. A model that fails
at any step is a Failure in its place; the others are still measured (the baseline's
failure included: its implementations' rows then lack only what needs the baseline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from bertbench.measure.clock import ClockSample
from bertbench.measure.energy_use import Energy, measure_energy
from bertbench.measure.failures import Failure, release_memory, return_cached
from bertbench.measure.probes import agreement, compared_values, forward_flops
from bertbench.measure.variants import LOOP, Outcome, Variant, measure, variants_of
from bertbench.model.batches import unpack
from bertbench.model.heads import per_token, task_logits
from bertbench.model.holder import BASELINE, TaskModels
from bertbench.spec.config import GridPoint


@dataclass(frozen=True)
class Parity:
    """Agreement of one model's logits, relative L2 on real tokens, as max_abs_err/rel_err/ref_err."""

    max_abs_err: float | None  # against the baseline (None for the baseline itself)
    rel_err: float | None  # relative L2 against the baseline
    ref_err: float | None  # relative L2 against the float32 reference (None: no reference)
    values: int = 0  # how many numbers ref_err compared (measure.compared_values), else rel_err
    rel_err_reference_rows: float | None = None  # rel_err on the rows the reference ran on, where fewer than all


@dataclass
class Measured:
    """One model's outcome in one variant, with its agreement with the baseline where known."""

    outcome: Outcome
    parity: Parity | None = None


@dataclass
class PointResult:
    point: GridPoint
    real_tokens: int
    pad_fraction_real: float
    mask_passed: bool
    gflop: float  # useful work per timed call: real tokens, x3 in train mode
    gflop_padded: float
    reference_note: str  # why there is no float32 reference, when there is none
    timed_s: float = 0.0  # the timed calls of every model and variant, added up
    host_slowdown: float | None = None  # the host's launch speed meanwhile against the run's (host.HostWatch)
    energy: dict[str, Energy] = field(default_factory=dict)  # key -> reading (with --energy)
    variants: dict[str, dict[str, Measured | Failure]] = field(default_factory=dict)  # variant -> key -> result

    def baseline(self, variant: str = "loop") -> Measured | Failure | None:
        return self.variants.get(variant, {}).get(BASELINE)


UNPROFILED = {BASELINE: ""}  # no column holds the baseline's kernels


def known_kernels(models: TaskModels, variant: Variant, point: GridPoint, mask_passed: bool) -> dict[str, str]:
    """The kernels each model's loop is known to run at this point, from an earlier point of the
    same max seqlen and mask: the profiler then stays off (it costs more than a bert-base
    forward). The backend SDPA, FlashAttention or varlen_attn picks depends on dtype, head size,
    mask and sequence length, never on the batch size (every H100 row profiled at every point
    agreed: docs/methodology.md). A graph's kernels come from its capture; a compiled call is
    profiled at every point, as every point compiles anew."""
    if variant is not LOOP:
        return {**UNPROFILED}
    return {**models.loop_kernels.get((point.max_seqlen, mask_passed), {}), **UNPROFILED}


def measure_point(
    models: TaskModels,
    point: GridPoint,
    pending: list[str],
    between: Callable[[], object] | None = None,
    clock: Callable[[], ClockSample | None] | None = None,
) -> PointResult:
    """`between` runs after every round of timed calls, on an idle device (host.HostWatch.read);
    `clock` after each model's round (clock.ClockWatch.sample)."""
    config, task = models.config, models.task
    device = config.torch_device
    inputs = models.inputs(point, pending)
    lengths = inputs.batch.lengths.tolist()
    passes = 3 if config.mode == "train" else 1  # the backward's matmuls are twice the forward's
    model_config = models.model_config
    result = PointResult(
        point=point,
        real_tokens=sum(lengths),
        pad_fraction_real=1 - sum(lengths) / (point.batch_size * point.max_seqlen),
        mask_passed=inputs.batch.mask_passed,
        gflop=passes * forward_flops(model_config, task, lengths) / 1e9,
        gflop_padded=passes * forward_flops(model_config, task, lengths, point.max_seqlen) / 1e9,
        reference_note=models.reference_failure,
    )
    real = inputs.batch.attention_mask.bool() if per_token(task) else None
    exact = None  # the float32 reference's logits; the baseline's own when it runs in float32
    if inputs.reference is not None:
        try:
            with torch.inference_mode():
                exact = inputs.reference()
        except Exception as e:
            result.reference_note = f"no float32 reference ({Failure.of(e).detail})"
        if exact is None:
            release_memory(device)
    keys = list(inputs.calls)
    variants = variants_of(config)
    for variant in variants:
        calls = inputs.graph_ready if variant.replays else inputs.calls
        outcomes = measure(
            variant,
            {k: calls[k] for k in keys},
            device,
            config.timing,
            config.mode == "inference",
            known_kernels(models, variant, point, inputs.batch.mask_passed),
            between,
            clock,
        )
        logits = {}
        for key, outcome in outcomes.items():
            if isinstance(outcome, Outcome):
                result.timed_s += outcome.latency.total_s
                output = inputs.parity[key]() if variant is LOOP and config.mode == "train" else outcome.output
                # a graph's output buffers belong to the graph: copied before it is freed
                logits[key] = [t.detach().clone() if variant.replays else t.detach() for t in task_logits(task, output)]
        baseline = logits.get(BASELINE)
        if variant is LOOP and config.dtype == "fp32":
            exact = baseline  # a float32 run: the baseline is the reference
        result.variants[variant.name] = {
            key: Measured(
                replace(outcome, output=None), _parity(logits[key], baseline, exact, real, key, config.packed)
            )
            if isinstance(outcome, Outcome)
            else outcome
            for key, outcome in outcomes.items()
        }
        del outcomes, logits
        if variant is not variants[-1]:  # the next variant's preparation starts from a clean pool;
            return_cached(device)  # the next point's observed calls return it themselves (10 ms a call)
        if variant is LOOP:  # only what ran in the loop is timed another way
            models.loop_kernels.setdefault((point.max_seqlen, inputs.batch.mask_passed), {}).update(
                {key: m.outcome.kernels for key, m in result.variants["loop"].items() if isinstance(m, Measured)}
            )
            keys = [key for key in keys if not isinstance(result.variants["loop"][key], Failure)]
            if config.energy:
                result.energy = measure_energy({key: inputs.calls[key] for key in keys}, device, config.mode)
    return result


def _parity(logits, baseline, exact, real: torch.Tensor | None, key: str, packed: bool) -> Parity:
    if packed and real is not None and key != BASELINE:  # packed per-token logits laid out as the padded batch
        logits = [unpack(values, real) for values in logits]
    max_abs = rel = None
    if baseline is not None and key != BASELINE:
        max_abs, rel = agreement(logits, baseline, real)
    if exact is None:
        return Parity(max_abs, rel, None, compared_values(logits, real))
    rows = exact[0].shape[0]  # the reference ran on the batch's first rows (holder.reference_rows)
    sampled = rows < logits[0].shape[0]
    logits, real = [t[:rows] for t in logits], None if real is None else real[:rows]
    rel_sampled = agreement(logits, [t[:rows] for t in baseline], real)[1] if sampled and rel is not None else None
    return Parity(max_abs, rel, agreement(logits, exact, real)[1], compared_values(logits, real), rel_sampled)
