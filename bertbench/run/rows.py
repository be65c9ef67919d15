"""A point's typed results as CSV rows: every derived figure (speedups, memory saved,
throughput, TFLOP/s, the parity verdict, launch-boundness) is computed here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from bertbench.measure import variants
from bertbench.measure.clock import summarize as clock_summary
from bertbench.measure.failures import Failure
from bertbench.measure.probes import reference_floor, reference_limit, tolerance
from bertbench.measure.variants import Variant
from bertbench.model.holder import BASELINE, TaskModels
from bertbench.run.point import Measured, Parity, PointResult
from bertbench.spec.config import GridPoint, RunConfig
from bertbench.spec.figures import busy_pct, mem_saved_pct, pct_of_peak, speedup_pct
from bertbench.spec.schema import SCHEMA_VERSION, Row
from bertbench.spec.timings import EXTRA_TIMINGS

LAUNCH_BOUND_RATIO = 1.5  # loop latency / graph latency at which a row is flagged launch-bound


@dataclass(frozen=True)
class RunFacts:
    """What every row of a run shares."""

    run_id: str
    model: str
    baseline: str
    device: str
    dtype: str
    peak_tflops: float
    versions: dict[str, str]
    manifest: dict = field(default_factory=dict)  # runs/<run_id>.json as written at the start


def point_template(facts: RunFacts, task: str, point: GridPoint, config: RunConfig) -> Row:
    """The columns that name the measurement: enough for a resume key, before anything ran."""
    return Row(
        run_id=facts.run_id,
        schema_version=SCHEMA_VERSION,
        task=task,
        model=facts.model,
        baseline=facts.baseline,
        device=facts.device,
        dtype=facts.dtype,
        batch_size=point.batch_size,
        max_seqlen=point.max_seqlen,
        avg_seqlen=point.avg_seqlen,
        pad_fraction=point.pad_fraction,
        seqlen_stdev=config.seqlen_stdev,
        length_distribution=config.length_distribution,
        lengths_sha256=config.lengths_sha256,
        seed=config.seed,
        use_mask=config.use_mask,
        packed=config.packed,
        mode=config.mode,
        **{t.column: t.name in config.timings for t in EXTRA_TIMINGS},
        peak_tflops=facts.peak_tflops,
        **facts.versions,
    )


def failed_rows(template: Row, names: list[str], failure: Failure) -> list[Row]:
    return [_failed(replace(template, attn_implementation=n), failure) for n in names]


def _failed(row: Row, failure: Failure) -> Row:
    return replace(row, status=failure.status, detail=failure.detail)


def point_rows(template: Row, models: TaskModels, result: PointResult, pending: list[str]) -> list[Row]:
    """One row per pending implementation, each carrying the baseline's figures beside its own."""
    common = replace(
        template,
        real_tokens=result.real_tokens,
        pad_fraction_real=result.pad_fraction_real,
        mask_passed=result.mask_passed,
        gflop=result.gflop,
        gflop_padded=result.gflop_padded,
        host_slowdown=result.host_slowdown,
    )
    base = result.baseline()
    if isinstance(base, Measured):
        latency = base.outcome.latency
        common = replace(
            common,
            baseline_status="ok",
            latency_ms_baseline=latency.median,
            latency_ms_baseline_p10=latency.quantile(0.1),
            latency_ms_baseline_p90=latency.quantile(0.9),
            rel_iqr_baseline=latency.rel_iqr,
            num_batches_baseline=latency.count,
            mem_mb_baseline=base.outcome.memory.allocated_mb,
            mem_mb_reserved_baseline=base.outcome.memory.reserved_mb,
            tflops_baseline=result.gflop / latency.median,
        )
        if (gpu := base.outcome.gpu) is not None:
            common = replace(
                common, gpu_ms_baseline=gpu.median, gpu_busy_pct_baseline=busy_pct(gpu.median, latency.median)
            )
        if latency.clocks:
            common = replace(common, sm_clock_mhz_baseline=clock_summary(latency.clocks).median_mhz)
    elif isinstance(base, Failure):
        common = replace(common, baseline_status=base.status)
    check = ParityCheck(models.config.torch_dtype, result)
    rows = []
    for name in pending:
        if name in models.failed:
            rows += failed_rows(common, [name], models.failed[name])
            continue
        row = replace(common, attn_implementation=name, runs=models.runs_label(name))
        mine = result.variants["loop"][name]
        if isinstance(mine, Failure):
            rows.append(_failed(row, mine))
            continue
        row, notes = _loop_columns(row, mine, base, result, check)
        if result.energy:
            row = _energy_columns(row, result, name, notes)
        for variant in variants.VARIANTS[1:]:  # the loop's columns are the row's own
            if (outcomes := result.variants.get(variant.name)) is not None:
                row = _variant_columns(row, variant, outcomes.get(name), outcomes.get(BASELINE), notes, check)
        rows.append(replace(row, detail="; ".join(notes)))
    return rows


class ParityCheck:
    """Whether logits agree: against the float32 reference by the rule of FlashAttention's tests
    (measure.reference_limit), or, where no reference ran, against the baseline by a fixed
    tolerance, and the row's detail says so. Where the reference ran on the batch's first rows
    only (holder.reference_rows), the other rows are held to the baseline: rel_err over the whole
    batch may be at most twice rel_err over those rows (or the reference's floor), so a kernel
    wrong only on later sequences of a large batch is caught too."""

    def __init__(self, dtype, result: PointResult):
        self.dtype = dtype
        self.baseline_ref_err = self.ref_err_baseline(result.baseline())
        self.note = result.reference_note

    @staticmethod
    def ref_err_baseline(base: Measured | Failure | None) -> float | None:
        """The baseline's own error against the reference, in one variant."""
        return base.parity.ref_err if isinstance(base, Measured) else None

    def failure(self, parity: Parity, label: str = "", baseline_ref_err: float | None = None) -> str | None:
        """A note when the logits disagree, else None."""
        prefix = f"{label}: " if label else ""
        own = self.baseline_ref_err if baseline_ref_err is None else baseline_ref_err
        if parity.ref_err is not None and own is not None:
            limit = reference_limit(own, self.dtype, parity.values)
            if parity.ref_err > limit:
                return (
                    f"{prefix}error {parity.ref_err:.3g} against the float32 reference above {limit:.3g} "
                    f"(2 x the baseline's {own:.3g}, at least {reference_floor(self.dtype, parity.values):.3g} "
                    f"over {parity.values} values)"
                )
            sampled = parity.rel_err_reference_rows
            if sampled is not None and parity.rel_err is not None:
                limit = max(2 * sampled, reference_floor(self.dtype, parity.values))
                if parity.rel_err > limit:
                    return (
                        f"{prefix}relative error {parity.rel_err:.3g} against the baseline over the whole batch "
                        f"above {limit:.3g} (2 x its {sampled:.3g} on the rows the float32 reference ran on, "
                        f"at least {reference_floor(self.dtype, parity.values):.3g})"
                    )
            return None
        if parity.rel_err is not None and parity.rel_err > tolerance(self.dtype):
            fallback = f"; {self.note}" if self.note else ""
            return f"{prefix}relative error {parity.rel_err:.3g} above tolerance {tolerance(self.dtype):g}{fallback}"
        return None


def _loop_columns(row: Row, mine: Measured, base, result: PointResult, check: ParityCheck) -> tuple[Row, list[str]]:
    latency, memory = mine.outcome.latency, mine.outcome.memory
    tflops = result.gflop / latency.median
    row = replace(
        row,
        attention_kernels=mine.outcome.kernels,
        num_batches=latency.count,
        latency_ms=latency.median,
        latency_ms_mean=latency.mean,
        latency_ms_p10=latency.quantile(0.1),
        latency_ms_p90=latency.quantile(0.9),
        rel_iqr=latency.rel_iqr,
        host_share=latency.host_share,
        mem_mb=memory.allocated_mb,
        mem_mb_reserved=memory.reserved_mb,
        tokens_per_s=latency.per_second(result.real_tokens),
        tflops=tflops,
        pct_of_peak=pct_of_peak(tflops, row.peak_tflops),
        status="ok",
    )
    notes = []
    if (gpu := mine.outcome.gpu) is not None:
        row = replace(row, gpu_ms=gpu.median, gpu_busy_pct=busy_pct(gpu.median, latency.median))
        if row.gpu_ms_baseline is not None:
            row = replace(row, speedup_gpu_pct=speedup_pct(row.gpu_ms_baseline, gpu.median))
    elif mine.outcome.gpu_note:
        notes.append(mine.outcome.gpu_note)
    base_clocks = base.outcome.latency.clocks if isinstance(base, Measured) else ()
    if latency.clocks or base_clocks:
        both = clock_summary((*latency.clocks, *base_clocks))
        row = replace(
            row,
            sm_clock_mhz=clock_summary(latency.clocks).median_mhz,
            throttle_reasons=both.reasons_text,
            throttled=both.throttled,
        )
    if isinstance(base, Measured):
        base_latency, base_mem = base.outcome.latency, base.outcome.memory.allocated_mb
        row = replace(
            row,
            noisy=latency.noisy or base_latency.noisy,
            host_share_baseline=base_latency.host_share,
            host_bound=_either(latency.host_bound, base_latency.host_bound),
            speedup_pct=speedup_pct(base_latency.median, latency.median),
            mem_saved_pct=mem_saved_pct(base_mem, memory.allocated_mb) if base_mem else math.nan,
        )
    else:
        row = replace(row, noisy=latency.noisy, host_bound=latency.host_bound)
        if isinstance(base, Failure):
            notes.append(f"baseline {row.baseline} {base.status}: {base.detail}")
    parity = mine.parity
    row = replace(
        row,
        max_abs_err=parity.max_abs_err,
        rel_err=parity.rel_err,
        ref_err=parity.ref_err,
        ref_err_baseline=check.baseline_ref_err,
    )
    if (failure := check.failure(parity)) is not None:
        row = replace(row, status="mismatch")
        notes.append(failure)
    elif parity.ref_err is None and check.note:
        notes.append(f"parity against the baseline only: {check.note}")
    return row, notes


def _energy_columns(row: Row, result: PointResult, name: str, notes: list[str]) -> Row:
    columns = {}
    for key, suffix in ((BASELINE, "_baseline"), (name, "")):
        energy = result.energy.get(key)
        if energy is None:
            continue
        if energy.reading.ok and energy.joules_per_call is not None:
            columns[f"joules_per_1k_tokens{suffix}"] = energy.joules_per_call / result.real_tokens * 1000
            columns[f"power_w{suffix}"] = energy.reading.mean_power_w
        else:
            notes.append(f"energy{' of the baseline' if suffix else ''} unavailable: {energy.reading.detail}")
    return replace(row, **columns)


def _variant_columns(row: Row, variant: Variant, mine, base, notes: list[str], check: ParityCheck) -> Row:
    """The CUDA-graph or compiled columns of one implementation's row.

    A variant that failed (for the implementation or the baseline) leaves its columns empty
    and says why in `detail`; one whose logits disagree with the baseline's makes the row a
    mismatch.
    """
    label, name = variant.label, variant.name
    columns: dict = {}
    if isinstance(base, Measured):
        columns[f"latency_ms_{name}_baseline"] = base.outcome.latency.median
        if base.outcome.gpu is not None:
            columns[f"gpu_ms_{name}_baseline"] = base.outcome.gpu.median
        if variant.setup_column:
            columns[f"{variant.setup_column}_baseline"] = base.outcome.setup_s
    elif isinstance(base, Failure):
        notes.append(f"{label} of the baseline {base.status}: {base.detail}")
    if isinstance(mine, Failure):
        notes.append(f"{label} {mine.status}: {mine.detail}")
    elif isinstance(mine, Measured):
        median = mine.outcome.latency.median
        columns[f"attention_kernels_{name}"] = mine.outcome.kernels
        # a capture should hold the loop's kernels (a compiler may generate its own: not compared)
        same_kernels = not variant.replays or mine.outcome.kernels == row.attention_kernels
        if not same_kernels:  # e.g. transformers builds an SDPA mask while capturing and SDPA falls back to math
            # not the implementation's result: the figure stays in the detail, out of every column a report reads
            notes.append(
                f"{label} ran {mine.outcome.kernels} where the loop ran {row.attention_kernels}: {median:.4g} ms, "
                "not compared"
            )
        else:
            columns[f"latency_ms_{name}"] = median
            if mine.outcome.gpu is not None:
                columns[f"gpu_ms_{name}"] = mine.outcome.gpu.median
            if isinstance(base, Measured):
                columns[f"speedup_{name}_pct"] = speedup_pct(base.outcome.latency.median, median)
        if variant.setup_column:
            columns[variant.setup_column] = mine.outcome.setup_s
        elif same_kernels and variant.replays:
            columns["launch_bound"] = row.latency_ms >= LAUNCH_BOUND_RATIO * median
        if (failure := check.failure(mine.parity, label, check.ref_err_baseline(base))) is not None:
            columns["status"] = "mismatch"
            notes.append(failure)
    return replace(row, **columns)


def _either(mine: bool | None, baseline: bool | None) -> bool | None:
    """Host-bound when either model was; unknown (None, on the CPU) when neither is known."""
    return None if mine is None and baseline is None else bool(mine or baseline)
