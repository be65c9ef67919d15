"""Every derived figure and threshold, defined once: rows.py computes them for new rows, the report
package for older rows that lack them. Plain arithmetic, so each formula takes floats or pandas
Series alike; no torch here.
"""

from __future__ import annotations

from typing import TypeVar

from bertbench.spec.timings import EXTRA_COLUMNS

Number = TypeVar("Number")  # a float, or a pandas Series of floats

# Row statuses: `ok` and `mismatch` were measured (a mismatch ran, with the wrong numbers).
STATUSES = ("ok", "mismatch", "unavailable", "oom", "error")
MEASURED = ("ok", "mismatch")

NOISY_REL_IQR = 0.1  # torch.utils.benchmark warns above this interquartile range / median
HOST_BOUND_SHARE = 0.8  # the host's fastest enqueue of a call over its median latency, from which it sets the pace

# What a column an older file lacks meant before it existed (as read back: bools, not text);
# text columns without one stay empty.
OLD_ROW_DEFAULTS: dict[str, object] = {
    "baseline": "eager",
    "device": "unknown device",
    "dtype": "unknown dtype",
    "use_mask": True,
    "packed": False,
    "mode": "inference",
    "length_distribution": "normal",
    **dict.fromkeys(EXTRA_COLUMNS, False),
}
# The settings among them that take part in a row's key: as the CSV's text.
OLD_KEY_DEFAULTS = {
    c: str(OLD_ROW_DEFAULTS[c]) for c in ("packed", "mode", *EXTRA_COLUMNS, "use_mask", "length_distribution")
}


def speedup_pct(baseline_ms: Number, ms: Number) -> Number:
    """How much faster than the baseline, in percent: (baseline / ms - 1) x 100."""
    return (baseline_ms / ms - 1) * 100


def busy_pct(gpu_ms: Number, ms: Number) -> Number:
    """The share of a call of `ms` milliseconds that the GPU was busy, in percent."""
    return 100 * gpu_ms / ms


def mem_saved_pct(baseline_mb: Number, mb: Number) -> Number:
    """Peak memory saved against the baseline, in percent: (1 - mb / baseline) x 100."""
    return (1 - mb / baseline_mb) * 100


def per_second(count: Number, ms: Number) -> Number:
    """A count per call of `ms` milliseconds, per second (tokens/s)."""
    return count / ms * 1e3


def pct_of_peak(tflops: Number, peak_tflops: Number) -> Number:
    return 100 * tflops / peak_tflops


def baseline_label(name: str) -> str:
    """How the baseline is named beside the implementations in charts, tables and reports."""
    return f"{name} (baseline)"
