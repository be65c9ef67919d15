"""Where does a sweep's wall time go besides the timed calls? Wall time of each step, summed
over a sweep, by wrapping the functions that make the steps with a timer (cheap enough not to
slow launch-bound calls down, as a Python profiler would). Prints a short table.

    python scripts/profile_overhead.py [benchmark flags...]
"""

import functools
import sys
import time
from collections import defaultdict

from bertbench.cli import parse_args
from bertbench.measure import host, variants
from bertbench.model import holder
from bertbench.run import point, sweep
from bertbench.store import results

spent: dict[str, float] = defaultdict(float)
calls: dict[str, int] = defaultdict(int)


def timed(owner, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start
            calls[label] += 1

    setattr(owner, name, wrapper)


STEPS = (  # (where the name is looked up, name, label), outermost first
    (sweep, "TaskModels", "load the models"),
    (sweep, "measure_point", "measure_point (all of a point)"),
    (holder.TaskModels, "inputs", "  batch and calls"),
    (point, "measure", "  variants.measure"),
    (variants, "time_interleaved", "    untimed + timed calls"),
    (variants, "run_with_peak_memory", "      last untimed call (memory, output)"),
    (variants, "attention_kernels", "        of it under the profiler (kernels)"),
    (point, "agreement", "  parity"),
    (point, "return_cached", "  empty the allocator cache"),
    (host.HostWatch, "read", "  host probes"),
    (sweep, "point_rows", "rows"),
    (results.ResultsFile, "append", "append to the CSV"),
)
for owner, name, label in STEPS:
    timed(owner, name, label)

config = parse_args(sys.argv[1:])
stats = sweep.RunStats()
start = time.perf_counter()
sweep.run(config, False, stats)
wall = time.perf_counter() - start
print(f"wall {wall:.1f} s, timed calls {stats.timed_s:.1f} s, points {stats.points}")
for _, _, label in STEPS:
    print(f"{label:<44} {spent[label]:7.2f} s  {calls[label]:6d} calls")
