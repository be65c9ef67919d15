# Sourced by the GPU scripts: run from the repository root, write under $OUT (the device
# tool's output folder, or ./gpu-out), and install the flash-attn wheels carried in .whl/
# when present (see ../shared/wheels/README.md).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-deps .whl/*.whl
fi
