"""A point's typed results as CSV rows: every derived figure (speedups, memory saved,
throughput, TFLOP/s, the parity verdict, launch-boundness) is computed here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bertbench.config import GridPoint, RunConfig
from bertbench.failures import Failure
from bertbench.holder import BASELINE, TaskModels
from bertbench.measure import tolerance
from bertbench.point import Measured, PointResult
from bertbench.schema import SCHEMA_VERSION, Row
from bertbench.variants import GRAPH

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
        use_mask=config.use_mask,
        packed=config.packed,
        mode=config.mode,
        cuda_graphs=config.cuda_graphs,
        compile=config.compile,
        peak_tflops=facts.peak_tflops,
        **facts.versions,
    )


def failed_rows(template: Row, names: list[str], failure: Failure) -> list[Row]:
    return [replace(template, attn_implementation=n, status=failure.status, detail=failure.detail) for n in names]


def point_rows(template: Row, models: TaskModels, result: PointResult, pending: list[str]) -> list[Row]:
    """One row per pending implementation, each carrying the baseline's figures beside its own."""
    common = replace(
        template,
        real_tokens=result.real_tokens,
        pad_fraction_real=result.pad_fraction_real,
        mask_passed=result.mask_passed,
        gflop=result.gflop,
        gflop_padded=result.gflop_padded,
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
    elif isinstance(base, Failure):
        common = replace(common, baseline_status=base.status)
    limit = tolerance(models.config.torch_dtype)
    rows = []
    for name in pending:
        if name in models.failed:
            failure = models.failed[name]
            rows.append(replace(common, attn_implementation=name, status=failure.status, detail=failure.detail))
            continue
        row = replace(common, attn_implementation=name, runs=models.runs_label(name))
        mine = result.variants["loop"][name]
        if isinstance(mine, Failure):
            rows.append(replace(row, status=mine.status, detail=mine.detail))
            continue
        row, notes = _loop_columns(row, mine, base, result, limit)
        for variant, outcomes in result.variants.items():
            if variant != "loop":
                row = _variant_columns(row, variant, outcomes.get(name), outcomes.get(BASELINE), notes, limit)
        rows.append(replace(row, detail="; ".join(notes)))
    return rows


def _loop_columns(row: Row, mine: Measured, base, result: PointResult, limit: float) -> tuple[Row, list[str]]:
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
        mem_mb=memory.allocated_mb,
        mem_mb_reserved=memory.reserved_mb,
        tokens_per_s=latency.per_second(result.real_tokens),
        tflops=tflops,
        pct_of_peak=100 * tflops / row.peak_tflops,
        status="ok",
    )
    notes = []
    if isinstance(base, Measured):
        base_latency, base_mem = base.outcome.latency, base.outcome.memory.allocated_mb
        row = replace(
            row,
            noisy=latency.noisy or base_latency.noisy,
            speedup_pct=_speedup(base_latency.median, latency.median),
            mem_saved_pct=(1 - memory.allocated_mb / base_mem) * 100 if base_mem else math.nan,
        )
    else:
        row = replace(row, noisy=latency.noisy)
        if isinstance(base, Failure):
            notes.append(f"baseline {row.baseline} {base.status}: {base.detail}")
    if mine.parity is not None:
        row = replace(row, max_abs_err=mine.parity.max_abs_err, rel_err=mine.parity.rel_err)
        if mine.parity.rel_err > limit:
            row = replace(row, status="mismatch")
            notes.append(f"relative error {mine.parity.rel_err:.3g} above tolerance {limit:g}")
    return row, notes


def _variant_columns(row: Row, variant: str, mine, base, notes: list[str], limit: float) -> Row:
    """The CUDA-graph or compiled columns of one implementation's row.

    A variant that failed (for the implementation or the baseline) leaves its columns empty
    and says why in `detail`; one whose logits disagree with the baseline's makes the row a
    mismatch.
    """
    label = GRAPH.label if variant == "graph" else "torch.compile"
    columns: dict = {}
    if isinstance(base, Measured):
        columns[f"latency_ms_{variant}_baseline"] = base.outcome.latency.median
        if variant == "compiled":
            columns["compile_s_baseline"] = base.outcome.setup_s
    elif isinstance(base, Failure):
        notes.append(f"{label} of the baseline {base.status}: {base.detail}")
    if isinstance(mine, Failure):
        notes.append(f"{label} {mine.status}: {mine.detail}")
    elif isinstance(mine, Measured):
        median = mine.outcome.latency.median
        columns[f"latency_ms_{variant}"] = median
        columns[f"attention_kernels_{variant}"] = mine.outcome.kernels
        if isinstance(base, Measured):
            columns[f"speedup_{variant}_pct"] = _speedup(base.outcome.latency.median, median)
        if variant == "graph":
            columns["launch_bound"] = row.latency_ms >= LAUNCH_BOUND_RATIO * median
        else:
            columns["compile_s"] = mine.outcome.setup_s
        if mine.parity is not None and mine.parity.rel_err > limit:
            columns["status"] = "mismatch"
            notes.append(f"{label}: relative error {mine.parity.rel_err:.3g} above tolerance {limit:g}")
    return replace(row, **columns)


def _speedup(baseline_ms: float, ms: float) -> float:
    return (baseline_ms / ms - 1) * 100
