#!/usr/bin/env bash
# The published numbers: the seed's full grid (8 batch sizes x 3 seqlens x 5 pad fractions) for
# all four task heads, bert-base shape, fp16, eager baseline vs sdpa and flash_attention_2, in
# one process on one GPU, with the default timing (a time budget). Writes
# $OUT/results/<task>.csv, runs/<run_id>.json and $OUT/sweep.log (OUT default gpu-out), packed
# into $OUT/results.tgz.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
mkdir -p "$OUT/results"
start=$(date +%s)
timeout "${LIMIT:-560}" python3 benchmark_bert.py --task all "${publish_sweep[@]}" --output-dir "$OUT/results" \
    > "$OUT/sweep.log" 2>&1 || echo "exit $?" >> "$OUT/sweep.log"
echo "full sweep wall time, model loading included: $(($(date +%s) - start)) s" | tee -a "$OUT/sweep.log"
tar czf "$OUT/results.tgz" -C "$OUT" results sweep.log
