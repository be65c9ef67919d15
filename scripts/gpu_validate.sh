#!/usr/bin/env bash
# Validate the GPU paths on a CUDA machine: the GPU tests, the core benchmark command, and
# the numbers needed to check them against the device's measured matmul rate.
# Logs and CSVs go to $OUT (default ./gpu-out).
# Flash-attn wheels in .whl/ are installed first when present.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
failed=0
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-deps .whl/*.whl || failed=1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

python3 -m pytest -m gpu -v -s tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" || failed=1

# The core issue's acceptance command, then every other implementation at the same point,
# then bert-base at 64 x 512 without padding for the FLOP-rate check.
python3 benchmark_bert.py --task qa --optimization flash_attention_2 sdpa --batch-size 64 --max-seqlen 512 \
    --avg-seqlen 256 --model-size base --output-dir "$OUT" || failed=1
python3 benchmark_bert.py --task qa --optimization flash_attention_3 sdpa-efficient sdpa-cudnn sdpa-flash \
    sdpa-math flex_attention eager --batch-size 64 --max-seqlen 512 --avg-seqlen 256 --model-size base \
    --output-dir "$OUT" || failed=1
python3 benchmark_bert.py --task qa --optimization sdpa flash_attention_2 flash_attention_3 --batch-size 64 \
    --max-seqlen 512 --seqlen-stdev 0 --model-size base --output-dir "$OUT" || failed=1
exit $failed
