"""CUDA-graph capture: a model's call replayed with no Python, and the guard that keeps a
capture from breaking the process."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.failures import NotCapturable
from bertbench.measure.probes import attention_kernels


@dataclass
class CapturedGraph:
    graph: torch.cuda.CUDAGraph
    output: object  # the static output the graph writes on every replay
    kernels: str  # fused attention operators recorded while capturing
    seconds: float  # warm-up and capture


def capture_graph(fn: Callable[[], object], device: torch.device, pool: tuple | None = None) -> CapturedGraph:
    """fn captured in a CUDA graph; replays run its kernels on the same buffers with no Python.

    Warm-up runs on a side stream first, as torch.cuda.graph requires; then one rehearsal
    (check_capturable) refuses a call that would break the capture, because a failed capture
    leaves PyTorch's CUDA state broken for the rest of the process. `pool`: a memory pool
    (torch.cuda.graph_pool_handle()) the graph shares with others never replayed at the same time,
    so a set of graphs holds the memory of its largest, not of all. The kernels are recorded
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
        with torch.cuda.graph(graph, pool=pool):
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
