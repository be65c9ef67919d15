"""Real lengths from a user's file and from the four distributions: read, checked, drawn, recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bertbench import cli
from bertbench.arguments import parse_args
from bertbench.model.batches import sample_lengths
from bertbench.model.lengths import read_lengths, tokenizer_of
from bertbench.run import sweep

DATA = Path(__file__).resolve().parents[1] / "data"
CPU_RUN = ["--no-use-cuda", "--task", "qa", "--optimization", "sdpa", "--num-batches", "2", "--warmup", "1"]


def draws(distribution: str, n: int = 20000, avg: float = 100.0, stdev: float = 40.0, pool=None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return sample_lengths(n, 512, avg, stdev, generator, distribution, pool).double()


def test_the_normal_draw_is_the_one_every_earlier_run_made():
    generator = torch.Generator().manual_seed(3)
    expected = (torch.randn(8, generator=torch.Generator().manual_seed(3)) * 10 + 64).round().clamp(1, 128).long()
    assert torch.equal(sample_lengths(8, 128, 64.0, 10.0, generator), expected)


@pytest.mark.parametrize("distribution", ["normal", "uniform", "lognormal"])
def test_each_distribution_has_the_asked_mean_and_spread(distribution):
    lengths = draws(distribution)
    assert lengths.min() >= 1 and lengths.max() <= 512
    assert lengths.mean().item() == pytest.approx(100, rel=0.02)
    assert lengths.std().item() == pytest.approx(40, rel=0.05)


def test_uniform_is_flat_and_lognormal_has_the_long_tail():
    uniform, lognormal = draws("uniform"), draws("lognormal")
    assert uniform.max() <= 100 + 40 * math.sqrt(3) + 0.5 and uniform.min() >= 100 - 40 * math.sqrt(3) - 0.5
    skew = ((lognormal - lognormal.mean()) ** 3).mean() / lognormal.std() ** 3
    assert skew > 1 and lognormal.max() > 250 and lognormal.median() < lognormal.mean()


def test_full_sequences_stay_full_and_the_file_is_drawn_from_truncated():
    assert draws("lognormal", 16, avg=512).eq(512).all()
    picked = draws("file", 1000, pool=(3, 700, 40))
    assert set(picked.long().tolist()) == {3, 512, 40}
    assert draws("file", 16, avg=512, pool=(3, 40)).eq(512).all()  # full sequences asked (--capacity)


def test_token_counts_are_read_as_they_are(tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("12\n\n700\n  3 \n")
    lengths = read_lengths(path, None)
    assert lengths.kind == "counts" and lengths.lengths == (12, 700, 3) and len(lengths.sha256) == 64
    assert lengths.truncated(512) == [12, 512, 3] and lengths.mean(512) == pytest.approx(527 / 3)


@pytest.mark.parametrize("name", ["texts.txt", "texts.jsonl"])
def test_texts_are_counted_by_the_checkpoints_own_tokenizer(name, minilm_path):
    from transformers import AutoTokenizer

    lengths = read_lengths(DATA / name, tokenizer_of(str(minilm_path)))
    texts = (DATA / "texts.txt").read_text().splitlines()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    assert lengths.kind == ("jsonl" if name.endswith("jsonl") else "text")
    assert list(lengths.lengths) == [len(tokenizer(t)["input_ids"]) for t in texts]
    assert min(lengths.lengths) >= 3  # [CLS] ... [SEP]


def test_a_real_checkpoint_counts_a_text_file_for_the_run(minilm_path, tmp_path):
    config = parse_args([*CPU_RUN, "--model", str(minilm_path), "--max-seqlen", "16", "--batch-size", "2",
                         "--lengths", str(DATA / "texts.txt"), "--output-dir", str(tmp_path)])  # fmt: skip
    expected = read_lengths(DATA / "texts.txt", tokenizer_of(str(minilm_path)))
    assert config.length_distribution == "file" and config.lengths == expected.lengths
    assert config.points[0].avg_seqlen == round(expected.mean(16), 2) and config.lengths_sha256 == expected.sha256


BAD = {
    "missing": (None, "no such file"),
    "empty": (b"\n  \n", "empty"),
    "not a count": (b"12\nforty\n", "line 2 is not a token count: 'forty'"),
    "a fraction": (b"12\n3.5\n", "line 2 is not a whole number: '3.5'"),
    "negative": (b"12\n-4\n", "line 2: -4 tokens (a length is at least 1)"),
    "zero": (b"0\n", "line 1: 0 tokens"),
    "binary": (b"\x00\x01\x02binary", "a binary file (NUL bytes)"),
    "not utf-8": (b"caf\xe9\n", "not UTF-8 text"),
    "jsonl without text": (b'{"text": "a"}\n{"body": "b"}\n', 'line 2 has no string field "text"'),
    "broken jsonl": (b'{"text": "a"}\n{"text": \n', "line 2 is not JSON"),
    "texts, no tokenizer": (b"some words\nmore words\n", "texts need the model's tokenizer"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_is_one_line_and_exit_2_before_anything_runs(case, tmp_path, capsys):
    content, message = BAD[case]
    path = tmp_path / "lengths.txt"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exited:
        cli.main([*CPU_RUN, "--lengths", str(path), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        ("--length-distribution file", "--length-distribution file needs --lengths FILE"),
        ("--length-distribution uniform --lengths {path}", "drop --length-distribution uniform"),
        ("--lengths {path} --avg-seqlen 40", "--avg-seqlen: with --lengths the file sets the real lengths"),
        ("--sweep --lengths {path} --pad-fractions 0.5", "--pad-fractions: with --lengths the file sets"),
    ],
)
def test_contradictory_length_flags_are_refused(flags, message, tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("10\n")
    from bertbench.flags import UsageError

    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_args([*CPU_RUN, *flags.format(path=path).split(), "--output-dir", str(tmp_path / "r")])


def test_rows_and_the_manifest_name_the_distribution_and_the_file(tiny_config, tmp_path):
    path = tmp_path / "counts.txt"
    path.write_text("\n".join(["8", "30", "64", "100"]))
    config = tiny_config(f"--task qa --optimization sdpa --sweep --batch-sizes 4 --seqlens 16 64 --lengths {path}")
    assert [(p.max_seqlen, p.avg_seqlen) for p in config.points] == [(16, 14.0), (64, 41.5)]  # truncated means
    rows = sweep.run(config, progress=False)
    assert {(r.length_distribution, r.lengths_sha256) for r in rows} == {("file", read_lengths(path, None).sha256)}
    assert all(r.status == "ok" and r.real_tokens <= 4 * r.max_seqlen for r in rows)
    (manifest,) = (config.output_dir / "runs").glob("*.json")
    recorded = json.loads(manifest.read_text())["config"]
    assert recorded["length_distribution"] == "file" and recorded["lengths_sha256"] == rows[0].lengths_sha256
    assert recorded["lengths"] == {"count": 4, "min": 8, "max": 100, "mean": 50.5}
    again = sweep.run(tiny_config("--task qa --optimization sdpa --batch-size 4 --max-seqlen 16 --avg-seqlen 8 "
                                  "--length-distribution lognormal --resume"), progress=False)  # fmt: skip
    assert [r.length_distribution for r in again] == ["lognormal"]  # another measurement, not skipped
