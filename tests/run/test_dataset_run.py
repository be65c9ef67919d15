"""--dataset on the CPU: every implementation x strategy a row with sane figures, parity against the
baseline's pad-max pass, the packed route where an implementation has one, the rows on disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from bertbench.attention import registry
from bertbench.cli import parse_args
from bertbench.model import strategies
from bertbench.model.corpus import batch_of, draw_lengths, random_corpus
from bertbench.model.strategies import Sizes
from bertbench.run import dataset_run
from bertbench.spec.dataset_schema import DATASET_COLUMNS, DATASET_SCHEMA_VERSION, fastest
from bertbench.store.dataset_file import dataset_path, read_dataset

TINY = ["--no-use-cuda", "--model-size", "tiny", "--dataset", "--passes", "1"]


def run(tmp_path: Path, *extra: str) -> list[dict[str, str]]:
    config = parse_args([*TINY, "--output-dir", str(tmp_path), *extra])
    assert dataset_run.main(config) == 0
    return read_dataset(dataset_path(tmp_path, config.tasks[0]))


def test_a_cpu_pass_writes_a_row_per_implementation_and_strategy_with_sane_figures(tmp_path, capsys):
    rows = run(tmp_path, "--task", "qa", "--optimization", "sdpa", "--sequences", "19", "--batch-size", "4",
               "--max-seqlen", "32")  # fmt: skip
    out = capsys.readouterr().out
    found = {(r["attn_implementation"], r["strategy"]): r for r in rows}
    assert set(found) == {(n, s) for n in ("eager", "sdpa") for s in strategies.names()}
    assert list(rows[0]) == list(DATASET_COLUMNS) and {r["schema_version"] for r in rows} == {
        str(DATASET_SCHEMA_VERSION)
    }
    real = {int(r["real_tokens"]) for r in rows}
    assert len(real) == 1 and {r["sequences"] for r in rows} == {"19"}
    assert {r["token_ids"] for r in rows} == {"random"}
    for (name, strategy), r in found.items():
        if strategy == "packed":  # neither eager nor sdpa has a varlen route
            assert r["status"] == "unavailable" and "no variable-length path" in r["detail"] and r["total_s"] == ""
            continue
        assert r["status"] == "ok", r["detail"]
        total, tokens = float(r["total_s"]), int(r["real_tokens"])
        assert 0 < float(r["total_s_min"]) <= total <= float(r["total_s_max"])
        assert float(r["tokens_per_s"]) == pytest.approx(tokens / total, rel=1e-4)
        assert float(r["padded_share"]) == pytest.approx(1 - tokens / int(r["computed_tokens"]), abs=1e-5)
        assert r["peak_mem_mb"] == "" and r["gpu_s"] == ""  # CPU: neither is measured
        assert r["speedup_gpu_pct"] == r["gpu_busy_pct"] == ""
        if (name, strategy) == ("eager", "pad-max"):
            assert r["is_baseline"] == "True" and r["max_abs_err"] == "" and float(r["speedup_pct"]) == 0
        else:
            assert float(r["max_abs_err"]) < 1e-4 and float(r["rel_err"]) < 1e-4 and int(r["parity_values"]) > 0
    assert int(found[("eager", "pad-max")]["computed_tokens"]) == 19 * 32
    assert int(found[("eager", "pad-max")]["batches"]) == 5
    shares = [float(found[("sdpa", s)]["padded_share"]) for s in ("pad-max", "pad-longest", "sorted")]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[2]
    winner = fastest(rows)
    assert winner is not None and f"qa: fastest: {winner.implementation} with {winner.strategy}" in out
    assert "x the speed of eager with pad-max" in out and len(out.splitlines()) >= 10
    assert "GPU s" not in out and "least GPU time" not in out  # no GPU time on the CPU: the table as before
    # the same rows drawn and reported (a folder with --dataset rows alone gets its chart and report)
    from bertbench import plot_cli

    assert plot_cli.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "p"), "--format", "png"]) == 0
    assert (tmp_path / "p" / "dataset" / "dataset.png").stat().st_size > 0
    report = (tmp_path / "p" / "report.md").read_text()
    assert (
        "## Whole-dataset pass" in report and f"Fastest: **{winner.implementation} with {winner.strategy}**" in report
    )
    assert "the speed of eager with pad-max" in report and "](dataset/dataset.png)" in report


def test_a_packed_route_runs_and_parity_catches_one_that_attends_across_sequences(tmp_path, monkeypatch):
    """sdpa given packed input with no mask: its tokens attend to the other sequences of the row.

    From transformers 5.25 the mask builder reads packed sequences off the position ids and gives
    sdpa a block-diagonal mask over the whole packed row (correct, but N^2 work, not a varlen route);
    that detection is switched off here so the route is certain to attend across sequences."""
    from transformers import masking_utils

    monkeypatch.setattr(masking_utils, "find_packed_sequence_indices", lambda position_ids: None, raising=False)
    monkeypatch.setitem(registry.REGISTRY, "sdpa", dataclasses.replace(registry.get("sdpa"), packed=True))
    rows = run(tmp_path, "--task", "token_classification", "--optimization", "sdpa", "--sequences", "12",
               "--batch-size", "4", "--max-seqlen", "32", "--strategies", "packed,pad-longest")  # fmt: skip
    found = {(r["attn_implementation"], r["strategy"]): r for r in rows}
    assert set(found) == {("eager", "pad-max"), *((n, s) for n in ("eager", "sdpa") for s in ("packed", "pad-longest"))}
    packed = found[("sdpa", "packed")]
    assert packed["status"] == "mismatch" and "above tolerance" in packed["detail"]
    assert float(packed["padded_share"]) == 0 and int(packed["computed_tokens"]) == int(packed["real_tokens"])
    assert found[("sdpa", "pad-longest")]["status"] == "ok" and found[("eager", "packed")]["status"] == "unavailable"


def test_the_batches_carry_each_sequences_own_tokens_in_every_strategy():
    lengths = draw_lengths(30, 24, 12.0, 6.0, seed=3, distribution="lognormal", pool=None)
    corpus = random_corpus(lengths, 100, seed=3, device=torch.device("cpu"))
    assert lengths == draw_lengths(30, 24, 12.0, 6.0, seed=3, distribution="lognormal", pool=None)
    for name in strategies.names():
        for planned in strategies.get(name).plan(lengths, Sizes(8, 24, 64)):
            batch = batch_of(corpus, planned, "mlm", 0, True, seed=0)
            for row, i in enumerate(planned.indices):
                own = corpus.tokens[i, : lengths[i]]
                if planned.packed:
                    start = int(batch.cu_seqlens[row])
                    assert torch.equal(batch.input_ids[0, start : start + lengths[i]], own)
                else:
                    assert torch.equal(batch.input_ids[row, : lengths[i]], own)
                    assert batch.input_ids.shape[1] == planned.padded_length
                    assert int(batch.attention_mask[row].sum()) == lengths[i]


def test_a_family_whose_pad_id_is_not_zero_pads_with_its_own_and_never_draws_it(tmp_path):
    """RoBERTa pads with 1 and numbers positions after it: a real token of id 1 would move them."""
    lengths = (5, 9, 3)
    corpus = random_corpus(lengths, 8, seed=0, device=torch.device("cpu"), pad_id=1)
    real = torch.arange(corpus.tokens.shape[1]) < torch.tensor(lengths)[:, None]
    assert (corpus.tokens[~real] == 1).all() and not (corpus.tokens[real] == 1).any()
    (planned,) = strategies.get("pad-max").plan(lengths, Sizes(4, 12, 48))
    assert (batch_of(corpus, planned, "qa", 0, True, seed=0).input_ids[:, 9:] == 1).all()
    rows = run(tmp_path, "--model-size", "roberta-tiny", "--optimization", "sdpa", "--sequences", "12")
    assert rows and all(row["status"] == "ok" for row in rows if row["strategy"] != "packed")


def test_the_files_lengths_are_taken_in_file_order_and_truncated():
    assert draw_lengths(3, 10, 5.0, 1.0, 0, "file", (4, 30, 7, 9)) == (4, 10, 7)
    with pytest.raises(ValueError):
        draw_lengths(5, 10, 5.0, 1.0, 0, "file", (4, 30))


def test_the_tokenizers_counts_are_the_rows_real_tokens(minilm_path, tmp_path):
    """Item 5 of issue #26: the real checkpoint and its tokenizer over a committed text file."""
    from transformers import AutoTokenizer

    texts_file = Path(__file__).resolve().parents[1] / "data" / "texts.txt"
    rows = run(tmp_path, "--model", str(minilm_path), "--lengths", str(texts_file), "--task", "classification",
               "--optimization", "sdpa", "--max-seqlen", "16", "--batch-size", "3",
               "--strategies", "pad-max,sorted")  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    texts = [t for t in texts_file.read_text().splitlines() if t.strip()]
    expected = sum(len(tokenizer(t, truncation=True, max_length=16)["input_ids"]) for t in texts)
    assert expected < sum(len(tokenizer(t)["input_ids"]) for t in texts)  # some texts were truncated
    assert {int(r["real_tokens"]) for r in rows} == {expected}
    assert {r["token_ids"] for r in rows} == {"tokenizer"} and {r["sequences"] for r in rows} == {str(len(texts))}
    assert all(r["status"] == "ok" for r in rows) and len(rows) == 4
    assert {r["lengths_sha256"] for r in rows} != {""} and {r["length_distribution"] for r in rows} == {"file"}


def test_a_rows_graph_columns_come_from_its_graph_pass_and_a_mismatch_or_failure_is_its_note():
    from bertbench.measure.failures import Failure
    from bertbench.measure.passes import PassTimes
    from bertbench.run.dataset_graphs import GraphOutcome
    from bertbench.run.dataset_parity import Agreement
    from bertbench.spec.dataset_schema import DatasetRow

    def row_of(graph: GraphOutcome) -> DatasetRow:
        row = DatasetRow(total_s=2.0)
        dataset_run._graph_figures(row, graph, 1000, 1e-4)
        return row

    ok = row_of(GraphOutcome(3, 0.5, PassTimes((1.0, 0.5, 0.6), None), Agreement(1e-6, 1e-12, 1.0, 10)))
    assert (ok.graphs, ok.graph_capture_s, ok.graph_total_s, ok.graph_note) == (3, 0.5, 0.6, "ok")
    assert ok.graph_tokens_per_s == pytest.approx(1000 / 0.6) and ok.graph_gain_pct == pytest.approx(
        100 * (2 / 0.6 - 1)
    )
    assert ok.graph_max_abs_err == 1e-6 and ok.graph_rel_err == pytest.approx(1e-6)
    off = row_of(GraphOutcome(1, 0.1, PassTimes((1.0,), None), Agreement(0.5, 1.0, 1.0, 10)))
    assert off.graph_note.startswith("mismatch: relative error 1 above tolerance") and off.graph_total_s == 1.0
    refused = row_of(GraphOutcome(failure=Failure("unavailable", "synchronises with the host (item)")))
    assert refused.graph_note == "unavailable: synchronises with the host (item)"
    assert (refused.graphs, refused.graph_total_s, refused.graph_gain_pct) == (None, None, None)


def test_the_console_leads_with_the_gpu_time_where_the_rows_have_it():
    from bertbench.spec.dataset_schema import GPU_AND_PASS, DatasetRow

    common = dict(run_id="r", task="qa", baseline="eager", status="ok", batches=3, padded_share=0.0)
    rows = [
        DatasetRow(attn_implementation="eager", is_baseline=True, strategy="pad-max", total_s=2.0, gpu_s=1.0,
                   speedup_gpu_pct=0.0, gpu_busy_pct=50.0, **common),
        DatasetRow(attn_implementation="sdpa", is_baseline=False, strategy="sorted", total_s=1.0, gpu_s=0.5,
                   speedup_gpu_pct=100.0, gpu_busy_pct=50.0, **common),
        DatasetRow(attn_implementation="sdpa-varlen", is_baseline=False, strategy="packed", total_s=1.5, gpu_s=0.25,
                   speedup_gpu_pct=300.0, gpu_busy_pct=16.7, **common),
    ]  # fmt: skip
    lines = dataset_run.summarize(rows).splitlines()
    assert lines[0].split()[5:9] == ["GPU", "s", "GPU", "spd%"]
    assert lines[3].split()[5:8] == ["0.25", "+300.0", "17%"]
    assert lines[4] == ("qa: least GPU time: sdpa-varlen with packed, 0.25 s of GPU time a pass, 4.00x less than "
                        "eager with pad-max (+300.0 %)")  # fmt: skip
    assert lines[5].startswith("qa: fastest: sdpa with sorted, 1 s a pass, 2.00x the speed of eager")
    assert lines[6] == GPU_AND_PASS
