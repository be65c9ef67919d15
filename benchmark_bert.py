"""Benchmark BERT task heads under optimized attention implementations against a baseline.

    python benchmark_bert.py --task qa --sweep

The same as the `bertbench` command; see docs/reference.md for every flag and column.
"""

import sys

from bertbench import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, prog="benchmark_bert.py")


if __name__ == "__main__":
    sys.exit(main())
