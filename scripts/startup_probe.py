"""Where does the start of a run go? Wall time of each step before the first grid point of
`--task qa --sweep` (imports, the device's first use, the matmul probe, the host probe, the
models), then of the first point. Prints one line per step.

    python scripts/startup_probe.py
"""

import time

start = last = time.perf_counter()


def step(name: str) -> None:
    global last
    now = time.perf_counter()
    print(f"{name:<40} {now - last:6.2f} s  (total {now - start:6.2f} s)", flush=True)
    last = now


import torch  # noqa: E402

step("import torch")
import transformers  # noqa: E402, F401

step("import transformers")
from bertbench.cli import parse_args  # noqa: E402
from bertbench.measure.host import HostWatch  # noqa: E402
from bertbench.measure.probes import matmul_tflops  # noqa: E402
from bertbench.model.holder import TaskModels  # noqa: E402
from bertbench.run.point import measure_point  # noqa: E402

step("import bertbench")
config = parse_args(["--task", "qa", "--sweep"])
device = config.torch_device
torch.zeros(1, device=device)
torch.cuda.synchronize() if device.type == "cuda" else None
step(f"first use of {device}")
matmul_tflops(device, config.torch_dtype)
step("matmul_tflops")
watch = HostWatch(device)
step("HostWatch (warm probes)")
models = TaskModels("qa", config)
step(f"TaskModels: baseline, float32 reference, {len(models.models)} implementations")
for point in config.points[:3]:
    measure_point(models, point, config.implementations, watch.read)
    step(f"point batch {point.batch_size} x {point.max_seqlen} pad {point.pad_fraction:g}")
point = config.points[-1]
measure_point(models, point, config.implementations, watch.read)
step(f"point batch {point.batch_size} x {point.max_seqlen} pad {point.pad_fraction:g}")
