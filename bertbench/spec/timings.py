"""The ways of timing a call besides the Python loop, as the command line, the CSV and the
report know them: one entry each (how it times is measure/variants.py's entry of the same name).

A new one adds its entry here, its Variant in measure/variants.py and its columns in
spec/schema.Row (latency_ms_<name>[_baseline], speedup_<name>_pct, attention_kernels_<name>
and the key column); the switch, the row's key, the charts, standings, reports and compare
read this table. No torch here: the command line is checked before PyTorch loads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtraTiming:
    name: str  # the suffix of its columns
    flag: str  # the switch that asks for it
    column: str  # the row's key column: the run asked for it (False in files older than it)
    label: str  # in tables and details: "sdpa + CUDA graph"
    both: str  # in chart labels: "speedup vs eager, both CUDA graphs"
    tag: str  # in compare's series names: "sdpa +graphs"
    help: str
    needs_gpu: bool = False
    dataset: bool = False  # --dataset takes it too (a graph pass after its loop passes); on the CPU rows say why not


EXTRA_TIMINGS: tuple[ExtraTiming, ...] = (
    ExtraTiming(
        "graph",
        "--cuda-graphs",
        "cuda_graphs",
        "CUDA graph",
        "both CUDA graphs",
        "+graphs",
        "also time every model (the baseline too) replayed from a captured CUDA graph: GPU time without "
        "Python's launch overhead; rows whose loop latency is >= 1.5x the graph's are flagged launch_bound; "
        "with --dataset, each pass also replayed from a graph per batch shape (one per packed capacity)",
        needs_gpu=True,
        dataset=True,
    ),
    ExtraTiming(
        "compiled",
        "--compile",
        "compile",
        "compiled",
        "both compiled",
        "+compile",
        "also time every model (the baseline too) after torch.compile for each batch's shapes; "
        "compile time goes in its own column, never in the latency",
    ),
)
EXTRA_COLUMNS = tuple(t.column for t in EXTRA_TIMINGS)  # key columns that add measurements to a row
