#!/usr/bin/env bash
# The documented commands timed on this machine, side by side, for the README's table.
# Writes what it measured to stdout: docs/validation/cpu_timings.txt keeps a run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
t() {  # label, command...
    local label=$1 start end
    shift
    start=$(date +%s.%N)
    "$@" > "$out/log" 2>&1
    local code=$?
    end=$(date +%s.%N)
    printf '%-60s %6.1f s  (exit %d)\n' "$label" "$(echo "$end - $start" | bc)" "$code"
}
echo "$(nproc) cores; $(python -c 'import torch; print("torch", torch.__version__)'); load $(cut -d' ' -f1-3 /proc/loadavg)"
t "python benchmark_bert.py --help" python benchmark_bert.py --help
t "python benchmark_bert.py --batch-size 0 (argument error)" python benchmark_bert.py --batch-size 0
t "python benchmark_bert.py --task qa --sweep" python benchmark_bert.py --task qa --sweep --output-dir "$out/main"
t "RESULTS=... PLOTS=... ./run_bert.sh" env RESULTS="$out/all" PLOTS="$out/plots" PYTHON=python ./run_bert.sh
t "python plot.py (the run_bert.sh results)" python plot.py --results-dir "$out/all" --plots-dir "$out/plots2"
t "python -m pytest -q" python -m pytest -q -p no:cacheprovider
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$out"
