#!/usr/bin/env bash
# Do rows repeat? The main job (`--task qa --sweep`, defaults) twice, back to back, in separate
# processes, with each run's wall time; then scripts/compare_runs.py: how many rows flagged
# noisy in neither run agree within 5 %. Writes $OUT/repeat.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
for name in run1 run2; do
    start=$(date +%s)
    timeout 150 python3 benchmark_bert.py --task qa --sweep --output-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
    echo "$name: python3 benchmark_bert.py --task qa --sweep: $(($(date +%s) - start)) s" \
        | tee -a "$OUT/wall.txt"
    tail -4 "$OUT/$name.log" | tee -a "$OUT/wall.txt"
done
python3 scripts/compare_runs.py "$OUT/run1" "$OUT/run2" qa > "$OUT/compare.txt" 2>&1
head -8 "$OUT/compare.txt"
tar czf "$OUT/repeat.tgz" -C "$OUT" run1 run2 run1.log run2.log wall.txt compare.txt
