"""Charts and a report from results/<task>.csv: see bertbench/plot_cli.py (also the `bertbench-plot` command).

python plot.py [--results-dir results] [--plots-dir plots] [--format png svg] [--no-report]
"""

import sys

from bertbench import plot_cli


def main(argv: list[str] | None = None) -> int:
    return plot_cli.main(argv, prog="plot.py")


if __name__ == "__main__":
    sys.exit(main())
