"""The grid loop: load each task's models once, measure every pending grid point, append a
row per implementation as soon as it is measured.

Under torchrun each rank measures its share of the grid (distributed.shard) and appends to
its own part file; after a barrier rank 0 merges every part into <task>.csv in grid order.
Parts left by a crashed run count for --resume and are merged by the next run.

Around every round of a point's timed calls host.HostWatch probes how fast the host launches work;
each row records it against the run's typical speed, and the manifest the run's spread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bertbench.measure.clock import ClockWatch, for_device
from bertbench.measure.failures import frozen_heap
from bertbench.measure.host import HostWatch
from bertbench.measure.probes import matmul_tflops
from bertbench.model.holder import TaskModels
from bertbench.run import distributed
from bertbench.run.console import Progress
from bertbench.run.distributed import point_cost
from bertbench.run.environment import device_name, manifest, new_run_id, versions, write_manifest
from bertbench.run.point import measure_point
from bertbench.run.rows import RunFacts, failed_rows, point_rows, point_template
from bertbench.spec.config import GridPoint, RunConfig, rank_from_environment
from bertbench.spec.schema import Row, row_key
from bertbench.store import signals
from bertbench.store.results import ResultsFile, csv_path, finished_keys, merge_parts, part_path, part_paths, prepare


@dataclass
class RunStats:
    timed_s: float = 0.0  # wall time of the timed calls themselves
    points: int = 0


@frozen_heap()
def run(config: RunConfig, progress: bool = True, stats: RunStats | None = None) -> list[Row]:
    """Run every task of the config; returns the rows this process wrote (also appended to disk).

    progress=False, or config.quiet (--quiet), draws no bar and prints no progress line."""
    rank = rank_from_environment()
    device = config.torch_device
    distributed.start(rank, device)
    written: list[Row] = []
    stats = stats if stats is not None else RunStats()
    clock = for_device(device)
    try:
        watch = HostWatch(device)
        facts = start_run(config, rank, watch)
        for task in config.tasks:  # a crash's cut tail moved aside, an older layout migrated, before --resume reads
            for existing in (csv_path(config.output_dir, task), *part_paths(config.output_dir, task)):
                prepare(existing)
        todo = {task: pending_points(task, config, facts, rank) for task in config.tasks}
        costs = [point_cost(p) * (1 + len(pending)) for task in config.tasks for p, pending in todo[task]]
        with Progress(costs, enabled=progress and not config.quiet) as bar:  # its line ended on every path
            for task in config.tasks:
                written += _run_task(task, todo[task], config, facts, rank, (bar, watch, clock), stats)
        if rank.rank == 0:
            host = {**facts.manifest.get("host", {}), **host_summary(watch)}
            sm_clock = {"max_mhz": clock.max_mhz, "unavailable": clock.reason} if clock is not None else None
            write_manifest(config.output_dir, {**facts.manifest, "host": host, "sm_clock": sm_clock})
        distributed.barrier(rank)
        if rank.rank == 0:
            for task in config.tasks:
                merge_parts(config.output_dir, task, grid_order(config))
    finally:
        if clock is not None:
            clock.close()
        distributed.finish(rank)
    return written


def start_run(config: RunConfig, rank: distributed.Rank, watch: HostWatch | None = None) -> RunFacts:
    """The run's id (one for every torchrun rank), its manifest, and what every row shares."""
    device = config.torch_device
    run_id = distributed.shared(rank, new_run_id())
    peak = matmul_tflops(device, config.torch_dtype)
    record = manifest(config, run_id, peak, rank.world_size)
    if watch is not None:
        record["host"] = {"launch_us_at_start": watch.typical_us}
    if rank.rank == 0:
        write_manifest(config.output_dir, record)
    return RunFacts(
        run_id, config.model_name, config.baseline, device_name(device), config.dtype, peak, versions(device), record
    )


def host_summary(watch: HostWatch) -> dict:
    """The manifest's record of the host's launch speed over the run (host.py)."""
    ordered = sorted(watch.readings)
    return {
        "launch_us_typical": watch.typical_us,
        "launch_us_p10": ordered[len(ordered) // 10],
        "launch_us_p90": ordered[len(ordered) * 9 // 10],
        "probes": len(ordered),
    }


def pending_points(
    task: str, config: RunConfig, facts: RunFacts, rank: distributed.Rank
) -> list[tuple[GridPoint, list[str]]]:
    """The points this rank measures, each with the implementations not yet done there
    (--resume: see results.done_for_resume for what counts as done)."""
    done = finished_keys(config.output_dir, task, facts.versions) if config.resume else set()
    todo = []
    for point in config.points:
        template = point_template(facts, task, point, config)
        pending = [n for n in config.implementations if row_key(replace(template, attn_implementation=n)) not in done]
        if pending:
            todo.append((point, pending))
    if rank.distributed:
        todo = [todo[i] for i in distributed.shard([point for point, _ in todo], rank.world_size)[rank.rank]]
    return todo


def _run_task(
    task: str,
    todo: list[tuple[GridPoint, list[str]]],
    config: RunConfig,
    facts: RunFacts,
    rank: distributed.Rank,
    watchers: tuple[Progress, HostWatch, ClockWatch | None],
    stats: RunStats,
) -> list[Row]:
    if not todo:
        return []
    progress, watch, clock = watchers
    path = part_path(config.output_dir, task, rank.rank) if rank.distributed else csv_path(config.output_dir, task)
    results = ResultsFile(path)  # before the models load: a file that cannot be appended to is known at once
    models = TaskModels(task, config)
    written: list[Row] = []

    try:
        for point, pending in todo:
            signals.check()
            label = f"{task} batch {point.batch_size} x {point.max_seqlen}, pad {point.pad_fraction:g}"
            progress.now(label)
            template = point_template(facts, task, point, config)
            if models.baseline_failure is not None:
                rows = failed_rows(template, pending, models.baseline_failure)
            else:
                watch.start_point()
                result = measure_point(models, point, pending, watch.read, clock.sample if clock else None)
                watch.read()
                result.host_slowdown = watch.slowdown()
                stats.timed_s += result.timed_s
                rows = point_rows(template, models, result, pending)
            stats.points += 1
            for row in rows:
                row.timestamp = datetime.now(UTC).isoformat(timespec="seconds")
                results.append(row)
                written.append(row)
            progress.advance(label)
        signals.check()  # a signal whose exception a finaliser swallowed at the last point
    finally:
        results.close()
        models.close()
    return written


def grid_order(config: RunConfig) -> Callable[[dict], tuple]:
    """Sort key putting CSV rows in grid order, then in the order the implementations were named."""
    points = {(p.batch_size, p.max_seqlen, float(p.avg_seqlen)): i for i, p in enumerate(config.points)}
    names = {name: i for i, name in enumerate(config.implementations)}

    def order(row: dict) -> tuple:
        point = (int(row["batch_size"]), int(row["max_seqlen"]), float(row["avg_seqlen"]))
        return (points.get(point, len(points)), names.get(row["attn_implementation"], len(names)))

    return order
