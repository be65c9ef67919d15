#!/usr/bin/env bash
# The largest batch that fits, per task head, max seqlen 128/256/512, inference and training:
# eager (the baseline) against sdpa and FlashAttention-2, bert-base fp16. Rows in
# $OUT/capacity/capacity/<task>.csv, the chart in $OUT/capacity_plots; writes $OUT/capacity.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
for mode in inference train; do
    start=$(date +%s)
    timeout 280 python3 benchmark_bert.py --task all --capacity --sweep --seqlens 128 256 512 --mode "$mode" \
        --optimization sdpa flash_attention_2 --output-dir "$OUT/capacity" > "$OUT/capacity_$mode.log" 2>&1
    echo "$mode: $(($(date +%s) - start)) s" | tee -a "$OUT/capacity_wall.txt"
    tail -28 "$OUT/capacity_$mode.log"
done
python3 plot.py --results-dir "$OUT/capacity" --plots-dir "$OUT/capacity_plots" --format png
tar czf "$OUT/capacity.tgz" -C "$OUT" capacity capacity_plots capacity_inference.log capacity_train.log capacity_wall.txt
