"""Charts and a report from results/<task>.csv: see bertbench/plot_cli.py (also the `bertbench-plot` command).

python plot.py [--results-dir results] [--plots-dir plots] [--format png svg] [--no-report]
"""

import sys

from bertbench.store import signals

PROG = "plot.py"


def main(argv: list[str] | None = None) -> int:
    from bertbench import plot_cli

    return plot_cli.main(argv, prog=PROG)


if __name__ == "__main__":
    signals.install()  # before pandas and matplotlib load: Ctrl-C or SIGTERM at any moment is one line
    sys.exit(signals.guard(main, PROG))
