"""The command line read into a frozen RunConfig, with every check a user's typo deserves.

Bad input raises UsageError (one line, exit 2 in cli.main) before any work: the arguments are
read and checked before PyTorch and transformers are imported, so --help and most errors answer
at once; only then do device, rank, defaults, the grid and `all` resolve.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bertbench.attention import registry
from bertbench.flags import UsageError, build_parser
from bertbench.model import strategies
from bertbench.spec.catalog import FAMILIES, TASKS, preset
from bertbench.spec.config import (
    CPU_DEFAULTS,
    CPU_SWEEP,
    DATASET_PASSES,
    DATASET_SEQUENCES,
    GPU_DEFAULTS,
    GPU_SWEEP,
    PAD_FRACTIONS,
    TORCH_DTYPES,
    DatasetPlan,
    GridPoint,
    RunConfig,
    TimingPlan,
    rank_from_environment,
)
from bertbench.spec.timings import EXTRA_TIMINGS
from bertbench.store import csvfile, dataset_file, records, signals
from bertbench.store.csvfile import scan
from bertbench.store.results import ResultsError, csv_path, part_paths

LIMITS = {  # flag: (lowest, highest) accepted; beyond these a value is a typo, not a benchmark
    "--batch-size": (1, 2**20),
    "--batch-sizes": (1, 2**20),
    "--max-seqlen": (1, 2**20),
    "--seqlens": (1, 2**20),
    "--num-batches": (1, 10**6),
    "--min-batches": (1, 10**6),
    "--warmup": (0, 10**5),
    "--seed": (0, 2**63 - 1),
    "--time-budget-ms": (1e-3, 3.6e6),
    "--gpu-time-calls": (0, 10**4),
    "--seqlen-stdev": (0, 2**20),
    "--capacity-limit": (1, 2**24),
    "--sequences": (1, 10**7),
    "--tokens-per-batch": (1, 2**30),
    "--passes": (1, 1000),
}


def _in_range(flag: str, value: float) -> float:
    low, high = LIMITS[flag]
    if not low <= value <= high:
        raise UsageError(f"{flag} must lie in [{_show(low)}, {_show(high)}], got {_show(value)}")
    return value


def _show(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def parse_args(argv: list[str] | None = None, prog: str = "bertbench") -> RunConfig:
    """The run's configuration. Checks that need nothing but the arguments come first; the
    device, the implementations that can run and the model's positions are asked of PyTorch
    and transformers afterwards."""
    args = build_parser(prog).parse_args(argv)
    unknown = [n for n in args.optimization if n not in (*registry.names(), "all")]
    unknown += [args.baseline] if args.baseline not in registry.names() else []
    if unknown:
        raise UsageError(f"unknown attention implementation {unknown[0]!r}; choose from {', '.join(registry.names())}")
    if args.dtype is not None and args.use_half is not None and (args.dtype == "fp16") != args.use_half:
        raise UsageError(f"--dtype {args.dtype} contradicts --{'' if args.use_half else 'no-'}use-half")
    if args.min_batches is not None and args.num_batches is not None and args.min_batches > args.num_batches:
        raise UsageError(f"--min-batches {args.min_batches} is more than --num-batches {args.num_batches}")
    grid_flags = [f for f in ("batch_sizes", "seqlens", "pad_fractions") if getattr(args, f) is not None]
    if grid_flags and not args.sweep:
        raise UsageError(f"--{grid_flags[0].replace('_', '-')} only applies with --sweep")
    for flag in LIMITS:  # every number given, before PyTorch loads
        value = getattr(args, flag[2:].replace("-", "_"))
        for v in value if isinstance(value, list) else [] if value is None else [value]:
            _in_range(flag, v)
    for pad in args.pad_fractions or []:
        if not 0 <= pad < 1:
            raise UsageError(f"--pad-fractions must lie in [0, 1), got {pad:g}")
    distribution = args.length_distribution or ("file" if args.lengths is not None else "normal")
    if args.lengths is not None and distribution != "file":
        raise UsageError(f"--lengths draws the lengths from the file; drop --length-distribution {distribution}")
    if distribution == "file" and args.lengths is None:
        raise UsageError("--length-distribution file needs --lengths FILE")
    if args.lengths is not None and (given := "--avg-seqlen" if args.avg_seqlen is not None else
                                     "--pad-fractions" if args.pad_fractions is not None else None):  # fmt: skip
        raise UsageError(f"{given}: with --lengths the file sets the real lengths, and so the padding")
    extras = [t for t in EXTRA_TIMINGS if getattr(args, t.column)]
    if extras and args.mode == "train":
        raise UsageError(f"{extras[0].flag} times inference only; drop it or --mode train")
    _check_dataset_flags(args, extras)
    tasks = TASKS if args.task == "all" else (args.task,)
    _check_output_dir(args.output_dir, tasks)
    cuda_present = False if args.use_cuda is False else load_torch().cuda.is_available()
    if args.use_cuda and not cuda_present:
        raise UsageError("--use-cuda: no CUDA GPU is visible to PyTorch")
    device = "cuda" if (cuda_present if args.use_cuda is None else args.use_cuda) else "cpu"
    rank = rank_from_environment()
    if device == "cuda" and rank.distributed:  # one GPU per torchrun process
        device = f"cuda:{rank.local_rank}"
    on_gpu = device != "cpu"
    if not on_gpu and (gpu_only := [t for t in extras if t.needs_gpu and not (args.dataset and t.dataset)]):
        raise UsageError(f"{gpu_only[0].flag} needs a CUDA GPU")
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    points = _grid(args, defaults, GPU_SWEEP if on_gpu else CPU_SWEEP)
    model_path = os.path.expanduser(args.model) if args.model is not None else None
    model_size = args.model_size or defaults["model_size"]
    if model_path is not None:
        family, positions = _check_model(model_path)
    else:
        family = preset(model_size).family
        positions = FAMILIES[family].positions
    longest = max(p.max_seqlen for p in points)
    if longest > positions:
        raise UsageError(
            f"max seqlen {longest} is longer than the model's {positions} positions (max_position_embeddings)"
        )
    lengths = _lengths_file(args.lengths, model_path) if args.lengths is not None else None
    if lengths is not None:  # one point per batch size and max seqlen, its mean the file's truncated there
        points = tuple(dict.fromkeys(GridPoint(p.batch_size, p.max_seqlen, round(lengths.mean(p.max_seqlen), 2))
                                     for p in points))  # fmt: skip
    dataset = _dataset_plan(args, points, lengths, device, tasks) if args.dataset else None
    if dataset is not None and args.avg_seqlen is None and lengths is None:  # a pass of full sequences pads nothing
        points = tuple(GridPoint(p.batch_size, p.max_seqlen, max(1.0, p.max_seqlen / 2)) for p in points)
    dtype = args.dtype or {True: "fp16", False: "fp32"}.get(args.use_half, "fp16" if on_gpu else "fp32")
    torch = load_torch()
    from bertbench.attention.registry import unavailable_reason

    where = torch.device(device), getattr(torch, TORCH_DTYPES[dtype])
    with signals.deferred():  # asks transformers and the kernels' packages, importing them
        everything = [
            n
            for n in registry.names()
            if n != args.baseline and unavailable_reason(n, *where) is None and registry.get(n).in_all
        ]
    implementations = tuple(
        dict.fromkeys(n for name in args.optimization for n in (everything if name == "all" else [name]))
    )
    explicit = {"model_size": args.model_size, "num_batches": args.num_batches, "warmup": args.warmup}
    return RunConfig(
        tasks=tasks,
        model_size=model_size,
        model_path=model_path,
        model_family=family,
        implementations=implementations,
        baseline=args.baseline,
        device=device,
        dtype=dtype,
        points=points,
        seqlen_stdev=args.seqlen_stdev,
        length_distribution=distribution,
        use_mask=args.use_mask,
        packed=args.packed,
        mode=args.mode,
        timings=tuple(t.name for t in extras),
        energy=args.energy,
        capacity_limit=args.capacity_limit if args.capacity else None,
        timing=_timing(args, defaults),
        seed=args.seed,
        output_dir=args.output_dir,
        resume=args.resume,
        cpu_sized=device == "cpu" and any(v is None for v in explicit.values()),
        quiet=args.quiet,
        lengths=lengths.lengths if lengths else None,
        lengths_file=lengths.path if lengths else None,
        lengths_sha256=lengths.sha256 if lengths else None,
        dataset=dataset,
    )


def load_torch():
    """PyTorch, imported whole: its C++ start-up runs Python code, and a signal's exception raised
    there is one the C++ side cannot pass on (the process aborted with exit -6, "terminate
    called ..." and the Python stack of an import on stderr: once in the 50 signals of the
    start-up test, on a loaded machine). The signal is raised once the import is done."""
    with signals.deferred():
        import torch
    return torch


SLOW_IN_ALL = tuple(n for n in registry.names() if not registry.get(n).in_all)  # left out of `all`


def _timing(args, defaults: dict) -> TimingPlan:
    """A time budget by default; --num-batches alone fixes the count, as the original project did."""
    fixed = args.num_batches is not None and args.time_budget_ms is None
    return TimingPlan(
        warmup=_given(args.warmup, defaults["warmup"]),
        num_batches=_given(args.num_batches, defaults["num_batches"]),
        min_batches=_given(args.min_batches, defaults["min_batches"]),
        budget_ms=None if fixed else _given(args.time_budget_ms, defaults["budget_ms"]),
        gpu_calls=args.gpu_time_calls,
    )


def _given(value, default):
    return default if value is None else value


def _grid(args, defaults: dict, sweep_defaults: dict) -> tuple[GridPoint, ...]:
    if not args.sweep:
        batch_size = int(_in_range("--batch-size", _given(args.batch_size, defaults["batch_size"])))
        max_seqlen = int(_in_range("--max-seqlen", _given(args.max_seqlen, defaults["max_seqlen"])))
        avg = _given(args.avg_seqlen, max_seqlen)
        if not 1 <= avg <= max_seqlen:
            raise UsageError(f"--avg-seqlen must lie in [1, --max-seqlen {max_seqlen}], got {avg:g}")
        return (GridPoint(batch_size, max_seqlen, avg),)
    for flag, given in (
        ("--batch-size", args.batch_size),
        ("--max-seqlen", args.max_seqlen),
        ("--avg-seqlen", args.avg_seqlen),
    ):
        if given is not None:
            raise UsageError(f"{flag} sets a single point; with --sweep use --batch-sizes, --seqlens, --pad-fractions")
    batch_sizes = _given(args.batch_sizes, sweep_defaults["batch_sizes"])  # given ones: checked in parse_args
    seqlens = _given(args.seqlens, sweep_defaults["seqlens"])
    pads = _given(args.pad_fractions, PAD_FRACTIONS)
    return tuple(
        GridPoint(b, s, max(1.0, round((1 - pad) * s, 2)))
        for b in dict.fromkeys(batch_sizes)
        for s in dict.fromkeys(seqlens)
        for pad in dict.fromkeys(pads)
    )


DATASET_ONLY = ("sequences", "strategies", "tokens_per_batch")  # flags of --dataset alone (--passes: a default)
NOT_WITH_DATASET = {  # flag: why --dataset does not take it
    "sweep": "--dataset runs one batch size and max seqlen; drop --sweep",
    "capacity": "--dataset and --capacity are separate runs; choose one",
    "packed": "--dataset runs the packed strategy itself (--strategies packed); drop --packed",
    "energy": "--dataset does not read the energy counter; drop --energy",
    "resume": "--dataset runs every pass afresh; drop --resume",
}


def _check_dataset_flags(args, extras) -> None:
    """--dataset's flags only with it, and nothing it does not take (before PyTorch loads)."""
    if not args.dataset:
        given = [f for f in DATASET_ONLY if getattr(args, f) is not None]
        if given or args.passes != DATASET_PASSES:
            raise UsageError(f"--{(given or ['passes'])[0].replace('_', '-')} only applies with --dataset")
        return
    refused = [why for flag, why in NOT_WITH_DATASET.items() if getattr(args, flag)]
    if refused:
        raise UsageError(refused[0])
    if args.mode == "train":
        raise UsageError("--dataset times inference passes only; drop --mode train")
    if refused := [t for t in extras if not t.dataset]:
        taken = " and ".join(["the Python loop", *(t.label + "s" for t in EXTRA_TIMINGS if t.dataset)])
        raise UsageError(f"--dataset times {taken} only; drop {refused[0].flag}")
    unknown = [s for s in args.strategies or () if s not in strategies.names()]
    if unknown:
        raise UsageError(f"--strategies: unknown strategy {unknown[0]!r}; choose from {', '.join(strategies.names())}")


def _dataset_plan(args, points: tuple[GridPoint, ...], lengths, device: str, tasks) -> DatasetPlan:
    """The pass's sizes, checked against the point and the lengths file; each task's dataset file too."""
    (point,) = points
    budget = args.tokens_per_batch if args.tokens_per_batch is not None else point.batch_size * point.max_seqlen
    if budget < point.max_seqlen:
        raise UsageError(f"--tokens-per-batch {budget} is below the max seqlen {point.max_seqlen}: a sequence must fit")
    available = len(lengths.lengths) if lengths is not None else None
    sequences = args.sequences or available or DATASET_SEQUENCES["cuda" if device != "cpu" else "cpu"]
    if available is not None and sequences > available:
        raise UsageError(f"--sequences {sequences}: the --lengths file has {available} lengths")
    for task in tasks:
        try:
            dataset_file.check(dataset_file.dataset_path(args.output_dir, task))
        except ResultsError as e:
            raise UsageError(str(e)) from None
    return DatasetPlan(sequences, args.strategies or strategies.names(), budget, args.passes)


def _lengths_file(path: Path, model_path: str | None):
    """The user's lengths (model.lengths); a bad file is one line, before any model loads."""
    from bertbench.model.lengths import LengthsError, read_lengths, tokenizer_of

    try:
        return read_lengths(path, tokenizer_of(model_path) if model_path is not None else None)
    except LengthsError as e:
        raise UsageError(str(e)) from None


WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _check_model(name: str) -> tuple[str, int]:
    """The checkpoint's family (spec.catalog.FAMILIES) and usable positions (RoBERTa's less its
    pad offset). A name that looks like a path must be a directory; any other name is a Hub id,
    which from_pretrained resolves (offline: from the local cache). Whatever fails to load is
    one line."""
    looks_local = name.startswith((".", "/", "~")) or os.path.exists(name)
    if looks_local and not os.path.isdir(name):
        what = "a file, not a checkpoint directory" if os.path.exists(name) else "no such directory"
        raise UsageError(f"--model {name}: {what}")
    from bertbench.model.families import family_of
    from bertbench.model.heads import load_config

    try:
        try:  # a folder, or a Hub id already in the local cache: no network
            config = load_config(name, local_files_only=True)
        except OSError:
            if looks_local or not _hub_reachable():  # the Hub's client would retry for ~30 s first
                raise
            config = load_config(name)
    except Exception as e:  # any failure to read it is the user's input, not a crash
        raise UsageError(f"--model {name}: cannot load a BERT-family config ({_first_line(e)})") from None
    family = family_of(config).spec  # load_config refused any other
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    if not (isinstance(hidden, int) and isinstance(heads, int) and 0 < heads <= hidden and hidden % heads == 0):
        raise UsageError(
            f"--model {name}: its config's hidden_size {hidden!r} is not a positive multiple of "
            f"num_attention_heads {heads!r}"
        )
    if looks_local and not any(os.path.exists(os.path.join(name, f)) for f in WEIGHTS):
        raise UsageError(f"--model {name}: no weights in it ({', '.join(WEIGHTS[::2])} or their index)")
    positions = getattr(config, "max_position_embeddings", None)
    offset = (config.pad_token_id or 0) + 1 if family.positions_after_pad else 0
    if not isinstance(positions, int) or positions - offset < 1:
        raise UsageError(f"--model {name}: its config has no valid max_position_embeddings ({positions!r})")
    return family.name, positions - offset


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection at all (never when HF_HUB_OFFLINE is set)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname or "", endpoint.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _check_output_dir(output_dir: Path, tasks: tuple[str, ...]) -> None:
    """Everything the run will write, checked without changing anything: the directory (or,
    when it does not exist yet, the nearest one above it, where it will be created) must take
    a new file, tried by creating one since root ignores permission bits; runs/ likewise when
    present; each task's CSV, part files and .jsonl record must be ours, readable and writable.
    A damaged tail, an older layout or a record out of step passes: the run repairs, migrates or
    rewrites it."""
    try:
        existing = output_dir
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(f"--output-dir {output_dir}: {existing} is not a directory")
        _check_writable(existing, f"--output-dir {output_dir}")
        runs = output_dir / "runs"
        if runs.exists():
            if not runs.is_dir():
                raise UsageError(f"{runs}: not a directory (run manifests go there)")
            _check_writable(runs, str(runs))
        for task in tasks:
            for path in [csv_path(output_dir, task), *part_paths(output_dir, task)]:
                _check_results_file(path)
            _check_results_file(csv_path(output_dir, task).with_suffix(records.SUFFIX))
    except (OSError, ValueError) as e:  # a path the system cannot even look at (too long, NUL, ...)
        raise UsageError(f"--output-dir {output_dir}: {getattr(e, 'strerror', None) or e}") from None


def _check_writable(folder: Path, name: str) -> None:
    with signals.deferred():  # the probe is never left behind
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".bertbench-probe-")
        except OSError as e:
            raise UsageError(f"{name}: cannot create files in {folder} ({e.strerror or e})") from None
        os.close(fd)
        os.unlink(probe)


def _check_results_file(path: Path) -> None:
    try:
        if not csvfile.check_appendable(path):
            return
        if path.suffix == records.SUFFIX:
            records.check(path, csv_exists=path.with_suffix(".csv").exists())
        else:
            scan(path)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
