#!/usr/bin/env bash
# The whole benchmark: the sweep for all four task heads with every attention implementation
# that can run on this machine (--optimization all), then the charts.
#
#   ./run_bert.sh [extra benchmark_bert.py flags]      e.g. ./run_bert.sh --model-size large
#
# Environment: IMPLS (implementations, default "all"), RESULTS (default results),
# PLOTS (default plots), PYTHON (default python3). On a CPU-only machine the benchmark's
# CPU-sized defaults apply.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-results}
PLOTS=${PLOTS:-plots}
read -r -a impls <<<"${IMPLS:-all}"

"$PYTHON" benchmark_bert.py --task all --sweep --optimization "${impls[@]}" --output-dir "$RESULTS" "$@"
"$PYTHON" plot.py --results-dir "$RESULTS" --plots-dir "$PLOTS"
