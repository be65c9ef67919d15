"""Turn results/<task>.csv into speedup, memory-saved and throughput charts under plots/<task>/:
the `bertbench-plot` command, the same as `python plot.py`.

    bertbench-plot [--results-dir results] [--plots-dir plots] [--format png|svg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertbench.plotting import PlotError, load_results, plot_all, summary


def build_parser(prog: str = "bertbench-plot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where the <task>.csv files are")
    parser.add_argument("--plots-dir", type=Path, default=Path("plots"), help="where <task>/ chart folders go")
    parser.add_argument("--format", choices=("png", "svg"), default="png", help="image format")
    return parser


def main(argv: list[str] | None = None, prog: str = "bertbench-plot") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        data = load_results(args.results_dir)
        written = plot_all(data, args.plots_dir, args.format)
    except PlotError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(summary(data))
    print(f"{len(written)} charts written under {args.plots_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
