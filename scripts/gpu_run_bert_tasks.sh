#!/usr/bin/env bash
# ./run_bert.sh one head at a time (for a run longer than one call may last), each timed:
#   TASKS="mlm classification" IMPLS="all flex_attention" bash scripts/gpu_run_bert_tasks.sh
# The sum of the heads' wall times bounds the whole run's: each pays its own start-up and
# draws the charts of the heads measured so far. Writes wall.txt, each head's CSV and log tail
# under $OUT.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
WORK=$(mktemp -d)
for task in ${TASKS:-mlm classification token_classification qa}; do
    start=$(date +%s)
    RESULTS="$WORK/results" PLOTS="$WORK/plots" PYTHON=python3 timeout "${LIMIT:-290}" ./run_bert.sh --task "$task" \
        > "$WORK/$task.log" 2>&1
    code=$?
    echo "IMPLS=\"${IMPLS:-all}\" ./run_bert.sh --task $task: $(($(date +%s) - start)) s, exit $code" | tee -a "$OUT/wall.txt"
    grep -E "^tasks |rows appended|timed calls took|charts written" "$WORK/$task.log" | sed -E "s#$WORK/#gpu-out/#g" \
        | tee -a "$OUT/wall.txt"
    cp "$WORK/results/$task.csv" "$OUT/$task.csv"
done
