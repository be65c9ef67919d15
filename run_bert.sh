#!/usr/bin/env bash
# The whole benchmark: the sweep for all four task heads with every attention implementation
# that can run on this machine (--optimization all), then the charts.
#
#   ./run_bert.sh [extra benchmark_bert.py flags]      e.g. ./run_bert.sh --model-size large
#
# Environment: IMPLS (implementations, default "all"), RESULTS (default results),
# PLOTS (default plots), PYTHON (default python3), NPROC (GPUs of this host to spread the
# sweep over with torchrun, default 1). On a CPU-only machine the benchmark's CPU-sized
# defaults apply.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-results}
PLOTS=${PLOTS:-plots}
read -r -a impls <<<"${IMPLS:-all}"

launch=("$PYTHON")
if [ "${NPROC:-1}" -gt 1 ]; then
    launch=("$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC")
fi
"${launch[@]}" benchmark_bert.py --task all --sweep --optimization "${impls[@]}" --output-dir "$RESULTS" "$@"
"$PYTHON" plot.py --results-dir "$RESULTS" --plots-dir "$PLOTS"
