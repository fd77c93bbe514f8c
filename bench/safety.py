"""Benchmark: samples/s of each safety model of the scores registry (no Airflow, no shards).

    .venv/bin/python bench/safety.py [--device cpu|cuda] [--samples 64] [--size 512] [--batch 16]

Inputs are scikit-image's photographs (astronaut, camera, chelsea, coffee, page, text,
rocket) cycled to ``--samples`` images, each resized so its short side is ``--size`` (what
img2dataset stores with ``image_size``): the models see what the scores stage feeds them
(the ``rgb-array`` preprocessor). Each model is built once (weights loaded, outside the
timing), warmed up on one batch, then timed over every batch. ``--device cuda`` runs MTCNN
on the GPU and NudeNet/RapidOCR with onnxruntime's CUDA provider when onnxruntime-gpu is
installed (otherwise they say ``providers: CPU``). Prints one line per model.
"""

from __future__ import annotations

import argparse
import time


def images(samples: int, size: int) -> list:
    import numpy as np
    from PIL import Image

    from laionflow.testing import photos

    out = []
    for name in list(photos.PHOTOS) * (samples // len(photos.PHOTOS) + 1):
        img = photos.photo(name)
        ratio = size / min(img.size)
        img = img.resize((round(img.width * ratio), round(img.height * ratio)), Image.BICUBIC)
        out.append(np.asarray(img, dtype=np.uint8))
    return out[:samples]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--models", default="nsfw-image,faces,faces-nudenet,text-area,pdq")
    args = ap.parse_args()
    import torch

    from laionflow.safety.detectors import check_installed, lookups, onnx_providers

    data = images(args.samples, args.size)
    batches = [data[i : i + args.batch] for i in range(0, len(data), args.batch)]
    print(
        f"device {args.device}; onnxruntime providers {onnx_providers(args.device)}; "
        f"{len(data)} images, short side {args.size}, batch {args.batch}; "
        f"torch threads {torch.get_num_threads()}"
    )
    for name in args.models.split(","):
        detector = "nudenet" if name == "faces-nudenet" else "mtcnn"
        model = name.replace("-nudenet", "")
        check_installed(f"faces:{detector}" if model == "faces" else model)
        cls = lookups(detector, 0.9, 0.5)["models"][model]
        started = time.perf_counter()
        net = cls(args.device)
        loaded = time.perf_counter() - started
        with torch.inference_mode():
            net(batches[0])  # warm-up (CUDA context, ONNX session arenas)
            started = time.perf_counter()
            for batch in batches:
                net(batch)
            seconds = time.perf_counter() - started
        print(f"{name:<14} {len(data) / seconds:8.1f} samples/s   (load {loaded:.1f} s)")


if __name__ == "__main__":
    main()
