"""What a run says on the console: what is about to run, and a table of what it measured."""

from __future__ import annotations

import math

from bertbench.config import RunConfig
from bertbench.schema import Row


def summarize(rows: list[Row]) -> str:
    """A short table: every row for a small run, else medians per task, implementation and seqlen."""
    if not rows:
        return "no rows written"
    header = (
        f"{'task':<20} {'implementation':<18} {'batch':>5} {'seqlen':>6} {'pad':>5} {'base ms':>9} {'ms':>9} "
        f"{'speedup%':>9} {'mem saved%':>10}  status"
    )
    if len(rows) <= 16:
        lines = [
            f"{r['task']:<20} {r['attn_implementation']:<18} {r['batch_size']:>5} {r['max_seqlen']:>6} "
            f"{r['pad_fraction']:>5.2f} {_num(r['latency_ms_baseline']):>9} {_num(r['latency_ms']):>9} "
            f"{_num(r['speedup_pct'], '+.1f'):>9} {_num(r['mem_saved_pct'], '+.1f'):>10}  {r['status']}"
            + (f" ({r['detail']})" if r["detail"] else "")
            for r in rows
        ]
        return "\n".join([header, *lines])
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["attn_implementation"], r["max_seqlen"]), []).append(r)
    lines = [
        f"{'task':<20} {'implementation':<18} {'seqlen':>6} {'ok/points':>9} {'median speedup%':>16} "
        f"{'median mem saved%':>18}  other statuses"
    ]
    for (task, name, seqlen), group in groups.items():
        ok = [r for r in group if r["status"] == "ok"]
        others = sorted({r["status"] for r in group} - {"ok"})
        lines.append(
            f"{task:<20} {name:<18} {seqlen:>6} {f'{len(ok)}/{len(group)}':>9} "
            f"{_num(_median([r.speedup_pct for r in ok]), '+.1f'):>16} "
            f"{_num(_median([r.mem_saved_pct for r in ok]), '+.1f'):>18}  {', '.join(others)}"
        )
    return "\n".join(lines)


def _median(values: list[float | None]) -> float:
    values = sorted(v for v in values if v is not None and not math.isnan(v))
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _num(value, spec: str = ".2f") -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def describe(config: RunConfig) -> str:
    """What is about to run, so a CPU-sized default is never mistaken for the real grid."""
    lines = []
    if config.device == "cpu":
        note = "no CUDA GPU in use: running on the CPU"
        if config.cpu_sized:
            note += " with CPU-sized defaults (tiny preset, small grid, few batches; set flags to override)"
        lines.append(note)
    sizes = sorted({p.batch_size for p in config.points})
    seqlens = sorted({p.max_seqlen for p in config.points})
    pads = sorted({p.pad_fraction for p in config.points})
    plan = config.timing
    count = (
        f"{plan.num_batches} timed batches"
        if plan.budget_ms is None
        else f"{plan.min_batches}-{plan.num_batches} timed batches filling ~{plan.budget_ms:g} ms"
    )
    lines.append(
        f"tasks {', '.join(config.tasks)} | model {config.model_name} | {', '.join(config.implementations)} "
        f"vs {config.baseline} | {config.device} {config.dtype} | {len(config.points)} grid points: batch sizes "
        f"{sizes}, max seqlens {seqlens}, pad fractions {pads} | {plan.warmup} warm-up + {count} "
        f"-> {config.output_dir}/"
    )
    also = [what for what, on in (("CUDA-graph replays", config.cuda_graphs), ("torch.compile", config.compile)) if on]
    if also:
        lines.append(f"also timing every model with {' and '.join(also)} (inference only; set-up time kept out)")
    return "\n".join(lines)
