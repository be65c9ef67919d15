#!/usr/bin/env bash
# The fastest-path questions on one GPU: packed sdpa-varlen against packed FlashAttention-2/3 at
# 0/50/75 % padding (loop and CUDA graph, with the energy per token), bert-base and bert-large;
# then the largest batch that fits at seqlen 512 for eager, sdpa and FlashAttention-2.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
for size in base large; do
    timeout 150 python3 benchmark_bert.py --task qa --model-size "$size" --packed --cuda-graphs --energy \
        --optimization sdpa-varlen flash_attention_2 flash_attention_3 --sweep --batch-sizes 64 --seqlens 512 \
        --pad-fractions 0 0.5 0.75 --output-dir "$OUT/packed_$size" > "$OUT/packed_$size.log" 2>&1
    tail -12 "$OUT/packed_$size.log"
done
timeout 150 python3 benchmark_bert.py --task qa --capacity --sweep --seqlens 512 --capacity-limit 16384 \
    --optimization sdpa flash_attention_2 --output-dir "$OUT/capacity" > "$OUT/capacity.log" 2>&1
tail -6 "$OUT/capacity.log"
tar czf "$OUT/fastpath.tgz" -C "$OUT" packed_base packed_large capacity packed_base.log packed_large.log capacity.log
