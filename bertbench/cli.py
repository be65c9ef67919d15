"""The `bertbench` command: the arguments (arguments.parse_args), then the run, its summary and
its exit code. Bad input ends in one line on stderr and exit code 2, before any work; SIGINT and
SIGTERM in 130 / 143 with one line (store.signals).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bertbench.arguments import SLOW_IN_ALL as SLOW_IN_ALL  # re-exported: what `all` leaves out
from bertbench.arguments import parse_args
from bertbench.flags import UsageError
from bertbench.spec.figures import MEASURED
from bertbench.store import signals
from bertbench.store.results import ResultsError


def fail(message: str, code: int = 2, prog: str = "bertbench") -> None:
    if (signum := signals.received()) is not None and code != 128 + signum:  # what the signal broke on its way
        message, code = signals.describe(signals.Interrupted(signum)), 128 + signum
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None, prog: str = "bertbench") -> int:
    """The benchmark (console script `bertbench`, and `python benchmark_bert.py`).

    Exit codes: 0 every requested point has an ok row or an honest unavailable, oom or
    mismatch row; 1 some row is an error, nothing requested could run, or the results
    could not be written; 2 bad input; 130 / 143 SIGINT / SIGTERM (rows written stay whole).
    """
    with signals.handled():  # first, before PyTorch loads: an interrupted import is one line too
        where: list[Path] = []
        try:
            return _main(sys.argv[1:] if argv is None else argv, prog, where)
        except Exception:  # after a signal, whatever it broke on its way out is the interrupt too
            if (signum := signals.received()) is None:
                raise
            stopped = signals.Interrupted(signum)
        except KeyboardInterrupt as e:
            stopped = e
        kept = f"; every row finished so far is in {where[0]}/" if where else ""
        fail(f"{signals.describe(stopped)}{kept}", signals.exit_code(stopped), prog)
    return 0  # not reached: fail raises SystemExit


def _main(argv: list[str], prog: str, where: list[Path]) -> int:
    if argv[:1] == ["compare"]:
        from bertbench.compare import main as compare

        return compare(argv[1:])
    try:
        config = parse_args(argv, prog)
    except UsageError as e:
        fail(str(e), prog=prog)
    where.append(config.output_dir)
    if config.capacity_limit is not None:
        with signals.deferred():
            from bertbench.run.capacity_run import main as capacity

        return capacity(config)
    if config.dataset is not None:
        with signals.deferred():
            from bertbench.run.dataset_run import main as dataset

        return dataset(config)
    with signals.deferred():  # transformers and the models' modules, imported whole (arguments.load_torch)
        from bertbench.run.console import describe, summarize, time_share
        from bertbench.run.sweep import RunStats, run

    print(describe(config), flush=True)
    start, stats = time.perf_counter(), RunStats()
    try:
        rows = run(config, stats=stats)
        signals.check()  # a signal lost in a finaliser while the run closed its files and models
    except ResultsError as e:
        fail(str(e), 1, prog)
    except OSError as e:  # e.g. a full disk while writing
        fail(f"cannot write the results: {e.strerror or e}{f' ({e.filename})' if e.filename else ''}", 1, prog)
    wall = time.perf_counter() - start
    print(summarize(rows))
    print(f"{len(rows)} rows appended under {config.output_dir}/ in {wall:.1f} s")
    print(time_share(stats.timed_s, wall))
    errors = [r for r in rows if r.status == "error"]
    if errors:
        first = errors[0]
        fail(
            f"{len(errors)} of {len(rows)} rows are errors; the first, {first.task} {first.attn_implementation} "
            f"at batch {first.batch_size} x seqlen {first.max_seqlen}: {first.detail}",
            1,
            prog,
        )
    measured = [r for r in rows if r.status in MEASURED]
    if rows and not measured:
        reasons = sorted({f"{r.attn_implementation}: {r.detail}" for r in rows})
        fail("nothing requested could run here: " + "; ".join(reasons), 1, prog)
    return 0
