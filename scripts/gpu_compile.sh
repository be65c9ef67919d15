#!/usr/bin/env bash
# Does compiling beat switching attention, and do the two add up? QA, bert-base, fp16: eager
# (the baseline), sdpa and flash_attention_2, each also timed after torch.compile, at 64 x 512
# with 0 and 50 % padding, at 64 x 512 without a mask, and at 1 x 128. Writes $OUT/compile/qa.csv.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
common=(--task qa --model-size base --dtype fp16 --num-batches 30 --warmup 5 --compile --output-dir "$OUT/compile"
        --optimization sdpa flash_attention_2)
python3 benchmark_bert.py "${common[@]}" --sweep --batch-sizes 64 --seqlens 512 --pad-fractions 0 0.5
python3 benchmark_bert.py "${common[@]}" --batch-size 64 --max-seqlen 512 --no-use-mask
python3 benchmark_bert.py "${common[@]}" --batch-size 1 --max-seqlen 128
