#!/usr/bin/env bash
# What packing changes: QA at 64 x 512 with 0, 50 and 75 % padding, bert-base and bert-large,
# fp16: padded sdpa / flash_attention_2 / flash_attention_3, then flash_attention_2/3 on the
# same batches packed (cu_seqlens given, no mask). Writes $OUT/packing/qa.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-deps .whl/*.whl
fi
for size in base large; do
    grid=(--task qa --sweep --model-size "$size" --dtype fp16 --batch-sizes 64 --seqlens 512
          --pad-fractions 0 0.5 0.75 --num-batches 30 --warmup 5 --output-dir "$OUT/packing")
    python3 benchmark_bert.py "${grid[@]}" --optimization sdpa flash_attention_2 flash_attention_3
    python3 benchmark_bert.py "${grid[@]}" --packed --optimization flash_attention_2 flash_attention_3
done
