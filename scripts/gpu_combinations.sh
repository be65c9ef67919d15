#!/usr/bin/env bash
# The fastest combination at 64 x 512, fp16, QA, no padding and 50 %: padded (eager,
# sdpa, FlashAttention-2) and packed (sdpa-varlen, FlashAttention-2/3), each in the loop,
# replayed from a CUDA graph and compiled; then one forward of each broken down by kernel class
# (scripts/kernel_breakdown.py). With CAPACITY_TASKS set, first the --capacity search of those
# heads at 128/256/512 (inference). SIZE=large for bert-large (default base); RUN_LIMIT: seconds
# for each of the two runs (default 130; bert-large compiles twice as many layers); BREAKDOWN=0
# leaves the breakdown out. Writes $OUT/combinations.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
for task in ${CAPACITY_TASKS:-}; do
    timeout 150 python3 benchmark_bert.py --task "$task" --capacity --sweep --seqlens 128 256 512 \
        --optimization sdpa flash_attention_2 --output-dir "$OUT/capacity" > "$OUT/capacity_$task.log" 2>&1
    tail -10 "$OUT/capacity_$task.log"
done
point=(--task qa --model-size "${SIZE:-base}" --sweep --batch-sizes 64 --seqlens 512 --pad-fractions 0 0.5
    --cuda-graphs --compile)
timeout "${RUN_LIMIT:-130}" python3 benchmark_bert.py "${point[@]}" --optimization sdpa flash_attention_2 \
    --output-dir "$OUT/combinations/padded" > "$OUT/padded.log" 2>&1
timeout "${RUN_LIMIT:-130}" python3 benchmark_bert.py "${point[@]}" --packed --optimization sdpa-varlen flash_attention_2 \
    flash_attention_3 --output-dir "$OUT/combinations/packed" > "$OUT/packed.log" 2>&1
one=(--task qa --model-size "${SIZE:-base}" --batch-size 64 --max-seqlen 512)
for avg in $([ "${BREAKDOWN:-1}" = 1 ] && echo 512 256); do
    timeout 40 python3 scripts/kernel_breakdown.py "${one[@]}" --avg-seqlen $avg --optimization sdpa flash_attention_2
    timeout 40 python3 scripts/kernel_breakdown.py "${one[@]}" --avg-seqlen $avg --packed \
        --optimization sdpa-varlen flash_attention_2 flash_attention_3
done 2>&1 | grep -v "Warning\|attn_output" | tee "$OUT/breakdown.txt"
tar czf "$OUT/combinations.tgz" -C "$OUT" combinations padded.log packed.log breakdown.txt \
    $(cd "$OUT" && ls -d capacity capacity_*.log 2>/dev/null)
