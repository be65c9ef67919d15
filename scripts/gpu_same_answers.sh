#!/usr/bin/env bash
# Do the fast defaults give the same answers? On one machine, back to back: the main job
# (`--task qa --sweep`) with the defaults (a time budget), the same with CUDA-graph replays (to
# tell GPU-bound points from launch-bound ones), and with a fixed 50 calls after 5 warm-up
# calls, as the original project timed. Then, here: python scripts/same_answers.py OUT_DIR
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
run() {  # name, timeout, flags...
    local name=$1 limit=$2 start
    shift 2
    start=$(date +%s)
    timeout "$limit" python3 benchmark_bert.py --task qa --sweep "$@" --output-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
    echo "$name: python3 benchmark_bert.py --task qa --sweep $*: $(($(date +%s) - start)) s" | tee -a "$OUT/wall.txt"
    tail -2 "$OUT/$name.log" | tee -a "$OUT/wall.txt"
}
run fast 90
run graphs 140 --cuda-graphs
run fixed50 340 --num-batches 50 --warmup 5
tar czf "$OUT/same_answers.tgz" -C "$OUT" fast graphs fixed50 fast.log graphs.log fixed50.log wall.txt
