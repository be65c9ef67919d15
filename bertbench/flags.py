"""The command line's flags: names, types, defaults and help, nothing else. Read by the
`bertbench` command (cli.py) and by scripts/gen_reference.py for docs/reference.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bertbench import __version__
from bertbench.attention.registry import names
from bertbench.model import strategies
from bertbench.spec.catalog import FAMILY_PRESETS, PRESET_NAMES, PRESETS, TASKS
from bertbench.spec.config import (
    CPU_SWEEP,
    DATASET_PASSES,
    DATASET_SEQUENCES,
    DTYPES,
    GPU_SWEEP,
    LENGTH_DISTRIBUTIONS,
    PAD_FRACTIONS,
)
from bertbench.spec.timings import EXTRA_TIMINGS


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it is a value, not None (resolved per device) or a switch's False."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(message)


def build_parser(prog: str = "bertbench") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Time and measure the memory of BERT task heads under optimized attention "
        "implementations against a baseline, and append the rows to <output-dir>/<task>.csv.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"bert-attention-bench {__version__}")
    what = p.add_argument_group("what to run")
    what.add_argument("--task", choices=(*TASKS, "all"), default="mlm", help="task head; all runs the four in turn")
    what.add_argument(
        "--model-size",
        choices=PRESET_NAMES,
        default=None,
        metavar="PRESET",
        help="random-weight preset; BERT's (layers, hidden, heads): "
        + ", ".join(f"{k}={v}" for k, v in PRESETS.items())
        + "; other BERT-family encoders, <family>-base in its base checkpoint's shape and <family>-tiny "
        + "for the CPU: "
        + ", ".join(dict.fromkeys(p.family for p in FAMILY_PRESETS.values()))
        + "; default base on a GPU, tiny on the CPU",
    )
    what.add_argument(
        "--model",
        type=text,
        default=None,
        metavar="PATH_OR_ID",
        help="load this checkpoint with from_pretrained instead of a preset: BERT, RoBERTa, DistilBERT, ELECTRA "
        "or ModernBERT (its config.json's model_type)",
    )
    what.add_argument(
        "--optimization",
        "--attn",
        nargs="+",
        default=["flash_attention_2", "sdpa"],
        metavar="IMPL",
        help=f"attention implementations to compare with the baseline: {', '.join(names())}; "
        "'all' names every one that can run on this machine but flex_attention, which compiles for each "
        "seqlen and mask kind (name it to run it)",
    )
    what.add_argument("--baseline", default="eager", metavar="IMPL", help="implementation every other is compared with")

    grid = p.add_argument_group("batches and grid")
    grid.add_argument("--batch-size", type=whole, default=None, help="sequences per batch (default 64 GPU, 8 CPU)")
    grid.add_argument("--max-seqlen", type=whole, default=None, help="padded length (default 512 GPU, 128 CPU)")
    grid.add_argument("--avg-seqlen", type=finite, default=None, help="mean real length (default: max-seqlen)")
    grid.add_argument("--seqlen-stdev", type=finite, default=10.0, help="standard deviation of the real lengths")
    grid.add_argument(
        "--length-distribution",
        choices=LENGTH_DISTRIBUTIONS,
        default=None,
        help="how real lengths are drawn around --avg-seqlen (or each pad fraction's) with --seqlen-stdev: normal "
        "(default), uniform, lognormal (a long tail, cut at the max seqlen), or file (--lengths)",
    )
    grid.add_argument(
        "--lengths",
        type=Path,
        default=None,
        metavar="FILE",
        help="draw real lengths from a file: one token count per line, or texts (one per line, or JSON Lines with a "
        '"text" field) that the --model checkpoint\'s tokenizer counts; each truncated at the max seqlen, the padding '
        "then set by the file (no --avg-seqlen or --pad-fractions)",
    )
    grid.add_argument("--use-mask", action=argparse.BooleanOptionalAction, default=True, help="pass the attention mask")
    grid.add_argument(
        "--packed",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="run each implementation on the batch packed (real tokens in one row, cu_seqlens, no mask); "
        "only flash_attention_2/3 and sdpa-varlen have that path; the baseline stays padded",
    )
    grid.add_argument(
        "--sweep",
        action="store_true",
        help="run the grid batch sizes x seqlens x pad fractions (avg seqlen = (1 - pad) x max seqlen)",
    )
    grid.add_argument(
        "--batch-sizes",
        type=whole,
        nargs="+",
        default=None,
        help="sweep batch sizes (default "
        f"{' '.join(map(str, GPU_SWEEP['batch_sizes']))} GPU, {' '.join(map(str, CPU_SWEEP['batch_sizes']))} CPU)",
    )
    grid.add_argument(
        "--seqlens",
        type=whole,
        nargs="+",
        default=None,
        help="sweep max seqlens (default "
        f"{' '.join(map(str, GPU_SWEEP['seqlens']))} GPU, {' '.join(map(str, CPU_SWEEP['seqlens']))} CPU)",
    )
    grid.add_argument(
        "--pad-fractions",
        type=finite,
        nargs="+",
        default=None,
        help=f"sweep pad fractions (default {' '.join(map(str, PAD_FRACTIONS))})",
    )

    how = p.add_argument_group("how to measure")
    how.add_argument(
        "--num-batches",
        type=whole,
        default=None,
        help="timed batches per measurement: alone, exactly this many, as the original project timed; with "
        "--time-budget-ms, at most this many (default: a time budget, at most 50 GPU, 10 CPU)",
    )
    how.add_argument(
        "--min-batches",
        type=whole,
        default=None,
        help="fewest timed batches under a time budget (default 5 GPU, 3 CPU)",
    )
    how.add_argument(
        "--time-budget-ms",
        type=finite,
        default=None,
        help="time about this long per measurement: the count adapts to the latency seen in warm-up, between "
        "--min-batches and --num-batches (default 40 GPU, 30 CPU, unless --num-batches alone fixes the count)",
    )
    how.add_argument(
        "--gpu-time-calls",
        type=whole,
        default=3,
        help="GPU: profile up to this many untimed calls of each model, before its timed ones, for its GPU time "
        "(the sum of its kernels' durations, which the host's speed does not move: gpu_ms, speedup_gpu_pct): the "
        "observed call and the one refilling the allocator's pool, and more only while they differ by over 1 %%; "
        "0 leaves it out",
    )
    how.add_argument(
        "--mode",
        choices=("inference", "train"),
        default="inference",
        help="inference: the forward under inference_mode; train: forward + backward with dropout (no optimizer step)",
    )
    for timing in EXTRA_TIMINGS:
        how.add_argument(timing.flag, dest=timing.column, action="store_true", help=timing.help)
    how.add_argument(
        "--energy",
        action="store_true",
        help="also read the GPU's energy counter (nvidia-ml-py) over ~1.2 s of each model's calls per point: "
        "joules per 1000 real tokens and mean power; unavailable with the reason where it cannot be trusted",
    )
    how.add_argument(
        "--capacity",
        action="store_true",
        help="instead of timing: for each implementation (and the baseline) and max seqlen of the grid, the largest "
        "batch that runs without running out of memory (doubling, then bisection to 3 %%; one forward, or one "
        "training step with --mode train, per probe); rows in <output-dir>/capacity/<task>.csv",
    )
    how.add_argument("--capacity-limit", type=whole, default=2**16, help="largest batch --capacity probes")
    how.add_argument(
        "--warmup",
        type=whole,
        default=None,
        help="untimed batches before timing (default 1); with 0 one is still made, as the last always is: it "
        "reads peak memory, kernels and output",
    )
    how.add_argument(
        "--use-cuda", action=argparse.BooleanOptionalAction, default=None, help="default: a GPU when present"
    )
    how.add_argument(
        "--use-half", action=argparse.BooleanOptionalAction, default=None, help="fp16 (--no-use-half: fp32)"
    )
    how.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default fp16 on a GPU, fp32 on the CPU")
    how.add_argument("--seed", type=whole, default=0, help="seed of the weights and of every batch")

    data = p.add_argument_group("whole-dataset pass (--dataset)")
    data.add_argument(
        "--dataset",
        action="store_true",
        help="instead of the grid: run --sequences sequences (drawn from the length distribution, or the --lengths "
        "file's) through the baseline and each implementation, once per batching strategy, timing whole passes; "
        "one batch size and max seqlen (--avg-seqlen defaults to half of it); rows in <output-dir>/dataset/<task>.csv",
    )
    data.add_argument(
        "--sequences",
        type=whole,
        default=None,
        help="sequences in the pass (default: every length of the --lengths file, in file order; else "
        f"{DATASET_SEQUENCES['cuda']} GPU, {DATASET_SEQUENCES['cpu']} CPU)",
    )
    data.add_argument(
        "--strategies",
        type=comma_list,
        default=None,
        metavar="LIST",
        help="batching strategies, comma-separated (default all): "
        + "; ".join(f"{s.name}: {s.help}" for s in strategies.STRATEGIES.values()),
    )
    data.add_argument(
        "--tokens-per-batch",
        type=whole,
        default=None,
        help="token budget of a packed batch, at least the max seqlen (default: batch size x max seqlen)",
    )
    data.add_argument(
        "--passes",
        type=whole,
        default=DATASET_PASSES,
        help="timed passes of each implementation x strategy, interleaved",
    )

    out = p.add_argument_group("results")
    out.add_argument(
        "--output-dir",
        type=path,
        default=Path("results"),
        help="where <task>.csv and its JSON Lines record <task>.jsonl are appended",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="skip the implementations and grid points already in the CSV as ok or mismatch, or as unavailable "
        "with the same torch, transformers, flash-attn and CUDA",
    )
    out.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (on a terminal) or line per grid point (elsewhere); what runs and the table of "
        "results are still printed",
    )
    return p


def finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def comma_list(value: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
    if not items:
        raise argparse.ArgumentTypeError("must name at least one")
    return items


def text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def path(value: str) -> Path:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if "\0" in value:
        raise argparse.ArgumentTypeError(f"not a path: {value!r}")
    return Path(value)


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
