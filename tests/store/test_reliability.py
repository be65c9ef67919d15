"""A run as a user meets it, in real processes of benchmark_bert.py on the CPU: the reproductions
of bad paths and ids, Ctrl-C and SIGTERM at several moments, SIGKILL at random moments then
--resume, two sweeps on one directory, and what the exit code says about the rows."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import benchmark_bert
from bertbench.model.heads import LoadedModel
from bertbench.spec.schema import COLUMNS, row_key
from bertbench.store import signals
from bertbench.store.csvfile import scan
from bertbench.store.results import load_rows, read_rows

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TINY = ["--no-use-cuda", "--model-size", "tiny", "--num-batches", "2", "--warmup", "0", "--task", "qa"]
GRID = ["--sweep", "--batch-sizes", "1", "2", "4", "--seqlens", "16", "32", "--pad-fractions", "0"]
SWEEP = [*TINY, *GRID, "--optimization", "sdpa"]
# 24 points: the four processes of the signal test start together and are signalled in turn, so a
# process signalled mid-sweep must still be mid-sweep when its turn comes (6 points could all
# be done by then on a loaded machine, and a signal during the interpreter's shutdown meets
# Python's default handler); 40 timed calls a model keep each point a few tenths of a second
LONG_GRID = ["--sweep", "--batch-sizes", *map(str, range(1, 9)), "--seqlens", "16", "32", "64", "--pad-fractions", "0"]
LONG_SWEEP = [*TINY, *LONG_GRID, "--optimization", "sdpa", "--num-batches", "40"]
PROG = "benchmark_bert.py: error: "
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc to time the signals")


def start(args: list[str], out: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "benchmark_bert.py", *args, "--output-dir", str(out)],
        cwd=ROOT,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def data_rows(path: Path) -> int:
    """Whole lines after the header (each row of these runs is one line)."""
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def catches_sigterm(pid: int) -> bool:
    """Our handlers are in (Python itself leaves SIGTERM to the default action)."""
    status = proc_file(pid, "status")
    mask = int(re.search(r"SigCgt:\s*([0-9a-f]+)", status).group(1), 16) if status else 0
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def loads_torch(pid: int) -> bool:
    return "libtorch" in proc_file(pid, "maps")


def proc_file(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:  # exited meanwhile: the assertions on its exit say why
        return ""


def assert_whole(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert data.count(b"timestamp,") == 1 and data.endswith(b"\r\n")
    return load_rows(path)  # raises on any line with the wrong field count


def test_the_reproductions_are_one_line_and_exit_2(tmp_path):
    taken = tmp_path / "taken"
    (taken / "qa.csv").mkdir(parents=True)
    linked = tmp_path / "linked"  # a dangling link as the CSV: once a run looped on it, never ending
    linked.mkdir()
    (linked / "qa.csv").symlink_to(tmp_path / "nowhere.csv")
    cases = [
        (["--task", "qa", "--output-dir", "/sys/kernel"], "--output-dir /sys/kernel: cannot create files in"),
        (["--task", "qa", "--output-dir", str(taken)], f"{taken / 'qa.csv'}: not a regular file"),
        (["--task", "qa", "--output-dir", str(linked)], f"{linked / 'qa.csv'}: a symbolic link to "),
        (
            ["--model", "google-bert/bert-base-uncased", "--output-dir", str(tmp_path / "new")],
            "--model google-bert/bert-base-uncased: cannot load a BERT-family config (",
        ),
    ]
    if not Path("/sys/kernel").is_dir():
        cases.pop(0)
    procs = [
        subprocess.Popen(
            [sys.executable, "benchmark_bert.py", "--no-use-cuda", *argv],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, _ in cases
    ]
    for proc, (_, message) in zip(procs, cases, strict=True):
        code, _, err = finish(proc)
        assert code == 2 and err.count("\n") == 1 and err.startswith(PROG + message), err
    assert not (tmp_path / "new").exists()  # nothing was created for a run that never started
    assert [p.name for p in linked.iterdir()] == ["qa.csv"] and (linked / "qa.csv").is_symlink()


@needs_proc
@pytest.mark.parametrize("repetition", range(2))  # repeated: a signal death came once in many tries
def test_sigint_and_sigterm_at_any_moment_end_in_one_line_and_130_or_143(tmp_path, repetition):
    """While importing (handlers just installed; PyTorch half loaded) and mid-sweep, four
    processes at once on the CPU (the load under which a SIGINT once ended in SIGSEGV)."""
    moments = {
        "first thing": (signal.SIGINT, catches_sigterm),
        "importing torch": (signal.SIGTERM, loads_torch),
        "mid-sweep, SIGINT": (signal.SIGINT, None),
        "mid-sweep, SIGTERM": (signal.SIGTERM, None),
    }
    procs = {name: start(LONG_SWEEP, tmp_path / str(i)) for i, name in enumerate(moments)}
    for i, (name, (sig, ready)) in enumerate(moments.items()):
        proc, csv = procs[name], tmp_path / str(i) / "qa.csv"
        moment = (lambda p=proc, r=ready: r(p.pid)) if ready else (lambda c=csv: data_rows(c) >= 1)
        assert wait_until(moment, 120), name
        proc.send_signal(sig)
    for i, (name, (sig, ready)) in enumerate(moments.items()):
        code, out, err = finish(procs[name])
        assert code == 128 + sig, (name, err)
        (line,) = err.splitlines()
        assert line.startswith(f"{PROG}interrupted by {signal.Signals(sig).name}"), (name, line)
        csv = tmp_path / str(i) / "qa.csv"
        if ready is None:  # the rows written before the signal are whole
            assert line.endswith(f"every row finished so far is in {tmp_path / str(i)}/")
            rows = assert_whole(csv)
            assert 1 <= len(rows) < 24 and {r["status"] for r in rows} == {"ok"}
        else:
            assert not csv.exists() and "tasks qa" not in out  # stopped before the run began


@needs_proc
def test_a_signal_at_any_moment_of_start_up_is_one_line_and_130_or_143(tmp_path):
    """SIGINT and SIGTERM, in turn, every 20 ms over the first second after our handlers are in:
    whatever the signal cuts (an import half done, transformers' lazy modules), one line and
    the signal's exit code, never a traceback, and no results file."""
    moments = [(k * 0.02, signal.SIGINT if k % 2 == 0 else signal.SIGTERM) for k in range(50)]
    for batch in range(0, len(moments), 5):
        procs = []
        for k, (delay, sig) in enumerate(moments[batch : batch + 5], start=batch):
            proc = start(SWEEP, tmp_path / str(k))
            assert wait_until(lambda p=proc: catches_sigterm(p.pid), 60), k
            procs.append((k, delay, sig, proc, time.monotonic()))
        for _, delay, sig, proc, since in procs:
            time.sleep(max(0.0, since + delay - time.monotonic()))
            proc.send_signal(sig)
        for k, delay, sig, proc, _ in procs:
            code, _, err = finish(proc)
            assert "Traceback" not in err and code == 128 + sig, (k, delay, code, err[-2000:])
            (line,) = err.splitlines()
            assert line.startswith(f"{PROG}interrupted by {signal.Signals(sig).name}"), (k, line)


def test_any_exception_after_a_signal_ends_as_the_interrupt(tmp_path, capsys, monkeypatch):
    """An interrupt that breaks something on its way (an import cut short re-raised as
    ModuleNotFoundError by transformers, say) still ends as the interrupt: one line, 143."""
    from bertbench import cli

    def broken(argv, prog, where):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises Interrupted here
        except KeyboardInterrupt:  # as transformers' lazy import turns it into its own error
            raise ModuleNotFoundError("Could not import module 'BertForMaskedLM'") from None

    monkeypatch.setattr(cli, "_main", broken)
    with pytest.raises(SystemExit) as done:
        cli.main(["--task", "qa"], prog="benchmark_bert.py")
    assert done.value.code == 143
    assert capsys.readouterr().err == f"{PROG}interrupted by SIGTERM\n"


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends():
    with signals.handled():
        with pytest.raises(signals.Interrupted) as stopped, signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, and raised nothing
            finished = True
        assert finished and stopped.value.exit_code == 143
        os.kill(os.getpid(), signal.SIGINT)  # a repeat while winding down is ignored
        time.sleep(0.05)


def test_a_signal_while_torch_imports_is_raised_once_the_import_is_done(monkeypatch):
    """PyTorch's C++ start-up runs Python code; a signal's exception raised inside it once aborted
    the process (exit -6). arguments.load_torch lets the import finish, then raises the signal."""
    import builtins

    from bertbench import arguments

    real, seen = builtins.__import__, []

    def importing(name, *args, **kwargs):
        if name != "torch":
            return real(name, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # undeferred, the handler raises here
        seen.append("imported")
        return real(name, *args, **kwargs)

    with signals.handled(), pytest.raises(signals.Interrupted) as stopped:
        monkeypatch.setattr(builtins, "__import__", importing)
        try:
            arguments.load_torch()
        finally:
            monkeypatch.undo()
    assert seen == ["imported"] and stopped.value.exit_code == 143


def test_sigkill_at_random_moments_then_resume_ends_with_every_point_once(tmp_path):
    """Killed while it measures, then the resumed run killed at a random moment of its start-up
    (while it may be moving a cut row aside), then resumed to the end."""
    rng = random.Random(2024)
    out = tmp_path / "out"
    csv = out / "qa.csv"
    for moment in ("measuring", "start-up"):
        proc, before = start([*SWEEP, "--resume"], out), data_rows(csv)
        if moment == "start-up":
            wait_until(lambda p=proc: p.poll() is not None, rng.uniform(0.1, 2.0))
        else:  # at a random time after it wrote a row
            wait_until(lambda p=proc, b=before: p.poll() is not None or data_rows(csv) > b, 120)
            time.sleep(rng.uniform(0, 0.3))
        proc.kill()
        finish(proc)
        if csv.exists():
            scan(csv)  # at worst a cut last line, which the next run moves aside
    code, _, err = finish(start([*SWEEP, "--resume"], out))
    assert code == 0, err
    rows = assert_whole(csv)
    keys = [row_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == 6 and {r["status"] for r in rows} == {"ok"}
    assert {(r["batch_size"], r["max_seqlen"]) for r in rows} == {(b, s) for b in "124" for s in ("16", "32")}


def test_two_sweeps_started_together_on_one_directory_keep_every_row(tmp_path):
    grid = [*TINY, "--sweep", "--batch-sizes", "1", "2", "--seqlens", "16", "--pad-fractions", "0"]
    procs = [start([*grid, "--optimization", name], tmp_path) for name in ("sdpa", "sdpa-math")]
    for proc in procs:
        code, _, err = finish(proc)
        assert code == 0, err
    rows = assert_whole(tmp_path / "qa.csv")
    assert sorted((r["attn_implementation"], r["batch_size"]) for r in rows) == [
        ("sdpa", "1"),
        ("sdpa", "2"),
        ("sdpa-math", "1"),
        ("sdpa-math", "2"),
    ]
    assert len({r["run_id"] for r in rows}) == 2 and len(list((tmp_path / "runs").iterdir())) == 2


def test_resume_does_not_grow_the_file_with_unavailable_rows(tiny_config):
    from bertbench.run import sweep

    args = "--task qa --sweep --batch-sizes 1 2 --seqlens 16 --pad-fractions 0 --optimization sdpa flash_attention_2"
    first = sweep.run(tiny_config(f"{args} --resume"), progress=False)
    assert sorted(r.status for r in first) == ["ok", "ok", "unavailable", "unavailable"]
    path = tiny_config("").output_dir / "qa.csv"
    before = path.read_bytes()
    assert sweep.run(tiny_config(f"{args} --resume"), progress=False) == []
    assert path.read_bytes() == before


def test_error_rows_end_the_run_with_exit_1_a_count_and_the_first_reason(tmp_path, monkeypatch, capsys):
    original = LoadedModel.forward

    def forward(self, inputs):
        call = original(self, inputs)
        if self.name != "sdpa-math" or inputs["input_ids"].shape[0] != 2:
            return call

        def explode():
            raise RuntimeError("kernel exploded\nsecond line")

        return explode

    monkeypatch.setattr(LoadedModel, "forward", forward)
    argv = [*TINY, *GRID[:4], "--seqlens", "16", "--pad-fractions", "0", "--optimization", "sdpa", "sdpa-math"]
    with pytest.raises(SystemExit) as exit_info:
        benchmark_bert.main([*argv, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"{PROG}1 of 4 rows are errors; the first, qa sdpa-math at batch 2 x seqlen 16: RuntimeError: kernel exploded"
    )
    assert len(read_rows(tmp_path / "qa.csv")) == 4 and tuple(read_rows(tmp_path / "qa.csv")[0]) == COLUMNS


def test_a_signal_whose_exception_a_finaliser_swallowed_still_stops_the_run():
    """Python prints an exception raised inside __del__ and goes on: the signal handler's
    Interrupted can be lost that way (seen when a SIGTERM met a finaliser mid-sweep)."""

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, inside the finaliser
            time.sleep(0.05)

    with signals.handled():
        Finalised()  # collected at once: Interrupted raised in __del__ and ignored by Python
        with pytest.raises(signals.Interrupted) as stopped:
            signals.check()  # what the sweep calls between points
        assert stopped.value.exit_code == 143

    def main() -> int:  # as cli.main: its own handlers inside guard's last-resort one
        with signals.handled():
            Finalised()
        return 0  # as if nothing had happened

    previous = {sig: signal.getsignal(sig) for sig in signals.SIGNALS}
    try:
        assert signals.guard(main, "prog") == 143
    finally:  # guard leaves its last-resort handler for the interpreter's shutdown: not pytest's
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_signal_while_stderr_is_swapped_for_the_profiler_leaves_fd_2_in_place(monkeypatch):
    """The profiler's start/stop lines go to /dev/null while it runs; a signal that lands during
    that swap is raised when it ends, and fd 2 is back before the interrupt's one line is printed."""
    from bertbench.measure import probes

    real_dup2, before = os.dup2, os.fstat(2)

    def dup2_then_signal(fd, fd2):
        real_dup2(fd, fd2)
        if fd2 == 2 and os.fstat(2).st_ino != before.st_ino:  # fd 2 just went to /dev/null
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    with signals.handled(), pytest.raises(signals.Interrupted):
        monkeypatch.setattr(os, "dup2", dup2_then_signal)
        try:
            with probes._quiet_stderr():
                raise AssertionError("the block must not run: the signal came first")
        finally:
            monkeypatch.undo()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
