"""The report: one CSV per task, one row per grid point and implementation.

COLUMNS is the single definition of the schema. Rows are appended and flushed one at a
time, so an interrupted sweep keeps every row it finished; a file whose header differs
from COLUMNS is never appended to.
"""

from __future__ import annotations

import csv
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch

from bertbench.models import package_version

COLUMNS = (
    "timestamp",
    "run_id",
    "task",
    "model",
    "attn_implementation",  # as requested, e.g. sdpa-flash
    "runs",  # what the model really ran: config._attn_implementation, plus the pinned SDPA backend
    "attention_kernels",  # fused attention operators the profiler saw run ("none": matmul + softmax)
    "baseline",
    "device",
    "dtype",
    "batch_size",
    "max_seqlen",
    "avg_seqlen",
    "pad_fraction",
    "seqlen_stdev",
    "use_mask",
    "packed",  # the implementation ran the batch packed (no padding, cu_seqlens); the baseline never does
    "mode",  # inference (forward) or train (forward + backward with dropout, no optimizer step)
    "cuda_graphs",  # the run also timed every model replayed from a CUDA graph (the *_graph columns)
    "compile",  # the run also timed every model after torch.compile (the *_compiled columns)
    "real_tokens",
    "num_batches",  # timed batches of the implementation
    "num_batches_baseline",
    "latency_ms_baseline",  # median
    "latency_ms",  # median
    "latency_ms_mean",
    "latency_ms_p10",
    "latency_ms_p90",
    "speedup_pct",
    "mem_mb_baseline",
    "mem_mb",
    "mem_saved_pct",
    "tokens_per_s",  # real tokens per second
    "gflop",  # matmul GFLOP on real tokens per forward, x3 in train mode (the useful work)
    "gflop_padded",  # the same counting every sequence at max_seqlen
    "tflops",  # gflop / median latency
    "tflops_baseline",
    "peak_tflops",  # measured dense matmul rate of the device in this dtype
    "pct_of_peak",  # 100 x tflops / peak_tflops
    "latency_ms_graph_baseline",  # median of replays of a captured CUDA graph: GPU time without Python
    "latency_ms_graph",
    "launch_bound",  # latency_ms >= 1.5 x latency_ms_graph: the host, not the GPU, sets the latency
    "attention_kernels_graph",  # recorded while capturing (a library may take another path then)
    "latency_ms_compiled_baseline",  # median after torch.compile (static shapes)
    "latency_ms_compiled",
    "compile_s_baseline",  # the first compiled call: tracing, code generation and one run
    "compile_s",
    "attention_kernels_compiled",
    "max_abs_err",
    "rel_err",  # relative L2 error of the task logits on real tokens
    "status",  # ok, mismatch, unavailable, oom, error
    "detail",
    "torch",
    "transformers",
    "flash_attn",
    "cuda",
    "git_commit",
)
STATUSES = ("ok", "mismatch", "unavailable", "oom", "error")

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
    "use_mask",
    "packed",
    "mode",
    "cuda_graphs",
    "compile",
)
# Key columns that add measurements to a row rather than make it another grid point.
EXTRA_MEASUREMENTS = ("cuda_graphs", "compile")


class HeaderMismatch(Exception):
    pass


def row_key(row: dict) -> tuple[str, ...]:
    """The measurement a row stands for; the GPU's index is left out, so that --resume skips
    a point whichever GPU of the host measured it."""
    key = {column: _format(row[column]) for column in KEY_COLUMNS}
    key["device"] = without_gpu_index(key["device"])
    return tuple(key.values())


def without_gpu_index(device: str) -> str:
    """The device column without the GPU's index: one kind of GPU, whichever of a host's ran it."""
    return re.sub(r" \(cuda:\d+\)$", "", device)


def csv_path(output_dir: Path, task: str) -> Path:
    return output_dir / f"{task}.csv"


def part_path(output_dir: Path, task: str, rank: int) -> Path:
    """Where one rank of a torchrun sweep appends its rows until rank 0 merges them."""
    return output_dir / f"{task}.csv.part{rank}"


def part_paths(output_dir: Path, task: str) -> list[Path]:
    return sorted(output_dir.glob(f"{task}.csv.part*"))


def read_header(path: Path) -> list[str] | None:
    """The file's header row, or None when the file is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="") as f:
        return next(csv.reader(f), None)


def check_header(path: Path) -> None:
    header = read_header(path)
    if header is not None and tuple(header) != COLUMNS:
        raise HeaderMismatch(
            f"{path} has other columns than this version writes; move it aside or choose another --output-dir"
        )


def read_rows(path: Path) -> list[dict]:
    if read_header(path) is None:
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def finished_keys(output_dir: Path, task: str) -> set[tuple[str, ...]]:
    """Keys of the rows already measured with status ok, in the task's CSV or a rank's part file."""
    paths = [csv_path(output_dir, task), *part_paths(output_dir, task)]
    return {row_key(row) for path in paths for row in read_rows(path) if row["status"] == "ok"}


def merge_parts(output_dir: Path, task: str, order: Callable[[dict], tuple]) -> int:
    """Append the rows of every part file to <task>.csv, sorted by `order`, then delete the parts."""
    parts = part_paths(output_dir, task)
    rows = sorted((row for path in parts for row in read_rows(path)), key=order)
    results = ResultsFile(csv_path(output_dir, task))
    try:
        for row in rows:
            results.append(row)
    finally:
        results.close()
    for path in parts:
        path.unlink()
    return len(rows)


class ResultsFile:
    """Appends rows to one task's CSV, writing the header only to a new file."""

    def __init__(self, path: Path):
        check_header(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = read_header(path) is None
        self.path = path
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._file.flush()

    def append(self, row: dict) -> None:
        self._writer.writerow({column: _format(row.get(column, "")) for column in COLUMNS})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _format(value) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"  # NaN -> empty
    return str(value)


def environment(device: torch.device) -> dict[str, str]:
    """Versions recorded in every row, so a CSV tells what produced it."""
    return {
        "torch": torch.__version__,
        "transformers": package_version("transformers"),
        "flash_attn": package_version("flash_attn") or package_version("flash-attn"),
        "cuda": (torch.version.cuda or "") if device.type == "cuda" else "",
        "git_commit": git_commit(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda:{device.index or 0})"
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
