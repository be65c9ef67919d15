"""Where does a sweep's wall time go besides the timed calls? cProfile over a small sweep,
the cumulative time of the steps that are not timed calls. Prints a short table.

    python scripts/profile_overhead.py [benchmark flags...]
"""

import cProfile
import pstats
import sys
import time

from bertbench.cli import parse_args
from bertbench.sweep import RunStats, run

STEPS = (
    "load_baseline",
    "load_like",
    "matmul_tflops",
    "make_batch",
    "time_interleaved",
    "attention_kernels",
    "run_with_peak_memory",
    "agreement",
    "compile_friendly_flex_attention",
    "measure_point",
    "release_memory",
    "append",
)

config = parse_args(sys.argv[1:])
stats = RunStats()
profiler = cProfile.Profile()
start = time.perf_counter()
profiler.runcall(run, config, False, stats)
wall = time.perf_counter() - start
table = pstats.Stats(profiler)
print(f"wall {wall:.1f} s, timed calls {stats.timed_s:.1f} s, points {stats.points}")
for (filename, _, name), (_, _, _, cumulative, _) in sorted(table.stats.items(), key=lambda kv: -kv[1][3]):
    if name in STEPS:
        print(f"{name:<34} {cumulative:8.1f} s  {filename.rsplit('/', 2)[-1]}")
table.sort_stats("tottime").print_stats(12)
