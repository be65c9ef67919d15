"""rows.py's rule for a replay that ran other kernels than its loop: not the implementation's result."""

from __future__ import annotations

import torch

from bertbench.measure.gpu_time import GpuTime
from bertbench.measure.probes import PeakMemory
from bertbench.measure.timing import Latency
from bertbench.measure.variants import GRAPH, Outcome
from bertbench.run.point import Measured, Parity, PointResult
from bertbench.run.rows import ParityCheck, _variant_columns
from bertbench.spec.config import GridPoint
from bertbench.spec.schema import Row


def _measured(ms: float, kernels: str) -> Measured:
    outcome = Outcome(Latency((ms,) * 5), PeakMemory.unmeasured(), None, kernels, None, GpuTime((ms,) * 3, (9,) * 3))
    return Measured(outcome, Parity(None, 1e-4, None, 100))


def _columns(replay_kernels: str) -> tuple[Row, list[str]]:
    result = PointResult(GridPoint(64, 512, 512.0), 32768, 0.0, False, 1.0, 1.0, "")
    loop = Row(attention_kernels="sdpa_cudnn_attention", latency_ms=15.4, status="ok")
    notes: list[str] = []
    row = _variant_columns(loop, GRAPH, _measured(69.4, replay_kernels), _measured(33.7, "none"), notes,
                           ParityCheck(torch.float16, result))  # fmt: skip
    return row, notes


def test_a_replay_of_other_kernels_stays_out_of_every_column_a_report_reads():
    row, notes = _columns("sdpa_math")
    assert row.latency_ms_graph is None and row.gpu_ms_graph is None and row.speedup_graph_pct is None
    assert row.attention_kernels_graph == "sdpa_math" and row.launch_bound is None
    assert notes == ["cuda graph ran sdpa_math where the loop ran sdpa_cudnn_attention: 69.4 ms, not compared"]
    assert row.latency_ms_graph_baseline == 33.7  # the baseline's own replay ran its loop's kernels


def test_a_replay_of_the_loops_kernels_fills_them():
    row, notes = _columns("sdpa_cudnn_attention")
    assert row.latency_ms_graph == 69.4 and row.gpu_ms_graph == 69.4 and notes == []
    assert row.speedup_graph_pct == (33.7 / 69.4 - 1) * 100 and row.launch_bound is False
