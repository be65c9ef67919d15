#!/usr/bin/env bash
# The whole benchmark on one GPU, timed: ./run_bert.sh (four heads, the full grid, every
# implementation --optimization all names here), then the charts. Writes $OUT/run_bert.tgz
# (results, plots, the log and the wall time). LIMIT (seconds, default 570) stops it early:
# every row finished by then is kept, and the last progress line says how far it got.
set -uo pipefail
source "$(dirname "$0")/gpu_setup.sh"
start=$(date +%s)
RESULTS="$OUT/results" PLOTS="$OUT/plots" PYTHON=python3 timeout "${LIMIT:-570}" ./run_bert.sh > "$OUT/run_bert.log" 2>&1
status=$?
echo "./run_bert.sh: $(($(date +%s) - start)) s, exit $status" | tee "$OUT/wall.txt"
grep -v "^\s*$" "$OUT/run_bert.log" | tail -25
tar czf "$OUT/run_bert.tgz" -C "$OUT" results plots run_bert.log wall.txt 2>/dev/null
rm -rf "$OUT/results" "$OUT/plots"
