#!/usr/bin/env bash
# One sweep over two GPUs of a host (torchrun) against one GPU, and the same points measured on
# each GPU alone. Same grid and budget as scripts/gpu_publish.sh. Writes under $OUT:
# two/ (all four tasks, 2 GPUs), gpu0/ and gpu1/ (a few points on each GPU), one_qa/ and two_qa/
# (QA alone on 1 and on 2 GPUs, for wall time like for like), and torchrun.log with the times.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
sweep=(--sweep --model-size base --dtype fp16 --optimization sdpa flash_attention_2
       --time-budget-ms 150 --min-batches 10 --num-batches 50 --warmup 3)
timed() {  # label, command...: run it and print its wall time, model loading included
    local label=$1 start
    shift
    start=$(date +%s)
    "$@" > "$OUT/$label.log" 2>&1
    echo "$label: $(($(date +%s) - start)) s wall"
}
timed two python3 -m torch.distributed.run --nproc-per-node 2 benchmark_bert.py --task all "${sweep[@]}" \
    --output-dir "$OUT/two"
points=(--task qa --sweep --model-size base --dtype fp16 --optimization sdpa flash_attention_2
        --batch-sizes 64 128 --seqlens 256 512 --pad-fractions 0 0.5 --num-batches 50 --warmup 5)
for gpu in 0 1; do
    timed "gpu$gpu" env LOCAL_RANK=$gpu python3 benchmark_bert.py "${points[@]}" --output-dir "$OUT/gpu$gpu"
done
timed one_qa python3 benchmark_bert.py --task qa "${sweep[@]}" --output-dir "$OUT/one_qa"
timed two_qa python3 -m torch.distributed.run --nproc-per-node 2 benchmark_bert.py --task qa "${sweep[@]}" \
    --output-dir "$OUT/two_qa"
