#!/usr/bin/env bash
# Energy per token at the published grid's 64 x 512 points: the four task heads, eager against
# sdpa and FlashAttention-2, every pad fraction, with the GPU's energy counter (--energy).
# Writes $OUT/energy.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
timeout 200 python3 benchmark_bert.py --task all "${publish_sweep[@]}" --batch-sizes 64 --seqlens 512 --energy \
    --output-dir "$OUT/energy" > "$OUT/energy.log" 2>&1
tail -8 "$OUT/energy.log"
tar czf "$OUT/energy.tgz" -C "$OUT" energy energy.log
