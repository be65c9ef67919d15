"""plot.py / bertbench-plot: charts and a report from the result CSVs (or .jsonl records) of one results folder.

    python plot.py [--results-dir results] [--plots-dir plots] [--format png svg] [--no-report]

For each <task>.csv, a folder <plots-dir>/<task>/ with, per max seqlen, seqlen_<L>_speedup,
seqlen_<L>_mem_saved and seqlen_<L>_throughput (one panel per pad fraction), the CUDA-graph and
compiled speedups where the rows carry them, and combined (every metric at every seqlen); then
<plots-dir>/report.md and report.html: the fastest and the leanest configuration per task and
regime, with margins and whether they exceed the measured noise. Where --capacity wrote rows
(<results-dir>/capacity/), <plots-dir>/capacity/capacity: the largest batch that fits; where --dataset
did (<results-dir>/dataset/), <plots-dir>/dataset/dataset: real tokens/s per strategy and implementation,
and the report's 'Whole-dataset pass' section (written for those rows alone too).

Bad input (no results, a CSV or .jsonl that is not ours or cannot be read, --plots-dir a file, nothing with
an ok row to draw) is told in one line on stderr, exit status 2. A task without ok rows gets a
one-line note and no charts; the others are drawn.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from bertbench.report.load import PlotError, load_results, no_charts_reason, result_files, summary
from bertbench.store import signals

DEFAULT_FORMATS = ("png", "svg")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise PlotError(message)


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = _Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="where the <task>.csv (or .jsonl) files are"
    )
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"), help="where <task>/ and the report go")
    parser.add_argument("--format", nargs="+", choices=("png", "svg"), default=list(DEFAULT_FORMATS),
                        help="image formats (default: png svg)")  # fmt: skip
    parser.add_argument("--no-report", action="store_true", help="charts only, no report.md / report.html")
    return parser.parse_args(argv)


def _report(data: list, args: argparse.Namespace, written: list[Path], formats: tuple[str, ...]) -> list[Path]:
    from bertbench.report import report

    words = [
        "python",
        "plot.py",
        "--results-dir",
        args.results_dir.as_posix(),
        "--plots-dir",
        args.plots_dir.as_posix(),
    ]
    command = shlex.join([*words, *(["--format", *formats] if formats != DEFAULT_FORMATS else [])])
    return report.write(data, args.plots_dir, written, args.results_dir, command)


def main(argv: list[str] | None = None, prog: str = "bertbench-plot") -> int:
    """The `bertbench-plot` command; plot.py calls it as prog "plot.py". Ctrl-C or SIGTERM: one
    line and 130 / 143; every chart and report is written whole (report.files) or not at all."""
    with signals.handled():
        try:
            return _main(argv, prog)
        except KeyboardInterrupt as e:
            print(f"{prog}: error: {signals.describe(e)}", file=sys.stderr)
            return signals.exit_code(e)


def _main(argv: list[str] | None, prog: str) -> int:
    """The charts and the report."""
    try:
        args = parse_args(argv, prog)
        if args.plots_dir.exists() and not args.plots_dir.is_dir():
            raise PlotError(f"--plots-dir {args.plots_dir}: is a file, not a folder")
        from bertbench.report import capacity_chart, dataset_chart

        formats = tuple(dict.fromkeys(args.format))
        if not (args.results_dir.is_dir() and result_files(args.results_dir)):  # perhaps --capacity or --dataset alone
            written = capacity_chart.write_chart(args.results_dir, args.plots_dir, formats)
            if written:
                print(f"{len(written)} capacity charts written under {args.plots_dir}/capacity/")
            passes = dataset_chart.write_chart(args.results_dir, args.plots_dir, formats)
            if passes:  # the report holds the dataset pass's table: written for it alone too
                reports = [] if args.no_report else _report([], args, [*written, *passes], formats)
                print(f"{len(passes)} dataset-pass charts written under {args.plots_dir}/dataset/"
                      + (f"; report: {reports[0]}, {reports[1].name}" if reports else ""))  # fmt: skip
            if written or passes:
                return 0
        data = load_results(args.results_dir)
        skipped = {d.task: reason for d in data if (reason := no_charts_reason(d))}
        if len(skipped) == len(data):
            reasons = "; ".join(f"{task}.csv: {reason}" for task, reason in skipped.items())
            raise PlotError(f"{args.results_dir}: nothing to draw ({reasons})")
        for task, reason in skipped.items():
            print(f"{prog}: note: {task}.csv: {reason}; no charts for {task}", file=sys.stderr)
        args.plots_dir.mkdir(parents=True, exist_ok=True)
        from bertbench.report.charts import plot_all  # matplotlib: only when drawing

        written = plot_all(data, args.plots_dir, formats)
        written += capacity_chart.write_chart(args.results_dir, args.plots_dir, formats)
        written += dataset_chart.write_chart(args.results_dir, args.plots_dir, formats)
        reports = [] if args.no_report else _report(data, args, written, formats)
    except PlotError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the plots folder cannot be written
        print(f"{prog}: error: {e.filename or args.plots_dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(summary(data))
    print(f"{len(written)} charts written under {args.plots_dir}/" + (f"; report: {reports[0]}, {reports[1].name}"
                                                                       if reports else ""))  # fmt: skip
    return 0
