"""The grid loop: load each task's models once, measure every grid point, write a row each.

Nothing here stops a sweep: an implementation that cannot run, a backend that refuses the
inputs, or an out-of-memory point becomes a row with that status, and the loop goes on.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import torch
from tqdm import tqdm

from bertbench import distributed
from bertbench.batches import make_batch, pack, unpack
from bertbench.cli import GridPoint, RunConfig
from bertbench.measure import (
    CapturedGraph,
    NotCapturable,
    Timing,
    agreement,
    attention_kernels,
    capture_graph,
    forward_flops,
    latencies,
    matmul_tflops,
    repetitions,
    round_sizes,
    run_with_peak_memory,
    tolerance,
)
from bertbench.models import (
    NUM_LABELS,
    SDPA_BACKENDS,
    VARLEN,
    LoadedModel,
    evaluated,
    load_baseline,
    load_like,
    per_token,
    task_logits,
    training_step,
    unavailable_reason,
    with_prepared_mask,
)
from bertbench.results import (
    ResultsFile,
    csv_path,
    device_name,
    environment,
    finished_keys,
    merge_parts,
    part_path,
    row_key,
)

INTERLEAVE_ROUNDS = 5
MIN_ROUND_CALLS = 10
LAUNCH_BOUND_RATIO = 1.5  # loop latency / graph latency at which a row is flagged launch-bound
VARIANT_LABELS = {"graph": "cuda graph", "compiled": "torch.compile"}
BASELINE = "(baseline)"  # the baseline's key among a point's models; no implementation is named so


@dataclass
class Measurement:
    timing: Timing
    mem_mb: float
    logits: list[torch.Tensor]
    kernels: str  # fused attention operators that ran (measure.attention_kernels)


@dataclass
class Variant:
    """A model timed another way: replayed from a CUDA graph, or compiled."""

    timing: Timing
    logits: list[torch.Tensor]
    kernels: str
    setup_s: float  # capture or compile wall time, never inside the latency


@dataclass(frozen=True)
class Failure:
    status: str  # oom, unavailable or error
    detail: str


def time_interleaved(
    calls: dict[str, Callable[[], object]], config: RunConfig, failures: dict[str, Failure]
) -> dict[str, Timing]:
    """Warm up and time every call, interleaved; a call that raises goes into `failures`.

    The timed calls of each model are split into up to INTERLEAVE_ROUNDS rounds of at least
    MIN_ROUND_CALLS consecutive calls, and each round visits every model in turn, so a slow
    spell of the host or the GPU falls on all models alike instead of on one measurement.
    Rounds are kept long because below batch ~16 the host sets the latency and a
    synchronisation every few calls slows it (by up to 20 % on the H100:
    scripts/launch_probe.py, docs/validation/).
    """
    device = config.torch_device
    timed: dict[str, list[float]] = {}
    rounds: dict[str, list[int]] = {}

    def attempt(name: str, action: Callable[..., None], *args) -> None:
        try:
            action(name, *args)
            return
        except Exception as e:
            failures[name] = Failure(failure_status(e), one_line(e))
        timed.pop(name, None)
        release_memory(device)  # outside the except block, whose frames held the failed tensors

    def warm_up(name: str) -> None:
        warm = latencies(calls[name], device, config.warmup)
        count = config.num_batches
        if warm:  # the median: the first warm-up call carries one-off set-up costs
            count = repetitions(statistics.median(warm), count, config.min_batches, config.time_budget_ms)
        rounds[name] = round_sizes(count, max(1, min(INTERLEAVE_ROUNDS, count // MIN_ROUND_CALLS)))
        timed[name] = []

    def time_round(name: str, index: int) -> None:
        if index < len(rounds[name]):
            timed[name].extend(latencies(calls[name], device, rounds[name][index]))

    for name in calls:
        attempt(name, warm_up)
    for index in range(INTERLEAVE_ROUNDS):
        for name in list(timed):
            attempt(name, time_round, index)
    return {name: Timing(tuple(values)) for name, values in timed.items()}


def measure_point(
    calls: dict[str, Callable[[], object]],
    task: str,
    config: RunConfig,
    parity_calls: dict[str, Callable[[], object]] | None = None,
) -> dict[str, Measurement | Failure]:
    """Time every model on one batch, interleaved, then run each once for peak memory and
    logits, and each implementation once more under the profiler for the attention
    operators it runs.

    A model that fails is left out of what follows and reported as a Failure. In train
    mode the logits for parity come from `parity_calls` (the same models without dropout),
    not from the timed training steps.
    """
    device = config.torch_device
    results: dict[str, Measurement | Failure] = {}
    with torch.inference_mode(config.mode == "inference"):
        timings = time_interleaved(calls, config, results)
        for name, timing in timings.items():
            try:
                output, mem_mb = run_with_peak_memory(calls[name], device)
                kernels = ""
                if name != BASELINE:  # no column holds the baseline's
                    del output
                    output, kernels = attention_kernels(calls[name])
                if parity_calls is not None:
                    del output
                    output = parity_calls[name]()
                results[name] = Measurement(timing, mem_mb, task_logits(task, output), kernels)
                continue
            except Exception as e:
                results[name] = Failure(failure_status(e), one_line(e))
            release_memory(device)  # outside the except block, whose frames held the failed tensors
    return results


def measure_graphs(
    calls: dict[str, Callable[[], object]], task: str, config: RunConfig
) -> dict[str, Variant | Failure]:
    """Capture every model's call in a CUDA graph, then time the replays, interleaved.

    A call that synchronises with the host (an `.item()` or a data-dependent branch, e.g.
    flash_attention_2's unpadding of a masked batch) is refused before its capture
    (measure.capture_graph); that model's graph is then a Failure and the others go on.
    """
    device = config.torch_device
    results: dict[str, Variant | Failure] = {}
    graphs: dict[str, CapturedGraph] = {}
    with torch.inference_mode():
        for name, call in calls.items():
            try:
                graphs[name] = capture_graph(call, device)
                continue
            except Exception as e:
                detail = str(e) if isinstance(e, NotCapturable) else f"capture failed: {one_line(e)}"
                results[name] = Failure(failure_status(e), detail)
            release_memory(device)
        timings = time_interleaved({name: g.graph.replay for name, g in graphs.items()}, config, results)
        for name, timing in timings.items():  # the last replay left each graph's output in place
            graph = graphs[name]
            logits = [t.clone() for t in task_logits(task, graph.output)]
            results[name] = Variant(timing, logits, graph.kernels, graph.seconds)
    del graphs
    release_memory(device)
    return results


def measure_compiled(
    calls: dict[str, Callable[[], object]], task: str, config: RunConfig
) -> dict[str, Variant | Failure]:
    """torch.compile every model's call for this batch's shapes, then time them, interleaved.

    Compilation is timed on its own (the first call: tracing, code generation and one run)
    and kept out of the latency. Dynamo's caches are cleared per point, and hitting its
    recompile limit raises instead of silently running the uncompiled code.
    """
    device = config.torch_device
    results: dict[str, Variant | Failure] = {}
    compiled: dict[str, Callable[[], object]] = {}
    seconds: dict[str, float] = {}
    torch._dynamo.reset()
    with torch.inference_mode(), torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        for name, call in calls.items():
            try:
                fn = torch.compile(call, dynamic=False)
                start = time.perf_counter()
                fn()
                synchronize(device)
                seconds[name], compiled[name] = time.perf_counter() - start, fn
                continue
            except Exception as e:
                results[name] = Failure(failure_status(e), f"compile failed: {compile_failure(e)}")
            release_memory(device)
        timings = time_interleaved(compiled, config, results)
        for name, timing in timings.items():
            try:
                output, kernels = attention_kernels(compiled[name])
                results[name] = Variant(timing, task_logits(task, output), kernels, seconds[name])
            except Exception as e:
                results[name] = Failure(failure_status(e), one_line(e))
    del compiled
    torch._dynamo.reset()
    release_memory(device)
    return results


def compile_failure(error: BaseException) -> str:
    if type(error).__name__ == "FailOnRecompileLimitHit":
        limit = torch._dynamo.config.recompile_limit
        return f"recompiled more than {limit} times (beyond that it would silently run uncompiled)"
    return one_line(error)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    return "error"


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def runs_label(loaded: LoadedModel) -> str:
    backend = SDPA_BACKENDS.get(loaded.name)
    return f"{loaded.runs}[{backend.name}]" if backend is not None else loaded.runs


class TaskSweep:
    """One task: its models, loaded once, and the rows of every grid point."""

    def __init__(self, task: str, config: RunConfig, common: dict):
        self.task, self.config, self.common = task, config, common
        device, dtype = config.torch_device, config.torch_dtype
        self.failed: dict[str, tuple[str, str]] = {}  # implementation -> (status, detail)
        self.models: dict[str, LoadedModel] = {}
        self.baseline: LoadedModel | None = None
        self.baseline_failure = ("", "")
        try:
            self.baseline = load_baseline(
                task, config.baseline, config.model_size, config.model_path, device, dtype, config.seed
            )
        except Exception as e:
            self.baseline_failure = ("unavailable", f"baseline {config.baseline}: {one_line(e)}")
            return
        if config.mode == "train":
            self.baseline.model.train()
        for name in config.implementations:
            reason = unavailable_reason(name, device)
            if reason is None and config.packed and name not in VARLEN:
                reason = f"{name} has no variable-length path; --packed runs {' and '.join(VARLEN)}"
            if reason is not None:
                self.failed[name] = ("unavailable", reason)
                continue
            try:
                self.models[name] = load_like(self.baseline, name, device, dtype)
                self.models[name].model.train(config.mode == "train")
            except Exception as e:
                self.failed[name] = ("unavailable", one_line(e))

    def point_rows(self, point: GridPoint, pending: list[str]) -> list[dict]:
        """Measure the baseline and each pending implementation on one batch."""
        config = self.config
        base = {**self.common, "task": self.task, **_point_columns(point, config)}
        if self.baseline is None:
            status, detail = self.baseline_failure
            return [{**base, "attn_implementation": n, "status": status, "detail": detail} for n in pending]
        model_config = self.baseline.model.config
        batch = make_batch(
            self.task,
            point.batch_size,
            point.max_seqlen,
            point.avg_seqlen,
            config.seqlen_stdev,
            model_config.vocab_size,
            NUM_LABELS[self.task],
            config.use_mask,
            config.seed,
            config.torch_device,
        )
        lengths = batch.lengths.tolist()
        passes = 3 if config.mode == "train" else 1  # the backward's matmuls are twice the forward's
        gflop = passes * forward_flops(model_config, self.task, lengths) / 1e9
        base.update(
            real_tokens=sum(lengths),
            gflop=gflop,
            gflop_padded=passes * forward_flops(model_config, self.task, lengths, point.max_seqlen) / 1e9,
        )
        inputs = batch.model_inputs()
        packed = pack(batch) if config.packed else None
        models = {BASELINE: self.baseline, **{n: self.models[n] for n in pending if n not in self.failed}}
        forwards = {
            key: m.forward_packed(packed) if packed is not None and key != BASELINE else m.forward(inputs)
            for key, m in models.items()
        }
        if config.mode == "train":
            calls = {key: training_step(models[key].model, forward) for key, forward in forwards.items()}
            parity = {key: evaluated(models[key].model, forward) for key, forward in forwards.items()}
            results = measure_point(calls, self.task, config, parity)
        else:
            results = measure_point(forwards, self.task, config)
        reference = results.pop(BASELINE)
        if isinstance(reference, Failure):
            detail = f"baseline {config.baseline}: {reference.detail}"
            return [{**base, "attn_implementation": n, "status": reference.status, "detail": detail} for n in pending]
        base.update(
            latency_ms_baseline=reference.timing.median,
            num_batches_baseline=len(reference.timing.latencies_ms),
            mem_mb_baseline=reference.mem_mb,
            tflops_baseline=gflop / reference.timing.median,
        )
        measured = {key: forwards[key] for key in (BASELINE, *results) if not isinstance(results.get(key), Failure)}
        variants = {}
        if config.cuda_graphs:
            graphed = {  # a padded call is captured with its mask prepared first (models.with_prepared_mask)
                key: forward
                if packed is not None and key != BASELINE
                else models[key].forward(with_prepared_mask(models[key].model, inputs))
                for key, forward in measured.items()
            }
            variants["graph"] = measure_graphs(graphed, self.task, config)
        if config.compile:
            variants["compiled"] = measure_compiled(measured, self.task, config)
        real = batch.attention_mask.bool() if per_token(self.task) else None
        rows = []
        for name in pending:
            row = {**base, "attn_implementation": name}
            if name in self.failed:
                row["status"], row["detail"] = self.failed[name]
            else:
                row["runs"] = runs_label(self.models[name])
                result = results[name]
                if isinstance(result, Failure):
                    row.update(status=result.status, detail=result.detail)
                else:
                    row.update(self._compare(result, reference, base["real_tokens"], real, gflop))
                    row.update(self._variants(name, variants, reference, row, real))
            rows.append(row)
        return rows

    def _agreement(self, logits: list[torch.Tensor], reference: Measurement, real) -> tuple[float, float]:
        """Max absolute and relative error against the baseline, on real tokens (packed logits unpacked)."""
        if self.config.packed and real is not None:
            logits = [unpack(values, real) for values in logits]
        return agreement(logits, reference.logits, real)

    def _compare(self, result: Measurement, reference: Measurement, real_tokens: int, real, gflop: float) -> dict:
        max_abs, rel_err = self._agreement(result.logits, reference, real)
        latency = result.timing.median
        limit = tolerance(self.config.torch_dtype)
        within = rel_err <= limit
        tflops = gflop / latency
        return {
            "attention_kernels": result.kernels,
            "num_batches": len(result.timing.latencies_ms),
            "latency_ms": latency,
            "latency_ms_mean": result.timing.mean,
            "latency_ms_p10": result.timing.quantile(0.1),
            "latency_ms_p90": result.timing.quantile(0.9),
            "speedup_pct": (reference.timing.median / latency - 1) * 100,
            "mem_mb": result.mem_mb,
            "mem_saved_pct": (1 - result.mem_mb / reference.mem_mb) * 100 if reference.mem_mb else math.nan,
            "tokens_per_s": real_tokens / (latency * 1e-3),
            "tflops": tflops,
            "pct_of_peak": 100 * tflops / self.common["peak_tflops"],
            "max_abs_err": max_abs,
            "rel_err": rel_err,
            "status": "ok" if within else "mismatch",
            "detail": "" if within else f"relative error {rel_err:.3g} above tolerance {limit:g}",
        }

    def _variants(self, name: str, variants: dict, reference: Measurement, row: dict, real) -> dict:
        """The CUDA-graph and compiled columns of one implementation's row.

        A variant that failed (for the implementation or the baseline) leaves its columns
        empty and says why in `detail`; one whose logits disagree with the baseline's makes
        the row a mismatch.
        """
        columns, notes = {}, [row["detail"]] if row["detail"] else []
        limit = tolerance(self.config.torch_dtype)
        for kind, results in variants.items():
            label = VARIANT_LABELS[kind]
            mine, baseline = results.get(name), results.get(BASELINE)
            if isinstance(baseline, Variant):
                columns[f"latency_ms_{kind}_baseline"] = baseline.timing.median
                if kind == "compiled":
                    columns["compile_s_baseline"] = baseline.setup_s
            elif isinstance(baseline, Failure):
                notes.append(f"{label} of the baseline {baseline.status}: {baseline.detail}")
            if isinstance(mine, Failure):
                notes.append(f"{label} {mine.status}: {mine.detail}")
                continue
            columns[f"latency_ms_{kind}"] = mine.timing.median
            columns[f"attention_kernels_{kind}"] = mine.kernels
            if kind == "graph":
                columns["launch_bound"] = row["latency_ms"] >= LAUNCH_BOUND_RATIO * mine.timing.median
            else:
                columns["compile_s"] = mine.setup_s
            _, rel_err = self._agreement(mine.logits, reference, real)
            if rel_err > limit:
                columns["status"] = "mismatch"
                notes.append(f"{label}: relative error {rel_err:.3g} above tolerance {limit:g}")
        columns["detail"] = "; ".join(notes)
        return columns


def _point_columns(point: GridPoint, config: RunConfig) -> dict:
    return {
        "batch_size": point.batch_size,
        "max_seqlen": point.max_seqlen,
        "avg_seqlen": point.avg_seqlen,
        "pad_fraction": point.pad_fraction,
        "seqlen_stdev": config.seqlen_stdev,
        "use_mask": config.use_mask,
        "packed": config.packed,
        "mode": config.mode,
        "cuda_graphs": config.cuda_graphs,
        "compile": config.compile,
    }


def run(config: RunConfig, progress: bool = True) -> list[dict]:
    """Run every task of the config; returns the rows this process wrote (also appended to disk).

    Under torchrun each rank measures its share of the grid (distributed.shard) and appends
    to its own part file; after a barrier rank 0 merges every part into <task>.csv in grid
    order. Parts left by a crashed run count for --resume and are merged by the next run.
    """
    rank = distributed.from_environment()
    device = config.torch_device
    distributed.start(rank, device)
    common = {
        "run_id": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "model": config.model_name,
        "baseline": config.baseline,
        "device": device_name(device),
        "dtype": config.dtype,
        "peak_tflops": matmul_tflops(device, config.torch_dtype),
        **environment(device),
    }
    written: list[dict] = []
    try:
        for task in config.tasks:
            written += _run_task(task, config, common, rank, progress)
        distributed.barrier(rank)
        if rank.rank == 0:
            for task in config.tasks:
                merge_parts(config.output_dir, task, _grid_order(config))
    finally:
        distributed.finish(rank)
    return written


def _run_task(task: str, config: RunConfig, common: dict, rank: distributed.Rank, progress: bool) -> list[dict]:
    done = finished_keys(config.output_dir, task) if config.resume else set()
    todo = []
    for point in config.points:
        keys = {**common, "task": task, **_point_columns(point, config)}
        pending = [n for n in config.implementations if row_key({**keys, "attn_implementation": n}) not in done]
        if pending:
            todo.append((point, pending))
    if rank.distributed:
        todo = [todo[i] for i in distributed.shard([point for point, _ in todo], rank.world_size)[rank.rank]]
    if not todo:
        return []
    path = part_path(config.output_dir, task, rank.rank) if rank.distributed else csv_path(config.output_dir, task)
    sweep = TaskSweep(task, config, common)
    results = ResultsFile(path)
    written = []
    try:
        for point, pending in tqdm(todo, desc=task, unit="point", disable=None if progress else True, leave=False):
            for row in sweep.point_rows(point, pending):
                row["timestamp"] = datetime.now(UTC).isoformat(timespec="seconds")
                results.append(row)
                written.append(row)
    finally:
        results.close()
        del sweep
        release_memory(config.torch_device)
    return written


def _grid_order(config: RunConfig) -> Callable[[dict], tuple]:
    """Sort key putting CSV rows in grid order, then in the order the implementations were named."""
    points = {(p.batch_size, p.max_seqlen, float(p.avg_seqlen)): i for i, p in enumerate(config.points)}
    names = {name: i for i, name in enumerate(config.implementations)}

    def order(row: dict) -> tuple:
        point = (int(row["batch_size"]), int(row["max_seqlen"]), float(row["avg_seqlen"]))
        return (points.get(point, len(points)), names.get(row["attn_implementation"], len(names)))

    return order


def summarize(rows: list[dict]) -> str:
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
            f"{r['pad_fraction']:>5.2f} {_num(r.get('latency_ms_baseline')):>9} {_num(r.get('latency_ms')):>9} "
            f"{_num(r.get('speedup_pct'), '+.1f'):>9} {_num(r.get('mem_saved_pct'), '+.1f'):>10}  {r['status']}"
            + (f" ({r['detail']})" if r.get("detail") else "")
            for r in rows
        ]
        return "\n".join([header, *lines])
    groups: dict[tuple, list[dict]] = {}
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
            f"{_num(_median([r['speedup_pct'] for r in ok]), '+.1f'):>16} "
            f"{_num(_median([r['mem_saved_pct'] for r in ok]), '+.1f'):>18}  {', '.join(others)}"
        )
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if not math.isnan(v))
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
    count = (
        f"{config.num_batches} timed batches"
        if config.time_budget_ms is None
        else f"{config.min_batches}-{config.num_batches} timed batches filling ~{config.time_budget_ms:g} ms"
    )
    lines.append(
        f"tasks {', '.join(config.tasks)} | model {config.model_name} | {', '.join(config.implementations)} "
        f"vs {config.baseline} | {config.device} {config.dtype} | {len(config.points)} grid points: batch sizes "
        f"{sizes}, max seqlens {seqlens}, pad fractions {pads} | {config.warmup} warm-up + {count} "
        f"-> {config.output_dir}/"
    )
    also = [what for what, on in (("CUDA-graph replays", config.cuda_graphs), ("torch.compile", config.compile)) if on]
    if also:
        lines.append(f"also timing every model with {' and '.join(also)} (inference only; set-up time kept out)")
    return "\n".join(lines)
