"""Command-line arguments to a frozen RunConfig, with every check a user's typo deserves.

Bad input ends in one line on stderr and exit code 2 (UsageError), before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bertbench.models import IMPLEMENTATIONS, PRESETS, TASKS, load_config, unavailable_reason
from bertbench.results import HeaderMismatch, check_header, csv_path

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# The seed's grid, and the smaller one (with the tiny preset) a CPU-only machine runs by default.
GPU_SWEEP = {"batch_sizes": (1, 2, 4, 8, 16, 32, 64, 128), "seqlens": (128, 256, 512)}
CPU_SWEEP = {"batch_sizes": (1, 2, 4, 8), "seqlens": (32, 64, 128)}
PAD_FRACTIONS = (0.0, 0.1, 0.2, 0.5, 0.75)
GPU_DEFAULTS = {"model_size": "base", "num_batches": 50, "warmup": 5, "batch_size": 64, "max_seqlen": 512}
CPU_DEFAULTS = {"model_size": "tiny", "num_batches": 10, "warmup": 2, "batch_size": 8, "max_seqlen": 128}


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


@dataclass(frozen=True)
class GridPoint:
    batch_size: int
    max_seqlen: int
    avg_seqlen: float

    @property
    def pad_fraction(self) -> float:
        return round(1 - self.avg_seqlen / self.max_seqlen, 4)


@dataclass(frozen=True)
class RunConfig:
    tasks: tuple[str, ...]
    model_size: str
    model_path: str | None
    implementations: tuple[str, ...]
    baseline: str
    device: str
    dtype: str
    points: tuple[GridPoint, ...]
    seqlen_stdev: float
    use_mask: bool
    packed: bool
    mode: str
    cuda_graphs: bool
    compile: bool
    num_batches: int
    min_batches: int
    time_budget_ms: float | None
    warmup: int
    seed: int
    output_dir: Path
    resume: bool
    cpu_sized: bool  # CPU-sized defaults were applied

    @property
    def model_name(self) -> str:
        return self.model_path or f"bert-{self.model_size}"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it is a value, not None (resolved per device) or a switch's False."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="benchmark_bert.py",
        description="Time and measure the memory of BERT task heads under optimized attention "
        "implementations against a baseline, and append the rows to <output-dir>/<task>.csv.",
        formatter_class=_HelpFormatter,
    )
    what = p.add_argument_group("what to run")
    what.add_argument("--task", choices=(*TASKS, "all"), default="mlm", help="task head; all runs the four in turn")
    what.add_argument(
        "--model-size",
        choices=tuple(PRESETS),
        default=None,
        help="random-weight preset (layers, hidden, heads): "
        + ", ".join(f"{k}={v}" for k, v in PRESETS.items())
        + "; default base on a GPU, tiny on the CPU",
    )
    what.add_argument(
        "--model",
        default=None,
        metavar="PATH_OR_ID",
        help="load this checkpoint with from_pretrained instead of a preset",
    )
    what.add_argument(
        "--optimization",
        "--attn",
        nargs="+",
        default=["flash_attention_2", "sdpa"],
        metavar="IMPL",
        help=f"attention implementations to compare with the baseline: {', '.join(IMPLEMENTATIONS)}; "
        "'all' names every one that can run on this machine",
    )
    what.add_argument("--baseline", default="eager", metavar="IMPL", help="implementation every other is compared with")

    grid = p.add_argument_group("batches and grid")
    grid.add_argument("--batch-size", type=int, default=None, help="sequences per batch (default 64 GPU, 8 CPU)")
    grid.add_argument("--max-seqlen", type=int, default=None, help="padded length (default 512 GPU, 128 CPU)")
    grid.add_argument("--avg-seqlen", type=float, default=None, help="mean real length (default: max-seqlen)")
    grid.add_argument("--seqlen-stdev", type=float, default=10.0, help="standard deviation of the real lengths")
    grid.add_argument("--use-mask", action=argparse.BooleanOptionalAction, default=True, help="pass the attention mask")
    grid.add_argument(
        "--packed",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="run each implementation on the batch packed (real tokens in one row, cu_seqlens, no mask); "
        "only flash_attention_2/3 have that path; the baseline stays padded",
    )
    grid.add_argument(
        "--sweep",
        action="store_true",
        help="run the grid batch sizes x seqlens x pad fractions (avg seqlen = (1 - pad) x max seqlen)",
    )
    grid.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=None,
        help="sweep batch sizes (default "
        f"{' '.join(map(str, GPU_SWEEP['batch_sizes']))} GPU, {' '.join(map(str, CPU_SWEEP['batch_sizes']))} CPU)",
    )
    grid.add_argument(
        "--seqlens",
        type=int,
        nargs="+",
        default=None,
        help="sweep max seqlens (default "
        f"{' '.join(map(str, GPU_SWEEP['seqlens']))} GPU, {' '.join(map(str, CPU_SWEEP['seqlens']))} CPU)",
    )
    grid.add_argument(
        "--pad-fractions",
        type=float,
        nargs="+",
        default=None,
        help=f"sweep pad fractions (default {' '.join(map(str, PAD_FRACTIONS))})",
    )

    how = p.add_argument_group("how to measure")
    how.add_argument(
        "--num-batches", type=int, default=None, help="timed batches per measurement (default 50 GPU, 10 CPU)"
    )
    how.add_argument("--min-batches", type=int, default=10, help="fewest timed batches when --time-budget-ms is set")
    how.add_argument(
        "--time-budget-ms",
        type=float,
        default=None,
        help="time about this long per measurement: the count adapts to the latency seen in warm-up, "
        "between --min-batches and --num-batches (default: always --num-batches)",
    )
    how.add_argument(
        "--mode",
        choices=("inference", "train"),
        default="inference",
        help="inference: the forward under inference_mode; train: forward + backward with dropout (no optimizer step)",
    )
    how.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="also time every model (the baseline too) replayed from a captured CUDA graph: GPU time without "
        "Python's launch overhead; rows whose loop latency is >= 1.5x the graph's are flagged launch_bound",
    )
    how.add_argument(
        "--compile",
        action="store_true",
        help="also time every model (the baseline too) after torch.compile for each batch's shapes; "
        "compile time goes in its own column, never in the latency",
    )
    how.add_argument("--warmup", type=int, default=None, help="untimed batches before timing (default 5 GPU, 2 CPU)")
    how.add_argument(
        "--use-cuda", action=argparse.BooleanOptionalAction, default=None, help="default: a GPU when present"
    )
    how.add_argument(
        "--use-half", action=argparse.BooleanOptionalAction, default=None, help="fp16 (--no-use-half: fp32)"
    )
    how.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default fp16 on a GPU, fp32 on the CPU")
    how.add_argument("--seed", type=int, default=0, help="seed of the weights and of every batch")

    out = p.add_argument_group("results")
    out.add_argument("--output-dir", type=Path, default=Path("results"), help="where <task>.csv is appended")
    out.add_argument("--resume", action="store_true", help="skip grid points already in the CSV with status ok")
    return p


def parse_args(argv: list[str] | None = None) -> RunConfig:
    args = build_parser().parse_args(argv)
    cuda_present = torch.cuda.is_available()
    if args.use_cuda and not cuda_present:
        raise UsageError("--use-cuda: no CUDA GPU is visible to PyTorch")
    device = "cuda" if (cuda_present if args.use_cuda is None else args.use_cuda) else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per torchrun process
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    on_gpu = device != "cpu"
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    sweep_defaults = GPU_SWEEP if on_gpu else CPU_SWEEP

    unknown = [n for n in args.optimization if n not in (*IMPLEMENTATIONS, "all")]
    unknown += [args.baseline] if args.baseline not in IMPLEMENTATIONS else []
    if unknown:
        raise UsageError(f"unknown attention implementation {unknown[0]!r}; choose from {', '.join(IMPLEMENTATIONS)}")
    everything = [
        n for n in IMPLEMENTATIONS if n != args.baseline and unavailable_reason(n, torch.device(device)) is None
    ]
    implementations = tuple(
        dict.fromkeys(n for name in args.optimization for n in (everything if name == "all" else [name]))
    )

    if args.dtype is not None and args.use_half is not None and (args.dtype == "fp16") != args.use_half:
        raise UsageError(f"--dtype {args.dtype} contradicts --{'' if args.use_half else 'no-'}use-half")
    dtype = args.dtype or {True: "fp16", False: "fp32"}.get(args.use_half, "fp16" if on_gpu else "fp32")

    grid_flags = [f for f in ("batch_sizes", "seqlens", "pad_fractions") if getattr(args, f) is not None]
    if grid_flags and not args.sweep:
        raise UsageError(f"--{grid_flags[0].replace('_', '-')} only applies with --sweep")
    points = _grid(args, defaults, sweep_defaults)

    num_batches = int(_positive("--num-batches", _given(args.num_batches, defaults["num_batches"])))
    warmup = _given(args.warmup, defaults["warmup"])
    if warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    _positive("--min-batches", args.min_batches)
    if args.time_budget_ms is not None and args.time_budget_ms <= 0:
        raise UsageError("--time-budget-ms must be positive")
    if args.seqlen_stdev < 0:
        raise UsageError("--seqlen-stdev must be 0 or more")
    extras = [flag for flag, given in (("--cuda-graphs", args.cuda_graphs), ("--compile", args.compile)) if given]
    if extras and args.mode == "train":
        raise UsageError(f"{extras[0]} times inference only; drop it or --mode train")
    if args.cuda_graphs and not on_gpu:
        raise UsageError("--cuda-graphs needs a CUDA GPU")
    if args.model is not None:
        _check_model(args.model)
    tasks = TASKS if args.task == "all" else (args.task,)
    _check_output_dir(args.output_dir, tasks)

    explicit = {"model_size": args.model_size, "num_batches": args.num_batches, "warmup": args.warmup}
    return RunConfig(
        tasks=tasks,
        model_size=args.model_size or defaults["model_size"],
        model_path=args.model,
        implementations=implementations,
        baseline=args.baseline,
        device=device,
        dtype=dtype,
        points=points,
        seqlen_stdev=args.seqlen_stdev,
        use_mask=args.use_mask,
        packed=args.packed,
        mode=args.mode,
        cuda_graphs=args.cuda_graphs,
        compile=args.compile,
        num_batches=num_batches,
        min_batches=args.min_batches,
        time_budget_ms=args.time_budget_ms,
        warmup=warmup,
        seed=args.seed,
        output_dir=args.output_dir,
        resume=args.resume,
        cpu_sized=device == "cpu" and any(v is None for v in explicit.values()),
    )


def _given(value, default):
    return default if value is None else value


def _positive(flag: str, value: float) -> float:
    if value <= 0:
        raise UsageError(f"{flag} must be positive, got {value:g}")
    return value


def _grid(args, defaults: dict, sweep_defaults: dict) -> tuple[GridPoint, ...]:
    if not args.sweep:
        batch_size = int(_positive("--batch-size", _given(args.batch_size, defaults["batch_size"])))
        max_seqlen = int(_positive("--max-seqlen", _given(args.max_seqlen, defaults["max_seqlen"])))
        avg = _positive("--avg-seqlen", _given(args.avg_seqlen, max_seqlen))
        if avg > max_seqlen:
            raise UsageError(f"--avg-seqlen {avg:g} is larger than --max-seqlen {max_seqlen}")
        return (GridPoint(batch_size, max_seqlen, avg),)
    for flag, given in (
        ("--batch-size", args.batch_size),
        ("--max-seqlen", args.max_seqlen),
        ("--avg-seqlen", args.avg_seqlen),
    ):
        if given is not None:
            raise UsageError(f"{flag} sets a single point; with --sweep use --batch-sizes, --seqlens, --pad-fractions")
    batch_sizes = _given(args.batch_sizes, sweep_defaults["batch_sizes"])
    seqlens = _given(args.seqlens, sweep_defaults["seqlens"])
    pads = _given(args.pad_fractions, PAD_FRACTIONS)
    for flag, values in (("--batch-sizes", batch_sizes), ("--seqlens", seqlens)):
        for v in values:
            _positive(flag, v)
    for pad in pads:
        if not 0 <= pad < 1:
            raise UsageError(f"--pad-fractions must lie in [0, 1), got {pad:g}")
    return tuple(
        GridPoint(b, s, round((1 - pad) * s, 2))
        for b in dict.fromkeys(batch_sizes)
        for s in dict.fromkeys(seqlens)
        for pad in dict.fromkeys(pads)
    )


def _check_model(path: str) -> None:
    looks_local = os.sep in path or path.startswith(".") or os.path.exists(path)
    if looks_local and not os.path.isdir(path):
        raise UsageError(f"--model {path}: no such directory")
    try:
        load_config(path)
    except Exception as e:  # any failure to read it is the user's input, not a crash
        raise UsageError(f"--model {path}: cannot load a BERT config ({_first_line(e)})") from None


def _check_output_dir(output_dir: Path, tasks: tuple[str, ...]) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output-dir {output_dir}: cannot create it ({e.strerror})") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--output-dir {output_dir}: not writable")
    for task in tasks:
        try:
            check_header(csv_path(output_dir, task))
        except HeaderMismatch as e:
            raise UsageError(str(e)) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def fail(message: str, code: int = 2) -> None:
    print(f"benchmark_bert.py: error: {message}", file=sys.stderr)
    raise SystemExit(code)
