#!/usr/bin/env bash
# Do 50 back-to-back calls run at lower clocks than the default budget's 5? The largest QA points
# (bert-base, 64 and 128 x 512), measured with the defaults and with --num-batches 50 --warmup 5,
# while nvidia-smi samples the SM clock, power and throttle reasons every 50 ms. Then
# scripts/clocks_summary.py OUT: the clocks and power of each run under load. Writes $OUT/clocks.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active \
    --format=csv,noheader,nounits -lms 50 > "$OUT/smi.csv" &
sampler=$!
grid=(--task qa --sweep --batch-sizes 64 128 --seqlens 512 --pad-fractions 0 0.75)
for run in default fixed50; do
    extra=()
    [ "$run" = fixed50 ] && extra=(--num-batches 50 --warmup 5)
    echo "$run start $(date -u +%Y/%m/%d\ %H:%M:%S.%N)" >> "$OUT/marks.txt"
    timeout 150 python3 benchmark_bert.py "${grid[@]}" "${extra[@]}" --output-dir "$OUT/$run" > "$OUT/$run.log" 2>&1
    echo "$run end $(date -u +%Y/%m/%d\ %H:%M:%S.%N)" >> "$OUT/marks.txt"
    tail -3 "$OUT/$run.log"
done
kill "$sampler"
tar czf "$OUT/clocks.tgz" -C "$OUT" smi.csv marks.txt default fixed50 default.log fixed50.log
