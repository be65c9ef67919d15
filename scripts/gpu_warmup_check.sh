#!/usr/bin/env bash
# Where do the default budget's medians part from a fixed 50-call run: the one warm-up call or
# the few timed calls? On a reduced qa grid (host-bound to GPU-bound points), four timings back
# to back, twice over in turn so that a drift of the machine falls on all of them:
#   w1_budget (the defaults), w5_budget (--warmup 5), w5_n50 (--num-batches 50 --warmup 5),
#   w1_n50 (--num-batches 50 --warmup 1).
# Writes the comparison and a tarball of the eight results to $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
WORK=$(mktemp -d)  # the results: only the tarball and the summary go back
grid=(--task qa --sweep --batch-sizes 1 4 16 32 64 128 --seqlens 128 512 --pad-fractions 0 0.5)
run() {  # name, flags...
    local name=$1 start
    shift
    start=$(date +%s)
    timeout 150 python3 benchmark_bert.py "${grid[@]}" "$@" --output-dir "$WORK/$name" > "$WORK/$name.log" 2>&1
    echo "$name: $* : $(($(date +%s) - start)) s" | tee -a "$WORK/wall.txt"
}
for cycle in 1 2; do
    run "w1_budget_$cycle"
    run "w5_budget_$cycle" --warmup 5
    run "w5_n50_$cycle" --num-batches 50 --warmup 5
    run "w1_n50_$cycle" --num-batches 50 --warmup 1
done
python3 scripts/warmup_check.py "$WORK" | tee "$OUT/warmup_check.md"
tar czf "$OUT/warmup_check.tgz" -C "$WORK" .
