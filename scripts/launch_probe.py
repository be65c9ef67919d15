"""Where does latency at small batches come from? Times bert-base QA (fp16) on the GPU:
consecutive calls, calls in short chunks with a sync between chunks, and short chunks that
alternate between two models, reporting the first call of a chunk apart from the rest.

    python3 scripts/launch_probe.py         (with the package installed: pip install -e .)
    python3 -m scripts.launch_probe         (from the repository root, without installing)
"""

import statistics

import torch

from bertbench.measure.timing import latencies
from bertbench.model.batches import make_batch
from bertbench.model.heads import load_baseline, load_like

device = torch.device("cuda")
eager = load_baseline("qa", "eager", "base", None, device, torch.float16, seed=0)
sdpa = load_like(eager, "sdpa", device, torch.float16)
print(f"{'batch':>5} {'pattern':<28} {'first of chunk ms':>18} {'rest ms':>8}")
for batch_size in (1, 16, 128):
    batch = make_batch("qa", batch_size, 128, 128, 10, 30522, 2, True, 0, device)
    calls = {m.name: m.forward(batch.model_inputs()) for m in (eager, sdpa)}
    with torch.inference_mode():
        for fn in calls.values():
            latencies(fn, device, 5)
        runs = latencies(calls["sdpa"], device, 40)
        print(f"{batch_size:>5} {'sdpa x40 in a row':<28} {runs[0]:>18.2f} {statistics.median(runs[1:]):>8.2f}")
        for pattern, order in (("sdpa, chunks of 3, sync", ["sdpa"]), ("eager/sdpa alternating x3", ["eager", "sdpa"])):
            first, rest = [], []
            for _ in range(10):
                for name in order:
                    chunk = latencies(calls[name], device, 3)
                    if name == "sdpa":
                        first.append(chunk[0])
                        rest += chunk[1:]
            print(f"{batch_size:>5} {pattern:<28} {statistics.median(first):>18.2f} {statistics.median(rest):>8.2f}")
