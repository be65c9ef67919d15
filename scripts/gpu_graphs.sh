#!/usr/bin/env bash
# What packing and CUDA graphs change, on a CUDA machine: QA at 64 x 512 with 0, 50 and 75 %
# padding for bert-base and bert-large (padded sdpa / flash_attention_2 / flash_attention_3, then
# flash_attention_2/3 on the same batches packed), and bert-base at small batches, where the
# host's launch overhead sets the latency. Every model is also replayed from a CUDA graph.
# Writes $OUT/packing/qa.csv and $OUT/small/qa.csv; runs the graph and compile GPU tests first.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"
python3 -m pytest -m gpu -v -s tests/test_gpu.py -k "graph or compiled" 2>&1 | tee "$OUT/gpu_graph_tests.log" || true
for size in base large; do
    grid=(--task qa --sweep --model-size "$size" --dtype fp16 --batch-sizes 64 --seqlens 512
          --pad-fractions 0 0.5 0.75 --num-batches 30 --warmup 5 --cuda-graphs --output-dir "$OUT/packing")
    python3 benchmark_bert.py "${grid[@]}" --optimization sdpa flash_attention_2 flash_attention_3
    python3 benchmark_bert.py "${grid[@]}" --packed --optimization flash_attention_2 flash_attention_3
done
small=(--task qa --sweep --model-size base --dtype fp16 --batch-sizes 1 4 16 --seqlens 128 --pad-fractions 0 0.5
       --num-batches 50 --warmup 5 --cuda-graphs --output-dir "$OUT/small")
python3 benchmark_bert.py "${small[@]}" --optimization sdpa flash_attention_2 flash_attention_3
python3 benchmark_bert.py "${small[@]}" --packed --optimization flash_attention_2 flash_attention_3
