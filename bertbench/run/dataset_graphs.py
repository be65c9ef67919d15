"""The dataset pass's graph pass (--dataset --cuda-graphs): one implementation x strategy's batches
replayed from CUDA graphs, as a server runs them, after its loop passes.

One graph per key (model.graph_inputs.graph_key: each padded shape and mask, one capacity for every
packed batch), captured on static buffers, all of a model's graphs in one memory pool; each batch
is copied into its graph's buffers (a padded batch's mask prepared as the loop's forward prepares
it), then the graph replays. One untimed pass compares each sequence's logits with the reference
(run.dataset_parity); then --passes timed passes (measure.passes). Every graph is freed before the
next implementation x strategy captures. A graph pass that cannot run says why; the loop's figures
stand either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bertbench.measure.failures import Failure, release_memory
from bertbench.measure.graphs import CapturedGraph, capture_graph
from bertbench.measure.passes import PassTimes, time_passes
from bertbench.model import capture
from bertbench.model.batches import Batch, PackedBatch
from bertbench.model.graph_inputs import (
    GraphKey,
    buffers,
    capacity_of,
    capacity_padded,
    fill,
    graph_key,
    packed_static,
    padded_static,
)
from bertbench.model.heads import LoadedModel
from bertbench.run.dataset_parity import Agreement

NO_GPU = Failure("unavailable", "CUDA graphs need a CUDA GPU; this pass ran on the CPU")


@dataclass
class GraphOutcome:
    """One implementation x strategy's graph pass: what it gave, or why it has none."""

    graphs: int = 0
    capture_s: float = 0.0
    times: PassTimes | None = None
    agreement: Agreement | None = None
    failure: Failure | None = None


@dataclass
class _Feed:
    """What one graph is captured on and how each of its batches is copied in."""

    static: dict[str, object]  # the buffers the graph reads (graph_inputs.buffers)
    call: Callable[[], object]  # the model's call on them, ready to capture


def graph_pass(
    model: LoadedModel,
    batches: list[Batch | PackedBatch],
    tokens_per_batch: int,
    device: torch.device,
    passes: int,
    parity: Callable[[list[Callable[[], object]]], Agreement | None],
) -> GraphOutcome:
    """Capture, compare and time one implementation x strategy; every graph freed on return.
    `parity`: the untimed pass's comparison of the replays' outputs, given a call per batch."""
    outcome = GraphOutcome()
    graphs: dict[GraphKey, CapturedGraph] = {}
    feeds: dict[GraphKey, _Feed] = {}
    try:
        with torch.inference_mode():
            keys, values = _inputs(model, batches, tokens_per_batch, feeds)
            pool = torch.cuda.graph_pool_handle()  # one pool: a model's graphs never replay at once
            for key, feed in feeds.items():
                graphs[key] = capture_graph(feed.call, device, pool)
                outcome.capture_s += graphs[key].seconds
            outcome.graphs = len(graphs)

            def replay(i: int) -> object:
                fill(feeds[keys[i]].static, values[i]())
                graphs[keys[i]].graph.replay()
                return graphs[keys[i]].output

            outcome.agreement = parity([lambda i=i: replay(i) for i in range(len(batches))])
        timed, failures = time_passes({"graph": _whole(replay, len(batches))}, device, passes)
        outcome.times, outcome.failure = timed.get("graph"), failures.get("graph")
    except Exception as e:
        outcome.failure = Failure.of(e)
    finally:
        graphs.clear()
        feeds.clear()
    release_memory(device)  # the graphs' pool and buffers, outside the except block
    return outcome


def _inputs(
    model: LoadedModel, batches: list[Batch | PackedBatch], tokens_per_batch: int, feeds: dict[GraphKey, _Feed]
) -> tuple[list[GraphKey], list[Callable[[], dict[str, object]]]]:
    """Each batch's graph key and what is copied into that graph's buffers; `feeds` gets a feed per key."""
    keys = [graph_key(b) for b in batches]
    packed = [b for b in batches if isinstance(b, PackedBatch)]
    capacity = capacity_of(packed, tokens_per_batch) if packed else None
    values: list[Callable[[], dict[str, object]]] = []
    for key, batch in zip(keys, batches, strict=True):
        if isinstance(batch, PackedBatch):
            assert capacity is not None
            padded = buffers(capacity_padded(batch, capacity))  # built now, as the loop's packed batches are
            if key not in feeds:
                static = packed_static(capacity_padded(batch, capacity))
                feeds[key] = _Feed(buffers(static), model.forward_packed(static))
            values.append(lambda padded=padded: padded)
            continue
        inputs = batch.model_inputs()
        if key not in feeds:
            static = padded_static(model.model, inputs)
            feeds[key] = _Feed(static, capture.ready(model.model, model.forward, static))
        values.append(lambda inputs=inputs: capture.prepared_inputs(model.model, inputs))
    return keys, values


def _whole(replay: Callable[[int], object], batches: int) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for i in range(batches):
                replay(i)

    return run
