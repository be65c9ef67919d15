"""The whole-dataset pass's CSV (--dataset: <output-dir>/dataset/<task>.csv): one DatasetRow per
implementation and batching strategy, its columns and their meaning, and the one rule that names
the fastest combination (the console and the report both read it). No torch here.

DatasetRow is the single definition of the columns, as schema.Row is of the main CSV's; bump
DATASET_SCHEMA_VERSION whenever a column is added, removed or changes meaning (a file of an older
layout is read with the new columns empty, and brought to this one when appended to:
store.dataset_file). Version 2 added the graph pass's columns (graphs ... graph_note); version 3
speedup_gpu_pct and gpu_busy_pct.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from bertbench.spec.figures import speedup_pct
from bertbench.spec.schema import col, format_value

DATASET_SCHEMA_VERSION = 3
REFERENCE_STRATEGY = "pad-max"  # with the baseline: the pass every other is timed and compared against


@dataclass
class DatasetRow:
    timestamp: str | None = col("when the row was written (UTC, ISO 8601)")
    run_id: str | None = col("the run that wrote it; its configuration and environment are in runs/<run_id>.json")
    schema_version: int | None = col("version of this column layout")
    task: str | None = col("task head: mlm, classification, token_classification or qa")
    model: str | None = col("preset (bert-<size>) or the checkpoint's path or id")
    attn_implementation: str | None = col("the implementation as requested, e.g. sdpa-flash")
    is_baseline: bool | None = col("this row is the baseline's (every other is compared with its pad-max pass)")
    baseline: str | None = col("the implementation every other is compared with")
    strategy: str | None = col("batching strategy: pad-max, pad-longest, sorted or packed")
    device: str | None = col("GPU name and index, or the CPU and its threads")
    dtype: str | None = col("fp32, fp16 or bf16")
    sequences: int | None = col("sequences in the pass")
    batch_size: int | None = col("sequences per batch (pad-max, pad-longest, sorted)")
    max_seqlen: int | None = col("longest sequence; each real length truncated here")
    tokens_per_batch: int | None = col("token budget of a packed batch")
    length_distribution: str | None = col("how the lengths were drawn: normal, uniform, lognormal or file")
    lengths_sha256: str | None = col("with --lengths: the SHA-256 of the file")
    token_ids: str | None = col(
        "random (seeded), or tokenizer: the file's texts as the checkpoint's tokenizer reads them"
    )
    seed: int | None = col("seed of the weights, the lengths and the token ids")
    batches: int | None = col("batches (forward calls) in one pass")
    real_tokens: int | None = col("real tokens in the pass")
    computed_tokens: int | None = col("token positions the model computed: real tokens plus padding")
    padded_share: float | None = col("padding / computed_tokens (0 for packed)")
    passes: int | None = col("timed passes, interleaved with every other implementation and strategy")
    total_s: float | None = col("median wall time of one whole pass (s), synchronised at its start and end")
    total_s_min: float | None = col("the fastest timed pass (s)")
    total_s_max: float | None = col("the slowest timed pass (s)")
    tokens_per_s: float | None = col("real tokens / total_s")
    speedup_pct: float | None = col("against the baseline's pad-max pass: (its total_s / total_s - 1) x 100")
    gpu_s: float | None = col("GPU: the pass's GPU time, the sum of its kernels' durations in one profiled pass (s)")
    speedup_gpu_pct: float | None = col(
        "GPU: against the baseline's pad-max pass, on the GPU time: (its gpu_s / gpu_s - 1) x 100"
    )
    gpu_busy_pct: float | None = col("GPU: 100 x gpu_s / total_s, the share of the pass the GPU was busy")
    peak_mem_mb: float | None = col(
        "GPU: peak allocated memory during a pass above what was allocated before it (weights, inputs) (MiB)"
    )
    max_abs_err: float | None = col("max absolute error of each sequence's task logits against the baseline's pad-max")
    rel_err: float | None = col("relative L2 error of the same, over every sequence's real tokens")
    parity_values: int | None = col("numbers compared (mlm: a fixed sample of the vocabulary's logits per token)")
    graphs: int | None = col(
        "--cuda-graphs: CUDA graphs captured for the graph pass, one per padded shape and mask, one per packed capacity"
    )
    graph_capture_s: float | None = col("their warm-up and capture (s), never part of graph_total_s")
    graph_total_s: float | None = col(
        "median wall time of one whole pass replayed from the graphs, each batch copied into its graph's buffers (s)"
    )
    graph_tokens_per_s: float | None = col("real tokens / graph_total_s")
    graph_gain_pct: float | None = col("replay against the loop: (total_s / graph_total_s - 1) x 100")
    graph_max_abs_err: float | None = col("max_abs_err of the replays' logits against the baseline's pad-max")
    graph_rel_err: float | None = col("rel_err of the replays' logits against the baseline's pad-max")
    graph_note: str | None = col(
        "the graph pass: ok, mismatch (graph_rel_err above the tolerance), or unavailable, oom or error and why "
        "(the loop's figures stand); empty without --cuda-graphs"
    )
    status: str | None = col("ok, mismatch (rel_err above the dtype's tolerance), unavailable, oom or error")
    detail: str | None = col("why, for every status but ok")
    bertbench: str | None = col("version of this benchmark")
    torch: str | None = col("PyTorch version")
    transformers: str | None = col("transformers version")
    flash_attn: str | None = col("flash-attn version, when installed")

    def as_csv(self) -> dict[str, str]:
        return {column: format_value(getattr(self, column)) for column in DATASET_COLUMNS}


DATASET_COLUMNS = tuple(f.name for f in fields(DatasetRow))
DATASET_COLUMN_DOCS = {f.name: f.metadata["doc"] for f in fields(DatasetRow)}
DATASET_COLUMN_TYPES = {f.name: str(f.type).split(" |")[0] for f in fields(DatasetRow)}  # as schema.COLUMN_TYPES
# The columns every dataset file has had since version 1: with no column unknown, what makes a CSV ours.
DATASET_CONTRACT = ("timestamp", "run_id", "schema_version", "task", "attn_implementation", "strategy", "status")


# What a winner is picked on: the pass's wall time (what this host delivers over the dataset) or
# its GPU time (which implementation and strategy leave the GPU the least work, whatever the host).
FIGURES = {"total_s": "s a pass", "gpu_s": "s of GPU time a pass"}
GPU_AND_PASS = (
    "GPU s answers which implementation and batching leave the GPU the least work, whatever the host; pass s "
    "what this host delivers over the dataset, where many small batches wait on the Python host's launches "
    "(busy: the share of the pass the GPU worked)."
)


@dataclass(frozen=True)
class Winner:
    """The measured combination with the least of one figure (FIGURES) and its gain over the
    baseline's pad-max pass on that figure."""

    implementation: str
    strategy: str
    seconds: float
    reference_s: float | None  # the baseline's pad-max pass; None when it was not measured
    figure: str = "total_s"

    @property
    def speedup_pct(self) -> float | None:
        return None if self.reference_s is None else speedup_pct(self.reference_s, self.seconds)

    @property
    def times(self) -> float | None:
        return None if self.reference_s is None else self.reference_s / self.seconds

    def text(self, baseline: str) -> str:
        if self.times is None:
            gain = f"{baseline} with {REFERENCE_STRATEGY} was not measured"
        elif self.figure == "gpu_s":
            gain = f"{self.times:.2f}x less than {baseline} with {REFERENCE_STRATEGY} ({self.speedup_pct:+.1f} %)"
        else:
            gain = f"{self.times:.2f}x the speed of {baseline} with {REFERENCE_STRATEGY} ({self.speedup_pct:+.1f} %)"
        lead = "fastest" if self.figure == "total_s" else "least GPU time"
        return f"{lead}: {self.implementation} with {self.strategy}, {self.seconds:.4g} {FIGURES[self.figure]}, {gain}"


def fastest(rows: Iterable[Mapping[str, object]], figure: str = "total_s") -> Winner | None:
    """The ok row with the least `figure` (a mismatch ran, but computed something else), against
    the baseline's pad-max row; None where no ok row has the figure (gpu_s on the CPU). Rows as
    CSV dicts or DatasetRow fields (dataclasses.asdict)."""
    measured = [r for r in rows if r["status"] == "ok" and _number(r.get(figure)) is not None]
    if not measured:
        return None
    best = min(measured, key=lambda r: _number(r[figure]))
    reference = next((r for r in measured if _true(r["is_baseline"]) and r["strategy"] == REFERENCE_STRATEGY), None)
    return Winner(
        str(best["attn_implementation"]),
        str(best["strategy"]),
        _number(best[figure]),
        _number(reference[figure]) if reference is not None else None,
        figure,
    )


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def _true(value: object) -> bool:
    return value is True or value == "True"
