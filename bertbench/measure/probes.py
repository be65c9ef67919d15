"""What is measured besides time: peak memory, the attention kernels that ran, agreement
with a reference, FLOPs, and the device's matmul rate."""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import PretrainedConfig

from bertbench.attention import registry
from bertbench.measure.timing import latencies
from bertbench.spec.catalog import family_of_type
from bertbench.store import signals

# Fused attention operators as the profiler names them: PyTorch's SDPA backends and the
# flash-attn packages' custom ops. Their backward passes are left out (train mode).
ATTENTION_OP = re.compile("^(" + "|".join(registry.fused_ops()) + ")$")  # every implementation's fused operator
# What an SDPA backend calls underneath: named only where no SDPA operator ran (torch's varlen_attn)
NESTED = {registry.FLASH_FORWARD_OP}
# GPU kernel names by class, for a breakdown of one forward (scripts/kernel_breakdown.py).
# Attention first: FlashAttention's kernels carry cutlass types in their template arguments.
ATTENTION_KERNEL = re.compile(r"flash|fmha|attention|attn|sdpa|cudnn|softmax_warp", re.IGNORECASE)
GEMM_KERNEL = re.compile(r"gemm|cutlass|xmma|cublas|nvjet|sm\d+_\w*_tn", re.IGNORECASE)


def kernel_class(name: str) -> str:
    """gemm, attention or other (element-wise, normalisation, copies) for a GPU kernel's name."""
    if ATTENTION_KERNEL.search(name):
        return "attention"
    return "gemm" if GEMM_KERNEL.search(name) else "other"


def attention_kernels(fn: Callable[[], object]) -> tuple[object, str]:
    """fn's output and the fused attention operators it ran, as recorded by the profiler.

    This is what really ran, whatever was asked for: e.g. the backend SDPA chose
    (`sdpa_cudnn_attention` on the H100 with a padding mask), or "none" where no fused
    operator ran (eager's matmul and softmax, or attention the compiler generated itself).
    CPU activity only: no device sync, so it also works while a CUDA graph is being captured.
    """
    with profiled([ProfilerActivity.CPU]) as prof:
        output = fn()
    # The raw event names: building prof.events() (the tree of ~2000 events of a bert-base
    # forward) took 50-200 ms, as long as the forward itself.
    names = {name for e in prof.profiler.kineto_results.events() if ATTENTION_OP.match(name := e.name())}
    names = {name for name in names if not name.endswith("_backward")}
    if any(name.startswith("aten::_scaled_dot_product_") for name in names):
        names -= NESTED
    short = sorted(n.replace("aten::_scaled_dot_product_", "sdpa_").replace("aten::_", "") for n in names)
    return output, "+".join(short) or "none"


@contextlib.contextmanager
def profiled(activities: list[ProfilerActivity]) -> Iterator[profile]:
    """A torch.profiler session around the block, its start/stop lines kept off stderr.

    A signal inside the profiler's start or stop left its C++ callbacks half set up, and the
    interpreter then died of SIGSEGV on its way out (after the one-line message): both run
    whole, the signal raised right after them."""
    with _quiet_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Profiler clears events.*")
        prof = profile(activities=activities)
        entered = False
        try:
            with signals.deferred():
                prof.__enter__()
                entered = True
            yield prof
        finally:
            if entered:
                with signals.deferred():
                    prof.__exit__(None, None, None)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's start/stop lines, which the C++ side prints to fd 2 on every run.

    The swaps run whole (signals.deferred): fd 2 is never left on /dev/null, the one-line
    message of an interrupt lost. A signal during the first swap is raised at its end, inside
    the try, so fd 2 is put back on that path too (it was not: the process then ended with
    130 and an empty stderr, once in 40 runs of the four-moment signal test)."""
    saved = None
    try:
        with signals.deferred():
            sys.stderr.flush()
            saved = os.dup(2)
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
        yield
    finally:
        if saved is not None:
            with signals.deferred():
                os.dup2(saved, 2)
                os.close(saved)


@dataclass(frozen=True)
class PeakMemory:
    """Peak device memory (MiB) one call took above what was allocated before it."""

    allocated_mb: float  # the tensors' own peak (torch.cuda.max_memory_allocated)
    reserved_mb: float  # the caching allocator's peak (max_memory_reserved): what the process held

    @classmethod
    def unmeasured(cls) -> PeakMemory:
        return cls(math.nan, math.nan)


def run_with_peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[object, PeakMemory]:
    """fn's output and the peak memory it took above what was held before.

    Weights and the batch are allocated before, so they are excluded. NaN on the CPU,
    where PyTorch keeps no allocator statistics.
    """
    if device.type != "cuda":
        return fn(), PeakMemory.unmeasured()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    allocated, reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
    output = fn()
    torch.cuda.synchronize(device)
    return output, PeakMemory(
        (torch.cuda.max_memory_allocated(device) - allocated) / 2**20,
        (torch.cuda.max_memory_reserved(device) - reserved) / 2**20,
    )


SLICE_VALUES = 2**24  # numbers per slice agreement compares: 64 MiB in float32


def agreement(
    outputs: list[torch.Tensor], references: list[torch.Tensor], real: torch.Tensor | None
) -> tuple[float, float]:
    """Max absolute and relative L2 error of outputs against references, in float32.

    `real` (batch, seqlen) selects the real tokens of per-token logits (padding is zeroed
    in both); None compares everything. Rows are compared a slice at a time (at least 8 rows,
    as many as hold SLICE_VALUES numbers) so large MLM logits need no full float32 copy while
    small logits take a few launches, and the sums stay on the device until one sync.
    """
    max_abs, err_sq, ref_sq = [], [], []
    for out, ref in zip(outputs, references, strict=True):
        rows = max(8, SLICE_VALUES // max(1, out[0].numel()))
        for start in range(0, out.shape[0], rows):
            o, r = out[start : start + rows].float(), ref[start : start + rows].float()
            if real is not None:
                keep = real[start : start + rows].to(o.dtype).reshape(*o.shape[:2], *[1] * (o.dim() - 2))
                o, r = o * keep, r * keep
            diff = o - r
            max_abs.append(diff.abs().max())
            err_sq.append(diff.square().sum())
            ref_sq.append(r.square().sum())
    max_err = float(torch.stack(max_abs).max())
    err, ref_norm = float(torch.stack(err_sq).sum()), float(torch.stack(ref_sq).sum())
    return max_err, math.sqrt(err / ref_norm) if ref_norm else math.sqrt(err)


def tolerance(dtype: torch.dtype) -> float:
    """Relative L2 error against the baseline above which an implementation does not compute
    the same thing: the rule used only where no float32 reference could be run."""
    return 1e-4 if dtype == torch.float32 else 2e-2


# The parity rule of FlashAttention's own tests: an implementation may be off the exact result
# (the baseline run in float32) by at most twice what the baseline itself is off it, and by at
# least a floor near the dtype's rounding, below which the baseline's error is luck.
REFERENCE_FLOOR = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
# Below this many compared values (classification: 2 logits a sequence) an error is the rounding
# of a handful of numbers, a single draw: the floor grows as 1/sqrt(values), to twice at 2 values.
# On the H100 sdpa-math was 0.0023 off the exact result on the 2 logits of batch 1 (1.5 fp16 steps
# apart from the baseline), where eager was 0.0008; a kernel with its output lanes shifted is
# 0.05-0.19 off there (tests/test_point.py), beyond even bf16's doubled floor of 0.032.
FEW_VALUES = 8


def reference_limit(baseline_ref_err: float, dtype: torch.dtype, values: int = FEW_VALUES) -> float:
    """The most an implementation may be off the float32 reference, over `values` compared numbers."""
    return max(2 * baseline_ref_err, reference_floor(dtype, values))


def reference_floor(dtype: torch.dtype, values: int = FEW_VALUES) -> float:
    return REFERENCE_FLOOR[dtype] * math.sqrt(max(1.0, FEW_VALUES / max(values, 1)))


def compared_values(outputs: list[torch.Tensor], real: torch.Tensor | None) -> int:
    """How many numbers `agreement` compares: real tokens only for per-token logits."""
    if real is None:
        return sum(out.numel() for out in outputs)
    tokens = int(real.sum())
    return sum(tokens * math.prod(out.shape[2:]) for out in outputs)


def forward_flops(config: PretrainedConfig, task: str, lengths: list[int], seqlen: int | None = None) -> float:
    """Matmul FLOPs of one forward (2 per multiply-add); other operations are ignored.

    With seqlen None only the real tokens count (the useful work); with seqlen set every
    sequence is counted as padded to it (the work a padded dense forward does).
    Per layer: Q, K, V and output projections 2*T*4*H^2, feed-forward 2*T*2*H*I (ModernBERT's
    gated one 2*T*3*H*I), attention scores QK^T and the weighted sum PV 2*2*l^2*H per sequence
    of length l; in a local layer (ModernBERT's) the pairs within its window instead of l^2.
    """
    hidden = config.hidden_size
    inner = getattr(config, "intermediate_size", None) or config.hidden_dim  # DistilBERT's is hidden_dim
    family = family_of_type(config.model_type)
    matrices = family.ffn_matrices if family is not None else 2
    seq = [seqlen] * len(lengths) if seqlen is not None else lengths
    tokens = sum(seq)
    dense = 2 * tokens * (4 * hidden * hidden + matrices * hidden * inner)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    window = getattr(config, "sliding_window", None)
    attention = sum(
        sum(4 * _attended_pairs(n, window if kind == "sliding_attention" else None) * hidden for n in seq)
        for kind in layer_types
    )
    if task == "mlm":  # transform dense + decoder onto the vocabulary
        head = 2 * tokens * (hidden * hidden + hidden * config.vocab_size)
    elif task == "classification":  # pooler dense + classifier on the first token of each sequence
        head = 2 * len(seq) * (hidden * hidden + hidden * config.num_labels)
    elif task == "token_classification":
        head = 2 * tokens * hidden * config.num_labels
    else:  # qa: start and end logits
        head = 2 * tokens * hidden * 2
    return float(config.num_hidden_layers * dense + attention + head)


def _attended_pairs(n: int, half_window: int | None) -> int:
    """Query-key pairs of a sequence of n tokens: all of them, or those with |i - j| <= half_window."""
    if half_window is None or n <= half_window + 1:
        return n * n
    return n * (2 * half_window + 1) - half_window * (half_window + 1)


def matmul_tflops(device: torch.device, dtype: torch.dtype, budget_ms: float = 20.0, largest: int = 8192) -> float:
    """The device's measured dense matmul rate in this dtype, the ceiling for achieved TFLOP/s.

    The square size doubles from 256 until one product takes `budget_ms` (or reaches
    `largest`), so the probe fits the device: a second on the CPU in fp16, where an 8192
    product would take minutes, and the full 8192 on a GPU.
    """
    size, median_ms = 256, 0.0
    while True:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        latencies(lambda a=a, b=b: a @ b, device, 2)  # warm-up
        median_ms = statistics.median(latencies(lambda a=a, b=b: a @ b, device, 5 if size < largest else 10))
        if size >= largest or median_ms >= budget_ms:
            return 2 * size**3 / (median_ms * 1e-3) / 1e12
        size *= 2
