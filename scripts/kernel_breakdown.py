"""Where one forward's GPU time goes, by kernel class: matrix multiplies (GEMM), attention,
everything else (element-wise, layer norm, softmax outside fused attention, copies), and the
gaps between kernels (the GPU idle: launches, host synchronisations). One grid point, every
model of the run (the baseline first), after three warm-up calls, under torch.profiler.

    python scripts/kernel_breakdown.py --task qa --batch-size 64 --max-seqlen 512 --avg-seqlen 256 \\
        --optimization sdpa-varlen flash_attention_2 --packed

Prints one line per model; gaps = (last kernel end - first kernel start) - kernel time.
"""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from bertbench.cli import parse_args
from bertbench.measure.probes import kernel_class
from bertbench.model.holder import TaskModels


def breakdown(call, inference: bool) -> dict[str, float]:
    with torch.inference_mode(inference):
        for _ in range(3):
            call()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    spent = {"gemm": 0.0, "attention": 0.0, "other": 0.0}
    for e in kernels:
        spent[kernel_class(e.name)] += (e.time_range.end - e.time_range.start) / 1e3
    span = (max(e.time_range.end for e in kernels) - min(e.time_range.start for e in kernels)) / 1e3
    return {**spent, "gaps": span - sum(spent.values()), "span": span, "kernels": len(kernels)}


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    if config.torch_device.type != "cuda":
        print("kernel_breakdown: needs a CUDA GPU", file=sys.stderr)
        return 2
    (task,), (point,) = config.tasks, config.points
    models = TaskModels(task, config, reference=False)
    inputs = models.inputs(point, [n for n in config.implementations if n in models.models])
    print(f"{task} batch {point.batch_size} x {point.max_seqlen}, avg {point.avg_seqlen:g}, packed {config.packed}")
    print(f"{'model':<20} {'span ms':>8} {'GEMM':>7} {'attention':>9} {'other':>7} {'gaps':>7} {'kernels':>7}")
    for key, call in inputs.calls.items():
        b = breakdown(call, config.mode == "inference")
        share = {k: 100 * b[k] / b["span"] for k in ("gemm", "attention", "other", "gaps")}
        print(
            f"{key:<20} {b['span']:8.2f} {share['gemm']:6.1f}% {share['attention']:8.1f}% {share['other']:6.1f}% "
            f"{share['gaps']:6.1f}% {b['kernels']:7d}"
        )
    for name, failure in models.failed.items():
        print(f"{name:<20} {failure.status}: {failure.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
