#!/usr/bin/env bash
# The sweep on one GPU against the same sweep over NPROC GPUs of the host (torchrun), task by
# task and back to back, so that both wall times come from one host and one version of the code;
# then whether the two runs hold the same rows (scripts/compare_runs.py). On a host of two or
# more GPUs, also a few points measured on each GPU alone, to check the GPUs agree.
# Grid and budget of scripts/gpu_publish.sh.
# Usage: [NPROC=N] scripts/gpu_torchrun.sh [TASK...]   (default: the four tasks; NPROC: every
# GPU). Split the tasks over calls where a call may run 10 minutes: a task takes ~2 min on
# one H100. Writes under $OUT: one/ and torchrun<N>/ (<task>.csv), gpu<i>/, a log per run.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
gpus=$(nvidia-smi -L | wc -l)
nproc=${NPROC:-$gpus}
tasks=("$@")
((${#tasks[@]})) || tasks=(mlm classification token_classification qa)
timed() {  # label, command...: run it; print its wall time (start and model loading included)
    local label=$1 start          # and the time the benchmark itself reports
    shift
    start=$(date +%s)
    "$@" > "$OUT/$label.log" 2>&1
    echo "$label: $(($(date +%s) - start)) s wall; $(grep -o 'rows appended .*' "$OUT/$label.log" | tail -1)"
}
for task in "${tasks[@]}"; do
    timed "one_$task" python3 benchmark_bert.py --task "$task" "${publish_sweep[@]}" --output-dir "$OUT/one"
    timed "torchrun${nproc}_$task" python3 -m torch.distributed.run --nproc-per-node "$nproc" benchmark_bert.py \
        --task "$task" "${publish_sweep[@]}" --output-dir "$OUT/torchrun$nproc"
done
python3 scripts/compare_runs.py "$OUT/one" "$OUT/torchrun$nproc" "${tasks[@]}"
if ((gpus >= 2)); then
    points=(--task qa --sweep --model-size base --dtype fp16 --optimization sdpa flash_attention_2
            --batch-sizes 64 128 --seqlens 256 512 --pad-fractions 0 0.5 --num-batches 50 --warmup 5)
    for ((gpu = 0; gpu < gpus; gpu++)); do
        timed "gpu$gpu" env LOCAL_RANK=$gpu python3 benchmark_bert.py "${points[@]}" --output-dir "$OUT/gpu$gpu"
    done
fi
