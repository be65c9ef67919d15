import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import in_step

import benchmark_bert
from bertbench.cli import parse_args
from bertbench.flags import UsageError
from bertbench.spec.config import CPU_SWEEP, PAD_FRACTIONS
from bertbench.spec.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_defaults_are_cpu_sized_and_recorded(tmp_path):
    config = parse_args(["--no-use-cuda", "--output-dir", str(tmp_path)])
    assert config.device == "cpu" and config.dtype == "fp32" and config.cpu_sized
    assert config.model_size == "tiny" and config.model_name == "bert-tiny"
    assert config.implementations == ("flash_attention_2", "sdpa") and config.baseline == "eager"
    assert config.tasks == ("mlm",) and len(config.points) == 1
    assert config.use_mask and not config.resume


def test_boolean_flags_turn_off_and_on(tmp_path):
    out = ["--no-use-cuda", "--output-dir", str(tmp_path)]
    assert not parse_args([*out, "--no-use-mask"]).use_mask
    assert parse_args([*out, "--use-mask"]).use_mask
    assert parse_args([*out, "--use-half"]).dtype == "fp16"
    assert parse_args([*out, "--no-use-half"]).dtype == "fp32"
    assert parse_args([*out, "--dtype", "bf16"]).dtype == "bf16"
    assert parse_args([*out, "--resume"]).resume


def test_sweep_grid_and_its_narrowing(tmp_path):
    out = ["--no-use-cuda", "--output-dir", str(tmp_path)]
    full = parse_args([*out, "--sweep"])
    assert len(full.points) == len(CPU_SWEEP["batch_sizes"]) * len(CPU_SWEEP["seqlens"]) * len(PAD_FRACTIONS)
    narrow = parse_args([*out, "--sweep", "--batch-sizes", "2", "4", "--seqlens", "64", "--pad-fractions", "0", "0.5"])
    assert [(p.batch_size, p.max_seqlen, p.avg_seqlen, p.pad_fraction) for p in narrow.points] == [
        (2, 64, 64, 0.0),
        (2, 64, 32, 0.5),
        (4, 64, 64, 0.0),
        (4, 64, 32, 0.5),
    ]


def test_attn_alias_all_tasks_and_explicit_sizes(tmp_path):
    config = parse_args(
        [
            "--no-use-cuda",
            "--output-dir",
            str(tmp_path),
            "--attn",
            "sdpa",
            "sdpa-math",
            "--task",
            "all",
            "--batch-size",
            "3",
            "--max-seqlen",
            "40",
            "--avg-seqlen",
            "30",
            "--model-size",
            "mini",
        ]
    )
    assert config.implementations == ("sdpa", "sdpa-math") and len(config.tasks) == 4
    assert config.points[0].batch_size == 3 and config.points[0].pad_fraction == 0.25
    assert config.model_size == "mini"


BAD_INPUTS = {
    "avg above max": (["--max-seqlen", "64", "--avg-seqlen", "65"], "must lie in [1, --max-seqlen 64]"),
    "zero batch": (["--batch-size", "0"], "--batch-size must lie in [1, 1048576], got 0"),
    "negative seqlen": (["--max-seqlen", "-1"], "--max-seqlen must lie in [1, 1048576], got -1"),
    "zero batches": (["--num-batches", "0"], "--num-batches must lie in [1, 1000000], got 0"),
    "zero in sweep": (["--sweep", "--batch-sizes", "4", "0"], "--batch-sizes must lie in [1, 1048576], got 0"),
    "pad of one": (["--sweep", "--pad-fractions", "1"], "--pad-fractions must lie in [0, 1)"),
    "grid without sweep": (["--seqlens", "64"], "only applies with --sweep"),
    "fewest above most": (["--min-batches", "5", "--num-batches", "2"], "--min-batches 5 is more than --num-batches 2"),
    "unknown task": (["--task", "summarize"], "invalid choice"),
    "unknown implementation": (["--optimization", "flash_attention_9"], "unknown attention implementation"),
    "unknown baseline": (["--baseline", "fast"], "unknown attention implementation"),
    "contradicting dtype": (["--dtype", "bf16", "--use-half"], "contradicts"),
    "missing model": (["--model", "./no/such/checkpoint"], "no such directory"),
    "unknown integer": (["--batch-size", "many"], "not a whole number"),
    "graphs on the cpu": (["--cuda-graphs"], "--cuda-graphs needs a CUDA GPU"),
    "compile in train mode": (["--compile", "--mode", "train"], "--compile times inference only"),
    "nan length": (["--avg-seqlen", "nan"], "must be a finite number, got 'nan'"),
    "infinite budget": (["--time-budget-ms", "inf"], "must be a finite number"),
    "nan budget": (["--time-budget-ms", "nan"], "must be a finite number"),
    "huge batch": (["--batch-size", "10000000000"], "--batch-size must lie in"),
    "empty number": (["--seed", ""], "not a whole number: ''"),
    "negative seed": (["--seed", "-3"], "--seed must lie in"),
    "longer than the model's positions": (["--max-seqlen", "1024"], "longer than the model's 512 positions"),
    "seqlens past the positions in a sweep": (["--sweep", "--seqlens", "32", "1024"], "1024 is longer than"),
    "unknown preset": (["--model-size", "roberta-huge"], "--model-size: invalid choice: 'roberta-huge'"),
    "past RoBERTa's positions": (["--model-size", "roberta-tiny", "--max-seqlen", "513"], "model's 512 positions"),
}


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "no weights in it (model.safetensors, pytorch_model.bin or their index)"),
        ({"hidden_size": 128, "num_attention_heads": 3}, "hidden_size 128 is not a positive multiple of"),
    ],
)
def test_a_checkpoint_folder_without_weights_or_with_impossible_shapes_is_refused_before_any_row(
    config, message, tmp_path, capsys
):
    """Both once wrote an error row and exited 1 (an adversarial pass): now one line, exit 2, no file."""
    from transformers import BertConfig

    folder = tmp_path / "checkpoint"
    BertConfig(**{"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128, **config}).save_pretrained(
        folder
    )
    with pytest.raises(SystemExit) as done:
        benchmark_bert.main(["--no-use-cuda", "--model", str(folder), "--output-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_and_exit_code_2(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_bert.main(["--no-use-cuda", "--output-dir", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("benchmark_bert.py: error:")


def test_a_cpu_run_writes_a_record_of_its_rows_that_pandas_reads_as_the_csv(tmp_path, capsys):
    out = tmp_path / "results"
    fast = ["--no-use-cuda", "--model-size", "tiny", "--num-batches", "2", "--warmup", "1"]
    argv = [*fast, "--task", "qa", "--optimization", "sdpa", "flash_attention_2", "--output-dir", str(out)]
    assert benchmark_bert.main(argv) == 0
    table = pd.read_csv(out / "qa.csv")
    records = pd.read_json(out / "qa.jsonl", lines=True)
    assert list(records.columns) == list(table.columns) and len(records) == len(table) == 2
    assert list(records["status"]) == ["ok", "unavailable"]  # no flash-attn on the CPU
    assert records["batch_size"].dtype.kind == "i" and records["packed"].dtype == bool
    for column in ("latency_ms", "latency_ms_baseline", "speedup_pct", "rel_err", "tokens_per_s"):
        assert np.allclose(records[column], table[column], equal_nan=True), column
    assert list(records["detail"].fillna("")) == list(table["detail"].fillna(""))
    (run_id,) = set(records["run_id"])
    assert (out / "runs" / f"{run_id}.json").is_file() and set(records["schema_version"]) == {SCHEMA_VERSION}
    assert in_step(out / "qa.csv")


def test_a_record_in_the_output_dir_that_is_not_ours_is_refused_before_the_run(tmp_path, capsys):
    (tmp_path / "qa.jsonl").write_text('{"name": "someone else\'s"}\n')
    with pytest.raises(SystemExit) as exit_info:
        benchmark_bert.main(["--no-use-cuda", "--task", "qa", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "qa.jsonl is not a bertbench record file" in err
    assert [p.name for p in tmp_path.iterdir()] == ["qa.jsonl"]  # nothing written


def test_use_cuda_without_a_gpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UsageError, match="no CUDA GPU"):
        parse_args(["--use-cuda", "--output-dir", str(tmp_path)])


def test_unwritable_output_dir_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="--output-dir"):
        parse_args(["--no-use-cuda", "--output-dir", str(blocker / "results")])


def test_a_bad_command_line_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmark_bert.py", "--no-use-cuda", "--avg-seqlen", "999", "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag():
    text = subprocess.run(
        [sys.executable, "benchmark_bert.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    flags = (
        "--task --model-size --model --optimization --attn --baseline --batch-size --max-seqlen --avg-seqlen "
        "--seqlen-stdev --use-mask --no-use-mask --sweep --batch-sizes --seqlens --pad-fractions --num-batches "
        "--min-batches --time-budget-ms --warmup --use-cuda --use-half --dtype --seed --output-dir --resume"
    )
    for flag in flags.split():
        assert flag in text


# --- fuzz: random flags and values never end in anything but a clean parse or one UsageError line ---

NUMBER_FLAGS = ["--batch-size", "--max-seqlen", "--avg-seqlen", "--seqlen-stdev", "--num-batches", "--min-batches"]
NUMBER_FLAGS += ["--time-budget-ms", "--warmup", "--seed"]
LIST_FLAGS = ["--batch-sizes", "--seqlens", "--pad-fractions"]
VALUES = ["nan", "inf", "-inf", "NaN", "-1", "0", "-0", "1", "2", "16", "0.5", "1.5", "1e308", "1e400", "2e9"]
VALUES += ["99999999999999999999999", "", " ", "abc", "1_0", " 3 ", "0x10", "1e-9", "\u0661\u0662", "--", "-"]
SWITCHES = [["--sweep"], ["--packed"], ["--no-use-mask"], ["--resume"], ["--compile"], ["--cuda-graphs"]]
SWITCHES += [["--use-half"], ["--no-use-half"], ["--mode", "train"], ["--dtype", "bf16"], ["--dtype", "fp64"]]
SWITCHES += [["--use-cuda"], ["--attn", "sdpa"], ["--attn", "all"], ["--bogus"], ["--baseline", "sdpa"]]
CHOICES = {"--task": ["qa", "mlm", "all", "nope", ""], "--model-size": ["tiny", "mini", "huge", "", "roberta-tiny"]}
CHOICES["--optimization"] = ["sdpa", "flash_attention_2", "sdpa-math", "nope", ""]


@pytest.fixture
def paths(tmp_path):
    """Output directories and checkpoints of every kind a user may name by mistake."""
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "csv-dir" / "qa.csv").mkdir(parents=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "qa.csv").write_text("a,b\n1,2\n")
    (tmp_path / "damaged").mkdir()
    header = (ROOT / "results/h100/qa.csv").read_text().splitlines()[0]
    (tmp_path / "damaged" / "qa.csv").write_text(f"{header}\nshort,row\n{header}\n")
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "qa.csv").write_bytes((ROOT / "results/h100/qa.csv").read_bytes())
    (tmp_path / "older" / "mlm.csv").write_bytes((ROOT / "results/h100/mlm.csv").read_bytes())
    (tmp_path / "empty-checkpoint").mkdir()
    outputs = [tmp_path / n for n in ("fresh", "file", "csv-dir", "foreign", "damaged", "older")]
    outputs += [tmp_path / "file" / "below", tmp_path / ("x" * 300), Path("/sys/kernel"), Path("/proc/1/nope")]
    models = [tmp_path / "file", tmp_path / "missing", tmp_path / "empty-checkpoint", "./no/such"]
    return tmp_path, [str(p) for p in outputs] + [""], [str(p) for p in models] + ["", " "]


def random_argv(rng: random.Random, outputs: list[str], models: list[str]) -> list[str]:
    argv = ["--no-use-cuda"] if rng.random() < 0.9 else []
    for _ in range(rng.randint(0, 6)):
        kind = rng.random()
        if kind < 0.45:
            argv += [rng.choice(NUMBER_FLAGS), rng.choice(VALUES)]
        elif kind < 0.6:
            argv += [rng.choice(LIST_FLAGS), *rng.choices(VALUES, k=rng.randint(0, 3))]
        elif kind < 0.8:
            argv += rng.choice(SWITCHES)
        else:
            flag = rng.choice(list(CHOICES))
            argv += [flag, rng.choice(CHOICES[flag])]
    if rng.random() < 0.15:
        argv += ["--model", rng.choice(models)]
    return [*argv, "--output-dir", rng.choice(outputs)]


def tree_hashes(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_random_flags_parse_cleanly_or_fail_in_one_line_and_change_no_file(paths, monkeypatch):
    root, outputs, models = paths
    monkeypatch.chdir(root)
    before = tree_hashes(root)
    rng = random.Random(1234)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        argv = random_argv(rng, outputs, models)
        try:
            parse_args(argv)
            outcomes["parsed"] += 1
        except UsageError as e:
            assert "\n" not in str(e) and str(e), argv
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 15 and outcomes["refused"] > 150, outcomes  # both paths were exercised
    assert tree_hashes(root) == before  # checking never changes, creates or repairs anything


def test_random_flags_through_the_script_never_print_a_traceback(paths):
    """A few of the refused combinations, and one valid run beside results it must not touch."""
    root, outputs, models = paths
    rng = random.Random(99)
    refused = []
    while len(refused) < 5:
        argv = random_argv(rng, outputs, models)
        try:
            parse_args(argv)
        except UsageError:
            refused.append(argv)
    valid = ["--no-use-cuda", "--task", "classification", "--optimization", "sdpa", "--batch-size", "1"]
    valid += ["--max-seqlen", "16", "--num-batches", "1", "--warmup", "0", "--output-dir", str(root / "older")]
    before = tree_hashes(root)
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "benchmark_bert.py"), *argv], cwd=root, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                         "HF_HUB_OFFLINE": "1"})
        for argv in [*refused, valid]
    ]  # fmt: skip
    for argv, proc in zip([*refused, valid], procs, strict=True):
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err and proc.returncode == (0 if argv is valid else 2), (argv, err)
        if argv is not valid:
            assert len(err.splitlines()) == 1, err
    after = tree_hashes(root)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    changed = {name for name in changed if not name.startswith("older/runs/")}
    assert changed == {"older/classification.csv", "older/classification.jsonl"}  # the rows and their record


BAD_NUMBERS = [
    "--batch-size 0",
    "--sweep --batch-sizes 1 0",
    "--sweep --seqlens 64 0",
    "--sweep --pad-fractions 1.5",
    "--max-seqlen 99999999",
    "--seed -1",
    "--warmup -2",
]


def test_a_number_out_of_range_is_refused_before_pytorch_loads():
    """One fresh interpreter for all cases: none of them may import torch."""
    code = (
        "import sys\n"
        "from bertbench.cli import parse_args\n"
        "from bertbench.flags import UsageError\n"
        f"for bad in {BAD_NUMBERS!r}:\n"
        "    try:\n"
        "        parse_args(bad.split())\n"
        "    except UsageError as e:\n"
        "        print(e)\n"
        "    else:\n"
        "        raise SystemExit(f'accepted: {bad}')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(BAD_NUMBERS) and all("must lie in" in line for line in lines), lines


def test_a_hub_id_without_network_is_refused_at_once_without_retries(tmp_path, monkeypatch, capsys):
    """Not a folder, not in the local cache, and the Hub unreachable: one line, exit 2, no retries
    (the Hub's client retries for ~30 s before its own error)."""
    import bertbench.arguments as arguments
    from bertbench.model import heads

    calls = []
    real = heads.load_config

    def recording(name, local_files_only=False):
        calls.append(local_files_only)
        return real(name, local_files_only=local_files_only)

    monkeypatch.setattr(heads, "load_config", recording)
    monkeypatch.setattr(arguments, "_hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(SystemExit) as done:
        benchmark_bert.main(
            ["--no-use-cuda", "--model", "no-such-org/no-such-bert", "--output-dir", str(tmp_path / "r")]
        )
    assert done.value.code == 2 and calls == [True]  # the cache only: the network was never asked
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model no-such-org/no-such-bert: cannot load a BERT-family config" in err
    assert not (tmp_path / "r").exists()


def test_the_hub_probe_says_no_at_once_when_offline_is_set(monkeypatch):
    import bertbench.arguments as arguments

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert arguments._hub_reachable() is False


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra", "modernbert"])
def test_each_family_preset_runs_every_head_through_the_command_line(family, tmp_path):
    """<family>-tiny on the CPU: a row per head, named by the preset, sdpa agreeing with the eager
    baseline; the manifest names the family. Sequences past ModernBERT's 64-token window, so its
    local layers are local."""
    import json

    from bertbench.spec.catalog import TASKS
    from bertbench.store.results import load_rows

    out = tmp_path / "r"
    argv = ["--no-use-cuda", "--model-size", f"{family}-tiny", "--task", "all", "--optimization", "sdpa"]
    argv += ["--batch-size", "2", "--max-seqlen", "80", "--avg-seqlen", "70", "--num-batches", "1", "--warmup", "0"]
    assert benchmark_bert.main([*argv, "--quiet", "--output-dir", str(out)]) == 0
    for task in TASKS:
        (row,) = load_rows(out / f"{task}.csv")
        assert (row["model"], row["attn_implementation"], row["runs"], row["status"]) == (
            f"{family}-tiny",
            "sdpa",
            "sdpa",
            "ok",
        ), row["detail"]
        assert float(row["rel_err"]) < 1e-5 and float(row["gflop"]) > 0
    (manifest,) = (out / "runs").glob("*.json")
    config = json.loads(manifest.read_text())["config"]
    assert (config["model_family"], config["model_size"]) == (family, f"{family}-tiny")


@pytest.mark.parametrize("family", ["roberta", "modernbert"])
def test_a_local_checkpoint_of_a_family_is_read_with_its_positions(family, tmp_path):
    from transformers import AutoModel

    from bertbench.model.families import preset_config

    AutoModel.from_config(preset_config(f"{family}-tiny")).save_pretrained(tmp_path / "checkpoint")
    config = parse_args(["--no-use-cuda", "--model", str(tmp_path / "checkpoint"), "--output-dir", str(tmp_path)])
    assert config.model_family == family and config.model_name == str(tmp_path / "checkpoint")
    too_long = {"roberta": "513", "modernbert": "8193"}[family]  # 514 less RoBERTa's pad offset; ModernBERT's 8192
    with pytest.raises(UsageError, match=f"max seqlen {too_long} is longer than the model's"):
        parse_args(["--no-use-cuda", "--model", str(tmp_path / "checkpoint"), "--max-seqlen", too_long,
                    "--output-dir", str(tmp_path)])  # fmt: skip
