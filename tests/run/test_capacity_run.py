import torch

from bertbench.cli import parse_args
from bertbench.model.heads import LoadedModel
from bertbench.run import capacity_run


def test_capacity_rows_find_each_models_limit_against_a_fake_memory_and_are_drawn(tmp_path, monkeypatch):
    """sdpa 'fits' 3x the batch eager does at seqlen 32, and half as much at 64 (tokens x 1 / x 2)."""
    original = LoadedModel.forward

    def forward(self, inputs):
        call = original(self, inputs)
        batch, seqlen = inputs["input_ids"].shape
        budget = (300 if self.name == "sdpa" else 100) * 32 // seqlen

        def run():
            if batch > budget:
                raise torch.OutOfMemoryError("CUDA out of memory (fake)")
            return call()

        return run

    monkeypatch.setattr(LoadedModel, "forward", forward)
    config = parse_args(
        ["--no-use-cuda", "--model-size", "tiny", "--task", "qa", "--capacity", "--capacity-limit", "4096",
         "--sweep", "--seqlens", "32", "64", "--optimization", "sdpa", "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert capacity_run.main(config) == 0
    rows = capacity_run.read_capacity(tmp_path / "capacity" / "qa.csv")
    found = {(r["attn_implementation"], r["baseline"], int(r["max_seqlen"])): r for r in rows}
    for (name, _, seqlen), row in found.items():
        budget = (300 if name == "sdpa" else 100) * 32 // seqlen
        largest, failure = int(row["largest_batch"]), int(row["smallest_failure"])
        assert row["status"] == "ok" and largest <= budget < failure <= largest * (1 + capacity_run.PRECISION) + 1
        assert len(row["probes"].split()) <= 2 * 13  # doubling then bisection: O(log N) probes
    assert set(found) == {("eager", "True", 32), ("eager", "True", 64), ("sdpa", "False", 32), ("sdpa", "False", 64)}
    # the same rows drawn (one run serves both): a folder with --capacity rows alone gets the capacity
    # chart; a second search of the same model and seqlen replaces the first in it (capacity_chart.latest)
    from bertbench import plot_cli
    from bertbench.report import capacity_chart

    rows = capacity_chart.read_rows(tmp_path)
    assert len(rows) == 4 and {r["task"] for r in rows} == {"qa"}
    again = {**rows[0], "largest_batch": "7", "timestamp": "later"}
    keyed = capacity_chart.latest([*rows, again])
    assert len(keyed) == 4 and keyed[tuple(again[c] for c in ("task", "mode", "max_seqlen", "attn_implementation",
                                                                "baseline"))]["largest_batch"] == "7"  # fmt: skip
    assert plot_cli.main(["--results-dir", str(tmp_path), "--plots-dir", str(tmp_path / "p"), "--format", "png"]) == 0
    assert (tmp_path / "p" / "capacity" / "capacity.png").stat().st_size > 0


def test_no_capacity_rows_no_chart_and_a_foreign_file_is_left_out(tmp_path):
    from bertbench.report import capacity_chart

    assert capacity_chart.write_chart(tmp_path, tmp_path / "p") == []
    (tmp_path / "capacity").mkdir()
    (tmp_path / "capacity" / "qa.csv").write_text("a,b\n1,2\n")
    assert capacity_chart.read_rows(tmp_path) == [] and capacity_chart.write_chart(tmp_path, tmp_path / "p") == []


def test_capacity_rows_that_are_cut_or_malformed_are_left_out_of_the_chart(tmp_path):
    from bertbench.report import capacity_chart

    (tmp_path / "capacity").mkdir()
    header = "task,mode,max_seqlen,attn_implementation,baseline,largest_batch,status"
    (tmp_path / "capacity" / "qa.csv").write_text(
        f"{header}\nqa,inference,128,sdpa,False,12,ok\nqa,inference,abc,sdpa,False,12,ok\nqa,inference,256\n"
    )
    assert [r["max_seqlen"] for r in capacity_chart.read_rows(tmp_path)] == ["128"]
    assert capacity_chart.write_chart(tmp_path, tmp_path / "p") == [tmp_path / "p" / "capacity" / "capacity.png"]
