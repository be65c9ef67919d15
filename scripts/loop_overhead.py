"""What the benchmark's timed loop costs beyond a plain loop of the same calls, in one process.

    python scripts/loop_overhead.py BENCHMARK_FLAGS

e.g. `--task qa --batch-size 8 --max-seqlen 512 --avg-seqlen 256 --optimization sdpa flash_attention_2`
(add `--mode train` for forward + loss + backward + zeroing the gradients). For the baseline and each
implementation at the one point the flags name, three figures per call:

- tool: the median of the benchmark's own timed loop (measure.timing.time_interleaved, its default
  budget and rounds) over the call the benchmark times (model.holder.TaskModels.inputs);
- plain: a plain loop over the same loaded model and batch, `model(**inputs)` (train: then
  `loss.backward()` and `zero_grad(set_to_none=True)`), with no wrapper, events or rounds: the
  mean of 20 back-to-back calls between two synchronisations, the median of 3 such runs;
- kernels: the sum of the call's kernel durations (measure.gpu_time), which neither loop moves.

The two loops alternate REPEATS times (tool, plain, tool, plain, ...) and each figure is the median
of its repeats, so a slow spell of the host (seconds long) falls on both rather than on one; the
range of tool/plain over the repeats is printed beside it.

CUDA only (on the CPU every figure is the host's).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from bertbench.arguments import parse_args
from bertbench.flags import UsageError
from bertbench.measure.gpu_time import gpu_times
from bertbench.measure.timing import time_interleaved
from bertbench.model.holder import BASELINE, TaskModels

PLAIN_CALLS, PLAIN_RUNS, REPEATS = 20, 3, 3


def plain_call(model, inputs: dict, train: bool):
    if not train:
        return lambda: model(**inputs)

    def step():
        output = model(**inputs)
        output.loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def plain_ms(call, device: torch.device) -> float:
    runs = []
    for _ in range(PLAIN_RUNS):
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(PLAIN_CALLS):
            call()
        torch.cuda.synchronize(device)
        runs.append((time.perf_counter() - start) * 1e3 / PLAIN_CALLS)
    return statistics.median(runs)


def main(argv: list[str]) -> int:
    try:
        config = parse_args(["--use-cuda", *argv], prog="loop_overhead.py")
    except UsageError as e:
        print(f"loop_overhead.py: {e}", file=sys.stderr)
        return 2
    device, train = config.torch_device, config.mode == "train"
    (task,), (point,) = config.tasks, config.points
    models = TaskModels(task, config, reference=False)
    inputs = models.inputs(point, list(config.implementations))
    batch = inputs.batch.model_inputs()
    loaded = {BASELINE: models.baseline, **models.models}
    print(f"{task} {config.mode} batch {point.batch_size} x {point.max_seqlen}, pad {point.pad_fraction:g}")
    print(f"{'model':<22} {'tool ms':>9} {'plain ms':>9} {'tool/plain':>10} {'range':>13} {'kernels ms':>10}")
    with torch.inference_mode(not train):
        for key, call in inputs.calls.items():
            name = config.baseline if key == BASELINE else key
            plain = plain_call(loaded[key].model, batch, train)
            for _ in range(3):  # warm both
                call(), plain()
            tools, plains = [], []
            for _ in range(REPEATS):
                timings, failures = time_interleaved({key: call}, device, config.timing)
                if failures:
                    break
                tools.append(timings[key].median)
                plains.append(plain_ms(plain, device))
            if failures:
                print(f"{name:<22} {failures[key].status}: {failures[key].detail}")
                continue
            ratios = [t / p for t, p in zip(tools, plains, strict=True)]
            tool, loop = statistics.median(tools), statistics.median(plains)
            kernels = gpu_times({key: call}, device, 3)[key].median
            spread = f"{min(ratios):.3f}-{max(ratios):.3f}"
            print(f"{name:<22} {tool:>9.3f} {loop:>9.3f} {tool / loop:>10.3f} {spread:>13} {kernels:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
