"""`bertbench compare A B` (also `python -m bertbench.compare`): two runs side by side, their
verdicts (bertbench.report.compare) printed as Markdown, and with --out compare.md and compare.png."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import NoReturn

from bertbench.report.compare import CompareError, compare, describe, joined_columns, keyed, read_all, render
from bertbench.report.files import write_text

SHOWN = 20  # --fail-above lists this many points, then a count


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CompareError(message)


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = _Parser(prog=prog, description="Compare the GPU time, latency and memory of two benchmark runs.")
    parser.add_argument("a", type=Path, metavar="A", help="results folder, CSV or .jsonl record of the first run")
    parser.add_argument("b", type=Path, metavar="B", help="results folder, CSV or .jsonl record of the second run")
    parser.add_argument("--threshold", type=float, default=2.0, metavar="PCT",
                        help="smallest change that counts, whatever the spread (default 2)")  # fmt: skip
    parser.add_argument("--fail-above", type=float, metavar="PCT",
                        help="exit 1 when a point is slower by more than PCT %%")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR", help="write compare.md and compare.png here")
    args = parser.parse_args(argv)
    for option, value in (("--threshold", args.threshold), ("--fail-above", args.fail_above)):
        if value is not None and not 0 <= value < math.inf:
            raise CompareError(f"{option} {value}: not a percentage >= 0")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise CompareError(f"--out {args.out}: is a file, not a folder")
    return args


def main(argv: list[str] | None = None, prog: str = "bertbench compare") -> int:
    try:
        args = parse_args(argv, prog)
        rows_a, rows_b = read_all(args.a), read_all(args.b)
        columns = joined_columns(rows_a, rows_b)
        a, b = keyed(rows_a, columns), keyed(rows_b, columns)
        result = compare(a, b, columns, args.threshold / 100)
        if not result.pairs:
            print(f"{prog}: nothing to compare: no point is measured (status ok or mismatch) in both {args.a} "
                  f"and {args.b}", file=sys.stderr)  # fmt: skip
            return 1
        report = render(result, [describe(args.a, a), describe(args.b, b)], args.threshold / 100)
        print(report, end="")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            write_text(args.out / "compare.md", report)
            from bertbench.report.compare_chart import write_chart  # matplotlib: only when drawn

            write_chart(result, args.out / "compare.png", f"A: {args.a}   B: {args.b}")
    except (CompareError, OSError) as e:  # OSError: writing to --out
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if args.fail_above is None:
        return 0
    # judged by the GPU time where both rows have one (the host's speed does not move it), else the latency
    slow = [p for p in result.pairs if (v := p.headline[0]).kind == "slower" and v.ratio > 1 + args.fail_above / 100]
    for p in slow[:SHOWN]:
        verdict, a_ms, b_ms, what = p.headline
        print(f"slower by {verdict.ratio - 1:.1%}: {p.section} {p.series}, batch {p.batch} seqlen {p.seqlen} "
              f"pad {p.pad}: {what} {a_ms:.4g} -> {b_ms:.4g} ms")  # fmt: skip
    if len(slow) > SHOWN:
        print(f"... and {len(slow) - SHOWN} more")
    if slow:
        print(f"{len(slow)} of {len(result.pairs)} compared points slower by more than {args.fail_above:g} %")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
