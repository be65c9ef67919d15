"""--capacity: per task, implementation (the baseline too) and max seqlen of the grid, the
largest batch that runs without running out of memory; one probe is one forward, or one
training step with --mode train, on full sequences (no padding).

Each implementation is searched with only the baseline and itself loaded (no float32 copy),
so every figure carries the same resident weights. Rows go to <output-dir>/capacity/<task>.csv,
the file rewritten whole (a temporary file, then a rename) with the earlier rows kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import torch

from bertbench.measure.capacity import CapacityResult, MemoryModel, largest_batch, oom_probe
from bertbench.measure.failures import frozen_heap
from bertbench.model.holder import BASELINE, TaskModels
from bertbench.run.console import Progress
from bertbench.run.rows import RunFacts
from bertbench.spec.config import GridPoint, RunConfig
from bertbench.spec.figures import baseline_label
from bertbench.store.capacity_file import capacity_path, save
from bertbench.store.capacity_file import read_capacity as read_capacity  # re-exported

PRECISION = 1 / 32  # bisection stops within 3 % of the largest fit: probes at large batches take seconds


@frozen_heap()
def run_capacity(config: RunConfig, facts: RunFacts, limit: int) -> list[dict[str, str]]:
    """Search every task, implementation and seqlen; returns the rows written.

    On a terminal a tqdm bar counts the searches (each probes up to the device's memory, so
    they cost alike; the first, which loads the models, is left out of the rate) and names the
    batch being probed; elsewhere, or with --quiet, nothing is drawn."""
    seqlens = sorted({p.max_seqlen for p in config.points})
    keys = (BASELINE, *config.implementations)
    written = []
    searches = [1.0] * (len(config.tasks) * len(keys) * len(seqlens))
    with Progress(searches, enabled=not config.quiet, unit="searches", lines=False) as bar:
        for task in config.tasks:
            rows = []
            for key in keys:
                # two models resident for every search: the baseline and a model with its weights
                # (for the baseline's own search, a copy of it), so no figure carries fewer weights
                loaded = (config.baseline,) if key == BASELINE else (key,)
                models = TaskModels(task, replace(config, implementations=loaded), reference=False)
                name = config.baseline if key == BASELINE else key  # short: the bar fits in 80 columns
                try:
                    for seqlen in seqlens:
                        found = _search(models, key, seqlen, limit, _telling(bar, f"{task} {name}", seqlen))
                        rows.append(_row(facts, config, task, key, seqlen, found))
                        bar.advance(f"{task} {name} x {seqlen}")
                finally:
                    models.close()
            save(capacity_path(config.output_dir, task), rows)
            written += rows
    return written


def _telling(bar: Progress, what: str, seqlen: int) -> Callable[[int], None]:
    """What a search tells the bar of each probe: the batch being probed now."""
    return lambda batch: bar.now(f"{what}: batch {batch} x {seqlen}")


def _search(
    models: TaskModels, key: str, seqlen: int, limit: int, probing: Callable[[int], None]
) -> CapacityResult | str:
    """The search of one implementation at one seqlen; probing(batch) is told each batch probed."""
    if models.baseline_failure is not None:
        return models.baseline_failure.detail
    if key in models.failed:
        return models.failed[key].detail
    inference = models.config.mode == "inference"

    def call_for(batch: int):
        probing(batch)
        call = models.inputs(GridPoint(batch, seqlen, seqlen), [] if key == BASELINE else [key]).calls[key]

        def probe():
            with torch.inference_mode(inference):
                return call()

        return probe

    device = models.config.torch_device
    model = None
    if device.type == "cuda":  # what the allocator can reach: its own reserve and what is free
        free, _ = torch.cuda.mem_get_info(device)
        model = MemoryModel(free + torch.cuda.memory_reserved(device))
    guess = model.guess if model is not None else None
    return largest_batch(oom_probe(call_for, device, model), 1, limit, PRECISION, guess)


def _row(facts: RunFacts, config: RunConfig, task: str, key: str, seqlen: int, found) -> dict[str, str]:
    row = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": facts.run_id,
        "task": task,
        "model": facts.model,
        "attn_implementation": config.baseline if key == BASELINE else key,
        "baseline": str(key == BASELINE),
        "device": facts.device,
        "dtype": facts.dtype,
        "mode": config.mode,
        "packed": str(config.packed and key != BASELINE),
        "max_seqlen": str(seqlen),
        **{k: facts.versions.get(k, "") for k in ("bertbench", "torch", "transformers", "flash_attn")},
    }
    if isinstance(found, str):
        return {**row, "status": "unavailable", "detail": found, "largest_batch": "", "smallest_failure": ""}
    return {
        **row,
        "largest_batch": str(found.largest),
        "smallest_failure": "" if found.smallest_failure is None else str(found.smallest_failure),
        "probes": " ".join(f"{b}{'+' if ok else '-'}" for b, ok in found.probes),
        "status": found.status,
        "detail": found.detail,
    }


def summarize(rows: list[dict[str, str]]) -> str:
    lines = [f"{'task':<20} {'implementation':<18} {'seqlen':>6} {'largest batch':>13}  status"]
    for r in rows:
        name = baseline_label(r["attn_implementation"]) if r["baseline"] == "True" else r["attn_implementation"]
        lines.append(
            f"{r['task']:<20} {name:<18} {r['max_seqlen']:>6} {r['largest_batch'] or '-':>13}  {r['status']}"
            + (f" ({r['detail']})" if r["status"] != "ok" else "")
        )
    return "\n".join(lines)


def main(config: RunConfig) -> int:
    """The --capacity run: search, write, print the table."""
    from bertbench.run.sweep import start_run
    from bertbench.spec.config import rank_from_environment

    assert config.capacity_limit is not None
    print(f"largest batch per implementation and max seqlen, up to {config.capacity_limit}", flush=True)
    rows = run_capacity(config, start_run(config, rank_from_environment()), config.capacity_limit)
    print(summarize(rows))
    print(f"{len(rows)} rows written to {config.output_dir}/capacity/")
    return 0
