#!/usr/bin/env bash
# Do the fast defaults give the same answers? The main job (`--task qa --sweep`) timed twice with
# the defaults (a time budget) and once with a fixed 50 calls after 5 warm-up calls, as the
# original project timed, that one also replaying CUDA graphs to tell GPU-bound points from
# launch-bound ones. Then: python scripts/same_answers.py $OUT/{fixed50,fast1,fast2}
# Usage: scripts/gpu_same_answers.sh fixed|fast
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
case "${1:-fast}" in
fixed)
    start=$(date +%s)
    timeout 560 python3 benchmark_bert.py --task qa --sweep --num-batches 50 --warmup 5 --cuda-graphs \
        --output-dir "$OUT/fixed50" > "$OUT/fixed50.log" 2>&1
    echo "fixed 50 calls + CUDA graphs: $(($(date +%s) - start)) s (exit $?)" | tee -a "$OUT/wall.txt" ;;
fast)
    for run in fast1 fast2; do
        start=$(date +%s)
        timeout 250 python3 benchmark_bert.py --task qa --sweep --output-dir "$OUT/$run" > "$OUT/$run.log" 2>&1
        echo "$run: python benchmark_bert.py --task qa --sweep: $(($(date +%s) - start)) s" | tee -a "$OUT/wall.txt"
        tail -3 "$OUT/$run.log" | tee -a "$OUT/wall.txt"
    done ;;
esac
tar czf "$OUT/same_answers_$1.tgz" -C "$OUT" --exclude='*.tgz' .
