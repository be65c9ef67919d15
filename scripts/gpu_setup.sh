# Sourced by the GPU scripts: run from the repository root, write under $OUT (the device
# tool's output folder, or ./gpu-out), and install the flash-attn wheels carried in .whl/
# when present.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The GPU machine runs this tree without installing it: scripts/*.py import bertbench from here.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-deps .whl/*.whl
fi
# The published grid (scripts/gpu_publish.sh): bert-base shape, fp16, eager vs sdpa and
# flash_attention_2, the default timing (1 warm-up call, ~40 ms of timed calls per model and point).
publish_sweep=(--sweep --model-size base --dtype fp16 --optimization sdpa flash_attention_2)
