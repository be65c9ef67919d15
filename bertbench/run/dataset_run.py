"""--dataset: a whole-dataset pass. Per task, the same sequences (model.corpus) go through the
baseline and each implementation once per batching strategy (model.strategies), and each whole
pass is timed (measure.passes); rows in <output-dir>/dataset/<task>.csv (store.dataset_file).

For each implementation x strategy: one untimed pass first, which meets every batch shape (warm-up)
and compares each sequence's task logits with the baseline's pad-max pass, the reference every
other is timed and compared against (run even where --strategies leaves pad-max out); then
--passes timed passes of each, interleaved; on a GPU the peak allocated memory of a pass, and its
GPU time from one profiled pass (measure.gpu_time). The packed strategy runs only implementations
with a varlen route (registry Implementation.packed); the others get an unavailable row.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import torch
from transformers import PretrainedConfig

from bertbench.attention import registry
from bertbench.measure.failures import Failure, frozen_heap, release_memory, return_cached
from bertbench.measure.gpu_time import GpuTimeUnavailable, gpu_times
from bertbench.measure.passes import PassTimes, time_passes
from bertbench.measure.probes import tolerance
from bertbench.model import strategies
from bertbench.model.batches import Batch, PackedBatch
from bertbench.model.corpus import Corpus, batch_of, draw_lengths, random_corpus, text_corpus
from bertbench.model.families import pad_id
from bertbench.model.heads import LoadedModel
from bertbench.model.holder import BASELINE, TaskModels
from bertbench.model.lengths import read_texts, token_ids_of
from bertbench.model.strategies import Planned, Sizes
from bertbench.run.dataset_graphs import NO_GPU, GraphOutcome, graph_pass
from bertbench.run.dataset_parity import Agreement, parity_pass
from bertbench.run.rows import RunFacts
from bertbench.spec.catalog import NUM_LABELS
from bertbench.spec.config import DatasetPlan, RunConfig
from bertbench.spec.dataset_schema import DATASET_SCHEMA_VERSION, GPU_AND_PASS, REFERENCE_STRATEGY, DatasetRow, fastest
from bertbench.spec.figures import MEASURED, baseline_label, busy_pct, per_second, speedup_pct
from bertbench.store import signals
from bertbench.store.dataset_file import append, dataset_path

MLM_PARITY_COLUMNS = 64  # mlm: each token's logits at this many vocabulary ids (seeded) are compared
Combo = tuple[str, str]  # (BASELINE or an implementation, strategy)


@dataclass
class Outcome:
    """One implementation x strategy: what its passes gave, or why it has none."""

    batches: int = 0
    computed_tokens: int = 0
    times: PassTimes | None = None
    gpu_s: float | None = None
    agreement: Agreement | None = None
    failure: Failure | None = None
    notes: list[str] = field(default_factory=list)
    graph: GraphOutcome | None = None  # --cuda-graphs: its graph pass, once the loop's passes are timed


def plans(corpus: Corpus, plan: DatasetPlan, batch_size: int, max_seqlen: int) -> dict[str, list[Planned]]:
    """Each strategy's batches; the baseline's reference strategy always among them."""
    sizes = Sizes(batch_size, max_seqlen, plan.tokens_per_batch)
    names = dict.fromkeys((*plan.strategies, REFERENCE_STRATEGY))
    return {name: strategies.get(name).plan(corpus.lengths, sizes) for name in names}


def corpus_of(config: RunConfig, model_config: PretrainedConfig) -> Corpus:
    """The pass's sequences: the file's texts through the checkpoint's tokenizer where there are texts
    and a checkpoint, else random token ids of the drawn (or the file's) lengths; padded with the
    model's pad id."""
    assert config.dataset is not None
    (point,) = config.points
    n = config.dataset.sequences
    texts = read_texts(config.lengths_file) if config.lengths_file is not None else None
    if texts is not None and config.model_path is not None:
        ids = token_ids_of(config.model_path, texts[:n], point.max_seqlen)
        return text_corpus(ids, config.torch_device, pad_id(model_config))
    lengths = draw_lengths(n, point.max_seqlen, point.avg_seqlen, config.seqlen_stdev, config.seed,
                           config.length_distribution, config.lengths)  # fmt: skip
    return random_corpus(lengths, model_config.vocab_size, config.seed, config.torch_device, pad_id(model_config))


def _calls(model: LoadedModel, batches: list[Batch | PackedBatch]) -> list[Callable[[], object]]:
    return [model.forward_packed(b) if isinstance(b, PackedBatch) else model.forward(b.model_inputs()) for b in batches]


def _whole_pass(calls: list[Callable[[], object]]) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for call in calls:
                call()

    return run


def _availability(models: TaskModels, key: str, strategy: str) -> Failure | None:
    name = models.config.baseline if key == BASELINE else key
    if key != BASELINE and key in models.failed:
        return models.failed[key]
    if strategies.get(strategy).packed and not registry.get(name).packed:
        return Failure("unavailable", f"{name} has no variable-length path; packed runs "
                                      f"{', '.join(registry.packed_names())}")  # fmt: skip
    return None


def run_task(models: TaskModels, corpus: Corpus) -> dict[Combo, Outcome]:
    """Every implementation x strategy of one task on one corpus."""
    config, task = models.config, models.task
    assert config.dataset is not None and models.baseline is not None
    (point,) = config.points
    device = config.torch_device
    planned = plans(corpus, config.dataset, point.batch_size, point.max_seqlen)
    batches = {s: [batch_of(corpus, p, task, NUM_LABELS[task], config.use_mask, config.seed) for p in ps]
               for s, ps in planned.items()}  # fmt: skip
    loaded = {BASELINE: models.baseline, **models.models}
    keys = (BASELINE, *config.implementations)
    wanted = [(BASELINE, REFERENCE_STRATEGY)] + [(k, s) for k in keys for s in config.dataset.strategies]
    outcomes: dict[Combo, Outcome] = {}
    passes: dict[Combo, Callable[[], None]] = {}
    calls: dict[Combo, list[Callable[[], object]]] = {}
    for combo in dict.fromkeys(wanted):
        key, strategy = combo
        outcome = outcomes[combo] = Outcome(len(planned[strategy]),
                                            sum(p.positions(corpus.lengths) for p in planned[strategy]))  # fmt: skip
        outcome.failure = _availability(models, key, strategy)
        if outcome.failure is None:
            calls[combo] = _calls(loaded[key], batches[strategy])
            passes[combo] = _whole_pass(calls[combo])
    columns = None
    if task == "mlm":
        generator = torch.Generator().manual_seed(config.seed)
        vocab = models.model_config.vocab_size
        columns = torch.randperm(vocab, generator=generator)[: min(MLM_PARITY_COLUMNS, vocab)].to(device)
    reference: dict[int, list[torch.Tensor]] = {}
    for combo in list(passes):  # the untimed pass: every shape met once, each sequence's logits compared
        signals.check()
        try:
            strategy = combo[1]
            outcomes[combo].agreement = parity_pass(task, calls[combo], batches[strategy], planned[strategy], columns,
                                                     reference)  # fmt: skip
        except Exception as e:
            outcomes[combo].failure = Failure.of(e)
        if outcomes[combo].failure is not None:
            del passes[combo]
            release_memory(device)
        elif combo == (BASELINE, REFERENCE_STRATEGY):
            outcomes[combo].agreement = None  # the reference itself
        return_cached(device)
    if (BASELINE, REFERENCE_STRATEGY) not in passes:
        for outcome in outcomes.values():
            outcome.agreement = None
    timed, failures = time_passes({c: passes[c] for c in passes}, device, config.dataset.passes)
    for combo, times in timed.items():
        outcomes[combo].times = times
    for combo, failure in failures.items():
        outcomes[combo].failure = failure
    _gpu_time(outcomes, {c: passes[c] for c in timed}, config)
    if config.cuda_graphs:
        compared = (BASELINE, REFERENCE_STRATEGY) in passes  # a reference to compare the replays with

        def parity(strategy: str, replays: list[Callable[[], object]]) -> Agreement | None:
            if not compared:
                return None
            return parity_pass(task, replays, batches[strategy], planned[strategy], columns, reference)

        _graph_passes(outcomes, list(timed), loaded, batches, config, parity)
    return outcomes


def _graph_passes(
    outcomes: dict[Combo, Outcome],
    combos: list[Combo],
    loaded: dict[str, LoadedModel],
    batches: dict[str, list[Batch | PackedBatch]],
    config: RunConfig,
    parity: Callable[[str, list[Callable[[], object]]], Agreement | None],
) -> None:
    """Each combination's graph pass, one at a time, after every loop pass is timed (none on the CPU)."""
    assert config.dataset is not None
    device = config.torch_device
    for key, strategy in combos:
        signals.check()
        if device.type != "cuda":
            outcomes[(key, strategy)].graph = GraphOutcome(failure=NO_GPU)
            continue
        compare = functools.partial(parity, strategy)
        outcomes[(key, strategy)].graph = graph_pass(loaded[key], batches[strategy], config.dataset.tokens_per_batch,
                                                     device, config.dataset.passes, compare)  # fmt: skip


def _gpu_time(outcomes: dict[Combo, Outcome], passes: dict[Combo, Callable[[], None]], config: RunConfig) -> None:
    """One profiled pass of each (GPU only): the sum of its kernels' durations."""
    if config.timing.gpu_calls <= 0 or config.torch_device.type != "cuda" or not passes:
        return
    labels = {f"{k}|{s}": (k, s) for k, s in passes}
    try:
        found = gpu_times({label: passes[combo] for label, combo in labels.items()}, config.torch_device, 1)
    except GpuTimeUnavailable as e:
        for combo in passes:
            outcomes[combo].notes.append(f"no GPU time ({e})")
        return
    for label, gpu in found.items():
        outcomes[labels[label]].gpu_s = gpu.median / 1e3


def rows_of(
    outcomes: dict[Combo, Outcome], facts: RunFacts, config: RunConfig, task: str, corpus: Corpus
) -> list[DatasetRow]:
    assert config.dataset is not None
    (point,) = config.points
    reference = outcomes.get((BASELINE, REFERENCE_STRATEGY))
    reference_s = reference.times.median if reference is not None and reference.times is not None else None
    reference_gpu_s = reference.gpu_s if reference is not None and reference.times is not None else None
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for (key, strategy), o in outcomes.items():
        row = DatasetRow(
            timestamp=stamp,
            run_id=facts.run_id,
            schema_version=DATASET_SCHEMA_VERSION,
            task=task,
            model=facts.model,
            attn_implementation=config.baseline if key == BASELINE else key,
            is_baseline=key == BASELINE,
            baseline=config.baseline,
            strategy=strategy,
            device=facts.device,
            dtype=facts.dtype,
            sequences=len(corpus.lengths),
            batch_size=point.batch_size,
            max_seqlen=point.max_seqlen,
            tokens_per_batch=config.dataset.tokens_per_batch,
            length_distribution=config.length_distribution,
            lengths_sha256=config.lengths_sha256,
            token_ids=corpus.source,
            seed=config.seed,
            batches=o.batches,
            real_tokens=corpus.real_tokens,
            computed_tokens=o.computed_tokens,
            padded_share=1 - corpus.real_tokens / o.computed_tokens,
            passes=config.dataset.passes,
            **{k: facts.versions.get(k, "") for k in ("bertbench", "torch", "transformers", "flash_attn")},
        )
        if o.failure is not None:
            row.status, row.detail = o.failure.status, o.failure.detail
            rows.append(row)
            continue
        assert o.times is not None
        total = o.times.median
        row.total_s, row.total_s_min, row.total_s_max = total, min(o.times.seconds), max(o.times.seconds)
        row.tokens_per_s = per_second(corpus.real_tokens, total * 1e3)
        row.speedup_pct = speedup_pct(reference_s, total) if reference_s is not None else None
        row.gpu_s, row.peak_mem_mb = o.gpu_s, o.times.peak_mb
        if o.gpu_s:
            row.gpu_busy_pct = busy_pct(o.gpu_s, total)
            row.speedup_gpu_pct = speedup_pct(reference_gpu_s, o.gpu_s) if reference_gpu_s else None
        row.status = "ok"
        notes = list(o.notes)
        if o.agreement is not None:
            agreement = o.agreement
            row.max_abs_err, row.rel_err, row.parity_values = agreement.max_abs, agreement.rel_err, agreement.values
            if row.rel_err > tolerance(config.torch_dtype):
                row.status = "mismatch"
                notes.insert(0, f"relative error {row.rel_err:.3g} above tolerance {tolerance(config.torch_dtype):g}")
        elif (key, strategy) != (BASELINE, REFERENCE_STRATEGY):
            notes.append(f"no parity: the baseline's {REFERENCE_STRATEGY} pass did not run")
        row.detail = "; ".join(notes)
        if o.graph is not None:
            _graph_figures(row, o.graph, corpus.real_tokens, tolerance(config.torch_dtype))
        rows.append(row)
    return rows


def _graph_figures(row: DatasetRow, graph: GraphOutcome, real_tokens: int, limit: float) -> None:
    """The graph pass's columns of a row whose loop pass was timed (row.total_s)."""
    row.graphs = graph.graphs or None
    row.graph_capture_s = graph.capture_s if graph.graphs else None
    if graph.failure is not None or graph.times is None:
        failure = graph.failure or Failure("error", "the graph pass was not timed")
        row.graph_note = f"{failure.status}: {failure.detail}"
        return
    assert row.total_s is not None
    row.graph_total_s = graph.times.median
    row.graph_tokens_per_s = per_second(real_tokens, row.graph_total_s * 1e3)
    row.graph_gain_pct = speedup_pct(row.total_s, row.graph_total_s)
    row.graph_note = "ok"
    if graph.agreement is not None:
        row.graph_max_abs_err, row.graph_rel_err = graph.agreement.max_abs, graph.agreement.rel_err
        if row.graph_rel_err > limit:
            row.graph_note = f"mismatch: relative error {row.graph_rel_err:.3g} above tolerance {limit:g}"


@frozen_heap()
def run_dataset(config: RunConfig, facts: RunFacts) -> list[DatasetRow]:
    """Every task's pass; each task's rows appended as soon as it is done. Returns the rows written."""
    written: list[DatasetRow] = []
    for task in config.tasks:
        models = TaskModels(task, config, reference=False)
        try:
            if models.baseline_failure is not None:
                rows = _failed(models.baseline_failure, facts, config, task)
            else:
                corpus = corpus_of(config, models.model_config)
                if not config.quiet:
                    print(f"{task}: {len(corpus.lengths)} sequences, {corpus.real_tokens} real tokens "
                          f"({corpus.source} token ids)", flush=True)  # fmt: skip
                rows = rows_of(run_task(models, corpus), facts, config, task, corpus)
        finally:
            models.close()
        append(dataset_path(config.output_dir, task), rows)
        written += rows
    return written


def _failed(failure: Failure, facts: RunFacts, config: RunConfig, task: str) -> list[DatasetRow]:
    assert config.dataset is not None
    return [
        DatasetRow(timestamp=datetime.now(UTC).isoformat(timespec="seconds"), run_id=facts.run_id,
                   schema_version=DATASET_SCHEMA_VERSION, task=task, model=facts.model,
                   attn_implementation=config.baseline if key == BASELINE else key, is_baseline=key == BASELINE,
                   baseline=config.baseline, strategy=s, device=facts.device, dtype=facts.dtype,
                   status=failure.status, detail=f"baseline: {failure.detail}")
        for key in (BASELINE, *config.implementations) for s in config.dataset.strategies
    ]  # fmt: skip


def summarize(rows: list[DatasetRow]) -> str:
    """A line per implementation x strategy (with its graph pass where one was asked for), then each
    task's fastest combination."""
    graphs = any(r.graph_note for r in rows)
    gpu = any(r.gpu_s is not None for r in rows)
    lines = [f"{'task':<20} {'implementation':<18} {'strategy':<12} {'batches':>7} {'padded':>7} "
             + (f"{'GPU s':>9} {'GPU spd%':>9} {'busy':>5} " if gpu else "")
             + f"{'pass s':>9} {'tokens/s':>10} {'speedup%':>9} {'peak MiB':>9} {'max abs err':>11}"
             + (f" {'graphs':>6} {'graph s':>9} {'replay%':>8}" if graphs else "") + "  status"]  # fmt: skip
    for r in rows:
        name = baseline_label(r.attn_implementation or "") if r.is_baseline else r.attn_implementation
        notes = [n for n in (r.detail, f"graphs: {r.graph_note}" if r.graph_note not in (None, "", "ok") else "") if n]
        lines.append(
            f"{r.task:<20} {name:<18} {r.strategy:<12} {_num(r.batches, 'd'):>7} {_num(r.padded_share, '.1%'):>7} "
            + (f"{_num(r.gpu_s, '.4g'):>9} {_num(r.speedup_gpu_pct, '+.1f'):>9} {_num(r.gpu_busy_pct, '.0f'):>4}% "
               if gpu else "")
            + f"{_num(r.total_s, '.4g'):>9} {_num(r.tokens_per_s, '.0f'):>10} {_num(r.speedup_pct, '+.1f'):>9} "
            f"{_num(r.peak_mem_mb, '.1f'):>9} {_num(r.max_abs_err, '.2g'):>11}"
            + (f" {_num(r.graphs, 'd'):>6} {_num(r.graph_total_s, '.4g'):>9} {_num(r.graph_gain_pct, '+.1f'):>8}"
               if graphs else "")
            + f"  {r.status}" + (f" ({'; '.join(notes)})" if notes else "")
        )  # fmt: skip
    for task in dict.fromkeys(r.task for r in rows):
        mine = [asdict(r) for r in rows if r.task == task]
        on_gpu, winner = fastest(mine, "gpu_s"), fastest(mine)
        if on_gpu is not None:  # the kernels' answer first, whatever the host
            lines.append(f"{task}: {on_gpu.text(rows[0].baseline or '')}")
        lines.append(f"{task}: " + (winner.text(rows[0].baseline or "") if winner else "nothing was measured"))
    if gpu:
        lines.append(GPU_AND_PASS)
    return "\n".join(lines)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(config: RunConfig) -> int:
    """The --dataset run: the passes, the rows, the table and the winner."""
    from bertbench.run.sweep import start_run
    from bertbench.spec.config import rank_from_environment

    plan = config.dataset
    assert plan is not None
    (point,) = config.points
    print(f"whole-dataset pass: {plan.sequences} sequences, batch {point.batch_size}, max seqlen {point.max_seqlen}, "
          f"{plan.tokens_per_batch} tokens per packed batch; strategies {', '.join(plan.strategies)}; "
          f"{plan.passes} timed passes each", flush=True)  # fmt: skip
    rows = run_dataset(config, start_run(config, rank_from_environment()))
    print(summarize(rows))
    print(f"{len(rows)} rows appended under {config.output_dir}/dataset/")
    errors = [r for r in rows if r.status == "error"]
    if errors:
        first = errors[0]
        print(f"bertbench: error: {len(errors)} of {len(rows)} rows are errors; the first, {first.task} "
              f"{first.attn_implementation} {first.strategy}: {first.detail}", file=sys.stderr)  # fmt: skip
        return 1
    if not any(r.status in MEASURED for r in rows):
        print("bertbench: error: nothing requested could run here", file=sys.stderr)
        return 1
    return 0
