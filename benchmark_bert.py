"""Benchmark BERT task heads under optimized attention implementations against a baseline.

    python benchmark_bert.py --task qa --sweep

The same as the `bertbench` command; see docs/reference.md for every flag and column.
"""

import sys

from bertbench.store import signals

PROG = "benchmark_bert.py"


def main(argv: list[str] | None = None) -> int:
    from bertbench import cli

    return cli.main(argv, prog=PROG)


if __name__ == "__main__":
    signals.install()  # before anything heavy loads: Ctrl-C or SIGTERM at any moment is one line
    sys.exit(signals.guard(main, PROG))
