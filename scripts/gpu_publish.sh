#!/usr/bin/env bash
# The published numbers: the seed's full grid (8 batch sizes x 3 seqlens x 5 pad fractions) for
# all four task heads, bert-base shape, fp16, eager baseline vs sdpa and flash_attention_2, in
# one process on one GPU. Writes $OUT/results/<task>.csv and $OUT/sweep.log (OUT default gpu-out).
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
mkdir -p "$OUT/results"
start=$(date +%s)
python3 benchmark_bert.py --task all "${publish_sweep[@]}" --output-dir "$OUT/results" 2>&1 | tee "$OUT/sweep.log"
echo "full sweep wall time, model loading included: $(($(date +%s) - start)) s" | tee -a "$OUT/sweep.log"
