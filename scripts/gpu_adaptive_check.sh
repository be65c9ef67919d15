#!/usr/bin/env bash
# Does the adaptive repetition count (--time-budget-ms) move the medians? The same qa points
# timed with a fixed 50 batches and, twice, with the 150 ms budget the published sweep uses.
# Writes $OUT/{fixed50,budget_a,budget_b}/qa.csv (OUT default gpu-out).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
grid=(--task qa --sweep --model-size base --dtype fp16 --optimization sdpa flash_attention_2
      --batch-sizes 1 16 128 --seqlens 128 512 --pad-fractions 0 0.5 --warmup 3)
python3 benchmark_bert.py "${grid[@]}" --num-batches 50 --output-dir "$OUT/fixed50" >/dev/null
for run in budget_a budget_b; do
    python3 benchmark_bert.py "${grid[@]}" --time-budget-ms 150 --min-batches 10 --num-batches 50 \
        --output-dir "$OUT/$run" >/dev/null
done
python3 - "$OUT" <<'PY'
import sys
import pandas as pd
out = sys.argv[1]
key = ["attn_implementation", "batch_size", "max_seqlen", "pad_fraction"]
runs = {name: pd.read_csv(f"{out}/{name}/qa.csv").set_index(key) for name in ("fixed50", "budget_a", "budget_b")}
table = pd.DataFrame({f"{name} ms": r["latency_ms"] for name, r in runs.items()})
table["n"] = runs["budget_a"]["num_batches"]
table["budget vs fixed %"] = (table["budget_a ms"] / table["fixed50 ms"] - 1) * 100
table["budget a vs b %"] = (table["budget_a ms"] / table["budget_b ms"] - 1) * 100
print(table.round(2).to_string())
PY
