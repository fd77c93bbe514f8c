#!/usr/bin/env bash
# The GPU benchmarks as one prepared script, for a bare GPU machine (Python 3.12 with CUDA torch,
# torchvision, timm, pillow, pyarrow, numpy, transformers, onnxruntime (CPU), scikit-image; no
# Java, no Airflow, no network). Wheels it lacks travel in .whl/ (README "Performance" says how
# they are downloaded). Each benchmark prints its own lines; one failing does not stop the
# others. The log also goes to $OUT/gpu.log when $OUT is set.
set -u
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp}/gpu.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
PDQ=""
if python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site \
  .whl/src/pdqhash-*.tar.gz >/dev/null 2>&1; then PDQ=",pdq"; fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cpus $(nproc); pdqhash built: ${PDQ:-no}"
  echo "== embed ViT-B-32 from tars on the GPU (goal >= 8000 samples/s on an H100/H200)"
  timeout 200 python3 bench/embed_tars.py --samples 40000 --model ViT-B-32 --batch 1024 \
    --workers 16 --runs 2 --device cuda || echo "embed bench failed: $?"
  echo "== safety models (MTCNN on the GPU; ONNX models on onnxruntime's providers)"
  timeout 70 python3 bench/safety.py --device cuda --samples ${SAFETY_SAMPLES:-256} --batch 64 \
    --models "${SAFETY_MODELS:-nsfw-image,faces,faces-nudenet,text-area}$PDQ" || echo "safety bench failed: $?"
  echo "== re-captioning architectures, random weights, 20 tokens, float16"
  timeout 100 bash bench/gpu_extra_recaption.sh
} 2>&1 | grep -v -E "Warning|warn\(" | tee "$LOG"
