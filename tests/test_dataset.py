"""The --dataset command line: what it resolves to, and bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

from bertbench import cli
from bertbench.cli import parse_args
from bertbench.model import strategies
from bertbench.spec.config import DATASET_PASSES, DATASET_SEQUENCES

COUNTS = "<a file of 3 token counts>"
CPU = ["--no-use-cuda", "--model-size", "tiny"]


def test_dataset_defaults(tmp_path):
    config = parse_args([*CPU, "--dataset", "--batch-size", "4", "--max-seqlen", "64", "--output-dir", str(tmp_path)])
    plan = config.dataset
    assert plan is not None and plan.strategies == strategies.names() and plan.passes == DATASET_PASSES
    assert plan.sequences == DATASET_SEQUENCES["cpu"] and plan.tokens_per_batch == 4 * 64
    assert config.points[0].avg_seqlen == 32  # full sequences would make every strategy alike
    assert parse_args([*CPU, "--output-dir", str(tmp_path)]).dataset is None


def test_dataset_flags_resolve(tmp_path):
    config = parse_args([*CPU, "--dataset", "--sequences", "7", "--strategies", "sorted, packed,sorted",
                         "--tokens-per-batch", "300", "--passes", "2", "--avg-seqlen", "20", "--max-seqlen", "64",
                         "--output-dir", str(tmp_path)])  # fmt: skip
    assert config.dataset is not None and config.dataset.strategies == ("sorted", "packed")
    assert (config.dataset.sequences, config.dataset.tokens_per_batch, config.dataset.passes) == (7, 300, 2)
    assert config.points[0].avg_seqlen == 20


def test_a_lengths_file_gives_every_length_in_file_order(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text("5\n9\n200\n")
    config = parse_args([*CPU, "--dataset", "--lengths", str(counts), "--output-dir", str(tmp_path / "out")])
    assert config.dataset is not None and config.dataset.sequences == 3 and config.lengths == (5, 9, 200)


BAD = {
    "no sequences": (["--dataset", "--sequences", "0"], "--sequences must lie in [1,"),
    "unknown strategy": (["--dataset", "--strategies", "pad-max,bogus"], "unknown strategy 'bogus'; choose from"),
    "empty strategies": (["--dataset", "--strategies", ","], "must name at least one"),
    "a sweep": (["--dataset", "--sweep"], "one batch size and max seqlen; drop --sweep"),
    "several batch sizes": (["--dataset", "--batch-sizes", "2", "4"], "--batch-sizes only applies with --sweep"),
    "train": (["--dataset", "--mode", "train"], "inference passes only; drop --mode train"),
    "capacity": (["--dataset", "--capacity"], "--dataset and --capacity are separate runs"),
    "packed": (["--dataset", "--packed"], "drop --packed"),
    "resume": (["--dataset", "--resume"], "drop --resume"),
    "compile": (["--dataset", "--compile"], "--dataset times the Python loop and CUDA graphs only; drop --compile"),
    "sequences alone": (["--sequences", "5"], "--sequences only applies with --dataset"),
    "passes alone": (["--passes", "5"], "--passes only applies with --dataset"),
    "budget below a sequence": (["--dataset", "--max-seqlen", "64", "--tokens-per-batch", "63"],
                                "--tokens-per-batch 63 is below the max seqlen 64"),
    "more sequences than the file": (["--dataset", "--lengths", COUNTS, "--sequences", "4"],
                                     "the --lengths file has 3 lengths"),
}  # fmt: skip


@pytest.mark.parametrize("argv, message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, message, tmp_path, capsys):
    counts = tmp_path / "counts.txt"
    counts.write_text("5\n9\n200\n")
    argv = [str(counts) if a == COUNTS else a for a in argv]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        cli.main([*CPU, "--output-dir", str(out), *argv])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("bertbench: error:"), err
    assert not out.exists()


def test_a_dataset_file_not_ours_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "qa.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit) as done:
        cli.main([*CPU, "--task", "qa", "--dataset", "--output-dir", str(tmp_path)])
    assert done.value.code == 2 and "is not a bertbench dataset file" in capsys.readouterr().err
    assert (tmp_path / "dataset" / "qa.csv").read_text() == "a,b\n1,2\n" and not (tmp_path / "runs").exists()


def test_the_dataset_pass_takes_cuda_graphs_even_on_the_cpu_where_its_rows_say_why_not(tmp_path):
    config = parse_args([*CPU, "--dataset", "--cuda-graphs", "--output-dir", str(tmp_path)])
    assert config.dataset is not None and config.cuda_graphs and not config.compile
    with pytest.raises(SystemExit) as done:  # the grid's graphs still need a GPU
        cli.main([*CPU, "--cuda-graphs", "--output-dir", str(tmp_path / "grid")])
    assert done.value.code == 2 and not (tmp_path / "grid").exists()
