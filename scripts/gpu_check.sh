#!/usr/bin/env bash
# After a change to the measuring code: the GPU tests, the parity and baseline-failure cases of
# the trust issue, the main job's wall time under a time budget, and what each implementation
# costs per point. Logs under $OUT (default gpu-out).
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
failed=0
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
timeout 300 python3 -m pytest -m gpu -q -s tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "passed|failed|Error|^\(" || failed=1
start=$(date +%s)
timeout 200 python3 benchmark_bert.py --task qa --sweep --warmup 2 --time-budget-ms 50 --min-batches 5 \
    --output-dir "$OUT/qa_budget" > "$OUT/qa_budget.log" 2>&1 || failed=1
echo "qa sweep, budget 50 ms, min 5, warm-up 2: $(($(date +%s) - start)) s" | tee -a "$OUT/summary.txt"
tail -4 "$OUT/qa_budget.log" | tee -a "$OUT/summary.txt"
start=$(date +%s)
timeout 200 python3 benchmark_bert.py --task qa --optimization all --sweep --batch-sizes 1 128 --seqlens 128 512 \
    --pad-fractions 0 0.5 --warmup 2 --time-budget-ms 50 --min-batches 5 --output-dir "$OUT/all_impls" \
    > "$OUT/all_impls.log" 2>&1 || failed=1
echo "all implementations, 8 points: $(($(date +%s) - start)) s" | tee -a "$OUT/summary.txt"
grep -E "points,|timed calls" "$OUT/all_impls.log" | tee -a "$OUT/summary.txt"
exit $failed
