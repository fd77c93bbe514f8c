#!/usr/bin/env bash
# Re-captioning throughput on the GPU (picked up by bench/gpu.sh): real architectures with
# random weights, 20 new tokens per caption, float16 (see bench/recaption.py and README
# "Performance"). Needs torch (CUDA), transformers 5.25, pillow, numpy, scikit-image, pydantic.
for arch in blip-base blip-large git-base; do
  timeout 30 python3 bench/recaption.py --arch "$arch" --device cuda --samples 2048 --batch 256 \
    --tokens 20 || echo "recaption $arch failed: $?"
done
