"""Benchmark BERT task heads under optimized attention implementations against a baseline.

    python benchmark_bert.py --task qa --sweep

See README.md for every flag and the CSV columns; the logic lives in bertbench/.
"""

from __future__ import annotations

import sys
import time

from bertbench.cli import UsageError, fail, parse_args


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except UsageError as e:
        fail(str(e))
    from bertbench.sweep import describe, run, summarize

    print(describe(config), flush=True)
    start = time.perf_counter()
    try:
        rows = run(config)
    except KeyboardInterrupt:
        fail(f"interrupted; every row finished so far is in {config.output_dir}/", code=130)
    print(summarize(rows))
    print(f"{len(rows)} rows appended under {config.output_dir}/ in {time.perf_counter() - start:.1f} s")
    measured = [r for r in rows if r["status"] in ("ok", "mismatch")]
    if rows and not measured:
        reasons = sorted({f"{r['attn_implementation']}: {r['detail']}" for r in rows})
        fail("nothing requested could run here: " + "; ".join(reasons), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
