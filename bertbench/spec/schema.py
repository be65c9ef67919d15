"""The CSV schema: one Row per grid point and implementation, its columns and their meaning.

Row is the single definition of the columns: COLUMNS is read off its fields, and each
field's doc is what docs/reference.md prints for it (scripts/gen_reference.py). Memory is
in MiB, times in milliseconds unless a name says otherwise. Bump SCHEMA_VERSION whenever
a column is added, removed or changes meaning; results.py migrates older files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from bertbench.spec.figures import OLD_KEY_DEFAULTS
from bertbench.spec.figures import STATUSES as STATUSES  # re-exported: the schema's status values
from bertbench.spec.timings import EXTRA_COLUMNS

# 1: to cuda_graphs/compile; 2: + git_commit; 3: + seed ...; 4: + host_share, host_bound ...; 5: + flash_attn_3;
# 6: + gpu_ms ..., speedup_gpu_pct, gpu_busy_pct, sm_clock_mhz, throttle_reasons, throttled;
# 7: + length_distribution, lengths_sha256
SCHEMA_VERSION = 7


def col(doc: str):
    return field(default=None, metadata={"doc": doc})


@dataclass
class Row:
    timestamp: str | None = col("when the row was written (UTC, ISO 8601)")
    run_id: str | None = col("the run that wrote it; its configuration and environment are in runs/<run_id>.json")
    schema_version: int | None = col("version of this column layout")
    task: str | None = col("task head: mlm, classification, token_classification or qa")
    model: str | None = col("preset (bert-<size>) or the checkpoint's path or id")
    attn_implementation: str | None = col("the implementation as requested, e.g. sdpa-flash")
    runs: str | None = col("what the model really ran: config._attn_implementation, plus the pinned SDPA backend")
    attention_kernels: str | None = col('fused attention operators the profiler saw run ("none": matmul + softmax)')
    baseline: str | None = col("the implementation every other is compared with")
    baseline_status: str | None = col("the baseline's own status at this point: ok, oom, error, unavailable")
    device: str | None = col("GPU name and index, or the CPU and its threads")
    dtype: str | None = col("fp32, fp16 or bf16")
    batch_size: int | None = col("sequences per batch")
    max_seqlen: int | None = col("padded length of the batch")
    avg_seqlen: float | None = col("requested mean real length")
    pad_fraction: float | None = col("nominal padding: 1 - avg_seqlen / max_seqlen (0: every sequence full)")
    pad_fraction_real: float | None = col("realised padding: padded positions / all positions of the batch")
    seqlen_stdev: float | None = col("standard deviation of the sampled real lengths")
    length_distribution: str | None = col(
        "how the real lengths were drawn: normal, uniform, lognormal (around avg_seqlen, seqlen_stdev) or file"
    )
    lengths_sha256: str | None = col("with --lengths: the SHA-256 of the file the lengths were drawn from")
    seed: int | None = col("seed of the weights and of the batch")
    use_mask: bool | None = col("the run asked for the attention mask to be passed")
    mask_passed: bool | None = col("a padding mask really reached the padded models (none when nothing is padded)")
    packed: bool | None = col("the implementation ran the batch packed (no padding, cu_seqlens); never the baseline")
    mode: str | None = col("inference (forward) or train (forward + backward with dropout, no optimizer step)")
    cuda_graphs: bool | None = col("the run also timed every model replayed from a CUDA graph (*_graph columns)")
    compile: bool | None = col("the run also timed every model after torch.compile (*_compiled columns)")
    real_tokens: int | None = col("real (unpadded) tokens in the batch")
    num_batches: int | None = col("timed calls of the implementation")
    num_batches_baseline: int | None = col("timed calls of the baseline")
    latency_ms_baseline: float | None = col("baseline's median latency")
    latency_ms_baseline_p10: float | None = col("baseline's 10th percentile latency")
    latency_ms_baseline_p90: float | None = col("baseline's 90th percentile latency")
    rel_iqr_baseline: float | None = col("baseline's interquartile range / median")
    latency_ms: float | None = col("implementation's median latency")
    latency_ms_mean: float | None = col("implementation's mean latency")
    latency_ms_p10: float | None = col("implementation's 10th percentile latency")
    latency_ms_p90: float | None = col("implementation's 90th percentile latency")
    rel_iqr: float | None = col("implementation's interquartile range / median")
    noisy: bool | None = col("rel_iqr or rel_iqr_baseline above 0.1 (torch.utils.benchmark's threshold)")
    host_share: float | None = col(
        "GPU: the host's fastest enqueue of one call / the median latency (near 1: the host sets the pace)"
    )
    host_share_baseline: float | None = col("the same for the baseline")
    host_bound: bool | None = col(
        "GPU: host_share or host_share_baseline at least 0.8: the latency follows the host's speed, which "
        "differs between runs (empty on the CPU)"
    )
    host_slowdown: float | None = col(
        "the host's launch time while the point was timed over the run's typical (median of the probes "
        "around its rounds of timed calls; runs/<run_id>.json has the run's)"
    )
    speedup_pct: float | None = col("(latency_ms_baseline / latency_ms - 1) x 100")
    gpu_ms_baseline: float | None = col(
        "GPU: the baseline's GPU time per call, the sum of its kernels' durations (median of the profiled calls "
        "before the timed ones, two or up to --gpu-time-calls: methodology; the host's speed does not move it)"
    )
    gpu_ms: float | None = col("GPU: the implementation's GPU time per call")
    speedup_gpu_pct: float | None = col(
        "(gpu_ms_baseline / gpu_ms - 1) x 100: which kernels are faster, whatever the host (speedup_pct: what "
        "this host delivers per call)"
    )
    gpu_busy_pct: float | None = col("100 x gpu_ms / latency_ms: the share of the call the GPU was busy")
    gpu_busy_pct_baseline: float | None = col("100 x gpu_ms_baseline / latency_ms_baseline")
    sm_clock_mhz: float | None = col("GPU: median SM clock read after each round of the implementation's timed calls")
    sm_clock_mhz_baseline: float | None = col("the same for the baseline's rounds")
    throttle_reasons: str | None = col(
        "NVML clock-slowing reasons seen during either model's rounds, OR-ed (0x4 power cap, 0x8 hardware "
        "slowdown, 0x20/0x40 thermal, 0x80 power brake)"
    )
    throttled: bool | None = col(
        "a slowing reason was seen, or the SM clock read below 90 % of its maximum with the GPU busy"
    )
    mem_mb_baseline: float | None = col("baseline's peak allocated memory above weights and batch (MiB)")
    mem_mb: float | None = col("implementation's peak allocated memory above weights and batch (MiB)")
    mem_mb_reserved_baseline: float | None = col("baseline's peak of the allocator's reserved memory (MiB)")
    mem_mb_reserved: float | None = col("implementation's peak of the allocator's reserved memory (MiB)")
    mem_saved_pct: float | None = col("(1 - mem_mb / mem_mb_baseline) x 100")
    tokens_per_s: float | None = col("real tokens per second at the median latency")
    gflop: float | None = col("matmul GFLOP on real tokens per call, x3 in train mode (the useful work)")
    gflop_padded: float | None = col("the same counting every sequence at max_seqlen")
    tflops: float | None = col("gflop / median latency")
    tflops_baseline: float | None = col("gflop / the baseline's median latency")
    peak_tflops: float | None = col("measured dense matmul rate of the device in this dtype")
    pct_of_peak: float | None = col("100 x tflops / peak_tflops")
    joules_per_1k_tokens_baseline: float | None = col("baseline's GPU energy per 1000 real tokens (--energy, NVML)")
    joules_per_1k_tokens: float | None = col("implementation's GPU energy per 1000 real tokens (--energy, NVML)")
    power_w_baseline: float | None = col("baseline's mean board power over its energy window (W)")
    power_w: float | None = col("implementation's mean board power over its energy window (W)")
    latency_ms_graph_baseline: float | None = col("baseline's median replay of a captured CUDA graph")
    latency_ms_graph: float | None = col(
        "implementation's median CUDA-graph replay: GPU time without Python (empty where the replay ran other "
        "kernels than the loop: the detail gives that figure)"
    )
    speedup_graph_pct: float | None = col("speedup with both replayed from CUDA graphs")
    gpu_ms_graph_baseline: float | None = col("baseline's GPU time per replay (its kernels' durations)")
    gpu_ms_graph: float | None = col(
        "implementation's GPU time per replay: near gpu_ms when the replay runs its kernels"
    )
    launch_bound: bool | None = col("latency_ms >= 1.5 x latency_ms_graph: the host, not the GPU, sets the latency")
    attention_kernels_graph: str | None = col("recorded while capturing (a library may take another path then)")
    latency_ms_compiled_baseline: float | None = col("baseline's median after torch.compile (static shapes)")
    latency_ms_compiled: float | None = col("implementation's median after torch.compile")
    speedup_compiled_pct: float | None = col("speedup with both compiled")
    gpu_ms_compiled_baseline: float | None = col("baseline's GPU time per compiled call")
    gpu_ms_compiled: float | None = col("implementation's GPU time per compiled call")
    compile_s_baseline: float | None = col("the baseline's first compiled call: tracing, code generation, one run (s)")
    compile_s: float | None = col("the implementation's first compiled call (s)")
    attention_kernels_compiled: str | None = col("fused attention operators of the compiled call")
    max_abs_err: float | None = col("max absolute error of the task logits against the baseline, on real tokens")
    rel_err: float | None = col("relative L2 error of the task logits against the baseline, on real tokens")
    ref_err: float | None = col(
        "relative L2 error against the baseline run in float32 on the same weights, over the batch's first "
        "sequences (at least 16, or as many as fill 8192 token positions)"
    )
    ref_err_baseline: float | None = col(
        "the baseline's own ref_err; mismatch when ref_err > max(2 x ref_err_baseline, a floor per dtype)"
    )
    status: str | None = col("ok, mismatch, unavailable, oom or error")
    detail: str | None = col("why, for every status but ok; notes on variants that failed")
    bertbench: str | None = col("version of this benchmark")
    torch: str | None = col("PyTorch version")
    transformers: str | None = col("transformers version")
    flash_attn: str | None = col("flash-attn version, when installed")
    flash_attn_3: str | None = col("flash_attn_3 (FlashAttention-3) version, when installed")
    cuda: str | None = col("CUDA version PyTorch was built with (GPU runs)")
    git_commit: str | None = col("commit of this repository, when run from a clone")

    def __getitem__(self, column: str):
        return getattr(self, column)

    def as_csv(self) -> dict[str, str]:
        return {column: format_value(getattr(self, column)) for column in COLUMNS}


COLUMNS = tuple(f.name for f in fields(Row))
COLUMN_DOCS = {f.name: f.metadata["doc"] for f in fields(Row)}
COLUMN_TYPES = {f.name: str(f.type).split(" |")[0] for f in fields(Row)}  # "str", "int", "float" or "bool"

# A grid point and implementation are the same measurement when these agree (for --resume).
KEY_COLUMNS = (
    "task",
    "model",
    "attn_implementation",
    "baseline",
    "device",
    "dtype",
    "batch_size",
    "max_seqlen",
    "avg_seqlen",
    "seqlen_stdev",
    "length_distribution",
    "lengths_sha256",
    "seed",
    "use_mask",
    "packed",
    "mode",
    *EXTRA_COLUMNS,
)
# Key columns that add measurements to a row rather than make it another grid point.
EXTRA_MEASUREMENTS = EXTRA_COLUMNS


def format_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"  # NaN -> empty
    return str(value)


def row_key(row) -> tuple[str, ...]:
    """The measurement a row (a Row or a CSV dict) stands for; the GPU's index is left out,
    so that --resume skips a point whichever GPU of the host measured it, and a setting an
    older row lacks takes the value it had before it existed (figures.OLD_KEY_DEFAULTS)."""
    key = {column: format_value(row[column]) or OLD_KEY_DEFAULTS.get(column, "") for column in KEY_COLUMNS}
    key["device"] = without_gpu_index(key["device"])
    return tuple(key.values())


def without_gpu_index(device: str) -> str:
    """The device column without the GPU's index: one kind of GPU, whichever of a host's ran it."""
    return re.sub(r" \(cuda:\d+\)$", "", device)
