"""The dataset pass's graph pass on the CPU: a stand-in for capture_graph replays the captured call
eagerly into its static output, as a CUDA graph rewrites it, so what the pass copies into the
buffers, how many graphs it makes and its parity are checked here; on a GPU: tests/test_gpu.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_dataset_run import run

from bertbench.measure.failures import NotCapturable
from bertbench.measure.graphs import CapturedGraph
from bertbench.model import strategies
from bertbench.model.corpus import batch_of, draw_lengths, random_corpus
from bertbench.model.graph_inputs import graph_key
from bertbench.model.heads import load_baseline, load_like
from bertbench.model.strategies import Sizes
from bertbench.run import dataset_graphs
from bertbench.run.dataset_parity import parity_pass
from bertbench.run.dataset_run import _calls
from bertbench.spec.catalog import NUM_LABELS

CPU = torch.device("cpu")


class EagerGraph:
    """Replays the call and copies its output into the first one's tensors, as a graph's replay does."""

    def __init__(self, fn):
        self.fn, self.output = fn, fn()

    def replay(self) -> None:
        for name, value in self.fn().items():
            self.output[name].copy_(value)


@pytest.fixture
def captured(monkeypatch) -> list:
    """capture_graph stood in for; the list of pools each capture was given."""
    pools: list = []

    def capture(fn, device, pool=None):
        pools.append(pool)
        graph = EagerGraph(fn)
        return CapturedGraph(graph, graph.output, "", 0.01)  # type: ignore[arg-type]

    monkeypatch.setattr(dataset_graphs, "capture_graph", capture)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: ("pool",))
    return pools


def setting(task: str, strategy: str, name: str):
    lengths = draw_lengths(21, 32, 16.0, 9.0, seed=2, distribution="normal", pool=None)
    corpus = random_corpus(lengths, 100, seed=2, device=CPU)
    eager = load_baseline(task, "eager", "tiny", None, CPU, torch.float32, seed=0)
    model = eager if name == "eager" else load_like(eager, name, CPU, torch.float32)
    reference: dict[int, list[torch.Tensor]] = {}
    ref_plan = strategies.get("pad-max").plan(lengths, Sizes(4, 32, 96))
    ref_batches = [batch_of(corpus, p, task, NUM_LABELS[task], True, seed=0) for p in ref_plan]
    parity_pass(task, _calls(eager, ref_batches), ref_batches, ref_plan, None, reference)
    planned = strategies.get(strategy).plan(lengths, Sizes(4, 32, 96))
    batches = [batch_of(corpus, p, task, NUM_LABELS[task], True, seed=0) for p in planned]

    def parity(replays):
        return parity_pass(task, replays, batches, planned, None, reference)

    return model, batches, parity


@pytest.mark.parametrize("strategy", ["pad-max", "sorted"])
def test_a_padded_graph_pass_serves_each_shape_from_one_graph_and_matches(captured, strategy):
    model, batches, parity = setting("token_classification", strategy, "sdpa")
    outcome = dataset_graphs.graph_pass(model, batches, 96, CPU, 2, parity)
    assert outcome.failure is None and outcome.graphs == len({graph_key(b) for b in batches}) == len(captured)
    assert set(captured) == {("pool",)}  # one pool for all of them
    assert outcome.times is not None and len(outcome.times.seconds) == 2
    assert outcome.agreement is not None and outcome.agreement.values > 0 and outcome.agreement.max_abs < 1e-5


@pytest.mark.parametrize("task", ["qa", "classification"])
def test_every_packed_batch_replays_from_one_graph_at_the_capacity_and_matches(captured, fake_varlen, task):
    model, batches, parity = setting(task, "packed", "sdpa-varlen")
    outcome = dataset_graphs.graph_pass(model, batches, 96, CPU, 1, parity)
    assert outcome.failure is None and outcome.graphs == 1 and len(batches) > 2
    assert outcome.agreement is not None and outcome.agreement.values > 0 and outcome.agreement.max_abs < 1e-5


def test_a_refused_capture_is_an_unavailable_graph_pass_with_its_reason(monkeypatch):
    def refuse(fn, device, pool=None):
        raise NotCapturable("synchronises with the host (an .item())")

    monkeypatch.setattr(dataset_graphs, "capture_graph", refuse)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    model, batches, parity = setting("qa", "pad-longest", "sdpa")
    outcome = dataset_graphs.graph_pass(model, batches, 96, CPU, 1, parity)
    assert outcome.failure is not None and outcome.failure.status == "unavailable"
    assert outcome.failure.detail.startswith("synchronises with the host") and outcome.times is None


def test_on_the_cpu_the_rows_say_the_graph_pass_is_unavailable_and_the_loop_figures_stand(tmp_path: Path):
    rows = run(tmp_path, "--task", "qa", "--optimization", "sdpa", "--sequences", "9", "--batch-size", "4",
               "--max-seqlen", "32", "--strategies", "pad-max,packed", "--cuda-graphs")  # fmt: skip
    for r in rows:
        graph_figures = [r[c] for c in ("graphs", "graph_total_s", "graph_gain_pct", "graph_rel_err")]
        assert graph_figures == ["", "", "", ""]
        if r["strategy"] == "packed":  # no loop pass, so no graph pass to speak of
            assert r["status"] == "unavailable" and r["graph_note"] == ""
            continue
        assert r["status"] == "ok" and float(r["total_s"]) > 0 and float(r["tokens_per_s"]) > 0
        assert r["graph_note"] == "unavailable: CUDA graphs need a CUDA GPU; this pass ran on the CPU"
    assert {r["graph_note"] for r in run(tmp_path / "plain", "--task", "qa", "--sequences", "5")} == {""}
