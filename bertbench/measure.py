"""What is measured: latency, peak memory, agreement with the baseline, and FLOPs.

Timing follows triton.testing.do_bench: warm up, then one pair of CUDA events per timed
call and a single synchronisation at the end of a run of calls (time.perf_counter on the
CPU), reporting quantiles rather than the mean alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import BertConfig

# Fused attention operators as the profiler names them: PyTorch's SDPA backends and the
# flash-attn packages' custom ops. Their backward passes are left out (train mode).
ATTENTION_OP = re.compile(r"^(aten::_scaled_dot_product_\w+|flash_attn\w*::\w+)$")


@dataclass(frozen=True)
class Timing:
    latencies_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.latencies_ms)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        position = q * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def repetitions(estimate_ms: float, num_batches: int, min_batches: int, budget_ms: float | None) -> int:
    """Timed calls for one measurement: all of num_batches, or as many as fill the budget."""
    if budget_ms is None:
        return num_batches
    fill = math.ceil(budget_ms / max(estimate_ms, 1e-3))
    return max(min(fill, num_batches), min(min_batches, num_batches))


def latencies(fn: Callable[[], object], device: torch.device, count: int) -> tuple[float, ...]:
    """Milliseconds of each of `count` calls of fn."""
    return _cuda_latencies(fn, count) if device.type == "cuda" else _cpu_latencies(fn, count)


def round_sizes(count: int, rounds: int) -> list[int]:
    """`count` calls split as evenly as possible over `rounds` rounds."""
    return [count // rounds + (i < count % rounds) for i in range(rounds)]


def _cuda_latencies(fn: Callable[[], object], count: int) -> tuple[float, ...]:
    """One pair of events around each call, one synchronisation after the last."""
    if count == 0:
        return ()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for start, end in zip(starts, ends, strict=True):
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return tuple(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))


def _cpu_latencies(fn: Callable[[], object], count: int) -> tuple[float, ...]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        latencies.append((time.perf_counter() - start) * 1e3)
    return tuple(latencies)


def attention_kernels(fn: Callable[[], object]) -> tuple[object, str]:
    """fn's output and the fused attention operators it ran, as recorded by the profiler.

    This is what really ran, whatever was asked for: e.g. the backend SDPA chose
    (`sdpa_cudnn_attention` on the H100 with a padding mask), or "none" where no fused
    operator ran (eager's matmul and softmax, or attention the compiler generated itself).
    CPU activity only: no device sync, so it also works while a CUDA graph is being captured.
    """
    with _quiet_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Profiler clears events.*")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            output = fn()
    # The raw event names: building prof.events() (the tree of ~2000 events of a bert-base
    # forward) took 50-200 ms, as long as the forward itself.
    names = {name for e in prof.profiler.kineto_results.events() if ATTENTION_OP.match(name := e.name())}
    names = {name for name in names if not name.endswith("_backward")}
    short = sorted(n.replace("aten::_scaled_dot_product_", "sdpa_") for n in names)
    return output, "+".join(short) or "none"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's start/stop lines, which the C++ side prints to fd 2 on every run."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class CapturedGraph:
    graph: torch.cuda.CUDAGraph
    output: object  # the static output the graph writes on every replay
    kernels: str  # fused attention operators recorded while capturing
    seconds: float  # warm-up and capture


class NotCapturable(RuntimeError):
    """The call synchronises with the host, so a CUDA graph cannot hold it."""


def capture_graph(fn: Callable[[], object], device: torch.device) -> CapturedGraph:
    """fn captured in a CUDA graph; replays run its kernels on the same buffers with no Python.

    Warm-up runs on a side stream first, as torch.cuda.graph requires; then one rehearsal
    (check_capturable) refuses a call that would break the capture, because a failed capture
    leaves PyTorch's CUDA state broken for the rest of the process. The kernels are recorded
    during the capture itself: a library may take another path while a stream is capturing
    (transformers builds an SDPA mask it would otherwise skip).
    """
    start = time.perf_counter()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
        check_capturable(fn)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()

    def captured():
        with torch.cuda.graph(graph):
            return fn()

    output, kernels = attention_kernels(captured)
    torch.cuda.synchronize(device)
    return CapturedGraph(graph, output, kernels, time.perf_counter() - start)


def check_capturable(fn: Callable[[], object]) -> None:
    """Run fn as if a stream were capturing, and raise NotCapturable if it syncs with the host.

    Library code that asks torch.cuda.is_current_stream_capturing() is told yes, so it takes
    its capture path, and PyTorch's sync debug mode turns every host synchronisation (an
    `.item()`, a data-dependent branch, a copy from pageable host memory) into an error.
    """
    asks = torch.cuda.is_current_stream_capturing
    mode = torch.cuda.get_sync_debug_mode()
    torch.cuda.is_current_stream_capturing = lambda: True
    with warnings.catch_warnings():  # "a prototype feature": it misses some syncs, and a capture then fails
        warnings.simplefilter("ignore", UserWarning)
        torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
    except RuntimeError as e:
        if "synchroniz" not in str(e):
            raise
        raise NotCapturable(f"synchronises with the host ({str(e).strip().splitlines()[0]})") from None
    finally:
        torch.cuda.set_sync_debug_mode(mode)
        torch.cuda.is_current_stream_capturing = asks


def run_with_peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """fn's output and the peak memory (MB) it allocated above what was allocated before.

    Weights and the batch are allocated before, so they are excluded. NaN on the CPU,
    where PyTorch keeps no allocator statistics.
    """
    if device.type != "cuda":
        return fn(), math.nan
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    output = fn()
    torch.cuda.synchronize(device)
    return output, (torch.cuda.max_memory_allocated(device) - before) / 2**20


def agreement(
    outputs: list[torch.Tensor], references: list[torch.Tensor], real: torch.Tensor | None
) -> tuple[float, float]:
    """Max absolute and relative L2 error of outputs against references, in float32.

    `real` (batch, seqlen) selects the real tokens of per-token logits (padding is zeroed
    in both); None compares everything. Rows are compared a slice at a time so large MLM
    logits need no full float32 copy, and the sums stay on the device until one sync.
    """
    max_abs, err_sq, ref_sq = [], [], []
    for out, ref in zip(outputs, references, strict=True):
        for start in range(0, out.shape[0], 8):
            o, r = out[start : start + 8].float(), ref[start : start + 8].float()
            if real is not None:
                keep = real[start : start + 8].to(o.dtype).reshape(*o.shape[:2], *[1] * (o.dim() - 2))
                o, r = o * keep, r * keep
            diff = o - r
            max_abs.append(diff.abs().max())
            err_sq.append(diff.square().sum())
            ref_sq.append(r.square().sum())
    max_err = float(torch.stack(max_abs).max())
    err, ref_norm = float(torch.stack(err_sq).sum()), float(torch.stack(ref_sq).sum())
    return max_err, math.sqrt(err / ref_norm) if ref_norm else math.sqrt(err)


def tolerance(dtype: torch.dtype) -> float:
    """Relative L2 error above which an implementation does not compute the same thing."""
    return 1e-4 if dtype == torch.float32 else 2e-2


def forward_flops(config: BertConfig, task: str, lengths: list[int], seqlen: int | None = None) -> float:
    """Matmul FLOPs of one forward (2 per multiply-add); other operations are ignored.

    With seqlen None only the real tokens count (the useful work); with seqlen set every
    sequence is counted as padded to it (the work a padded dense forward does).
    Per layer: Q, K, V and output projections 2*T*4*H^2, feed-forward 2*T*2*H*I,
    attention scores QK^T and the weighted sum PV 2*2*l^2*H per sequence of length l.
    """
    hidden, inner = config.hidden_size, config.intermediate_size
    seq = [seqlen] * len(lengths) if seqlen is not None else lengths
    tokens = sum(seq)
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inner) + sum(4 * n * n * hidden for n in seq)
    if task == "mlm":  # transform dense + decoder onto the vocabulary
        head = 2 * tokens * (hidden * hidden + hidden * config.vocab_size)
    elif task == "classification":  # pooler dense + classifier on the first token of each sequence
        head = 2 * len(seq) * (hidden * hidden + hidden * config.num_labels)
    elif task == "token_classification":
        head = 2 * tokens * hidden * config.num_labels
    else:  # qa: start and end logits
        head = 2 * tokens * hidden * 2
    return float(config.num_hidden_layers * per_layer + head)


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 8192) -> float:
    """The device's measured dense matmul rate in this dtype, the ceiling for achieved TFLOP/s."""
    if device.type != "cuda":
        size = 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    latencies(lambda: a @ b, device, 3)  # warm-up
    median_ms = statistics.median(latencies(lambda: a @ b, device, 10))
    return 2 * size**3 / (median_ms * 1e-3) / 1e12
