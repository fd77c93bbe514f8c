"""Benchmark: the embed stage from webdataset tars, without the download pipeline.

    python bench/embed_tars.py [--samples 60000] [--model ViT-B-32] [--batch 1024]
                               [--workers 16] [--runs 3] [--device auto]

Writes ``--samples`` JPEG samples (256 px, img2dataset's default size, varied content) into
shards through laionflow's shard writer, then times, on the same tars and the same model:
the LAION-5B guide's loader (``webdataset(...).decode("pil")`` + preprocess in DataLoader
workers, float32, as ``bench/embed.py`` does) and ``laionflow.jobs.embed.run`` (which on a GPU
decodes JPEGs batched on the device). It needs no Spark, no Java, no Airflow and no network,
so it runs on a bare GPU machine with the carried wheels (open_clip_torch, webdataset,
pydantic). The weights are random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PER_SHARD = 2000


def _write_shard(args: tuple[str, int, int]) -> int:
    """One shard of synthetic photographs-like images (smooth gradients plus noise, so JPEG
    sizes are realistic, ~15-25 KB at 256 px)."""
    import numpy as np
    from PIL import Image

    from laionflow import fs
    from laionflow.layout import shard_path
    from laionflow.shardwriter import TarShardWriter

    folder, shard, count = args
    rng = np.random.default_rng(shard)
    writer = TarShardWriter(shard, folder)
    yy, xx = np.mgrid[0:256, 0:256]
    for i in range(count):
        base = rng.integers(0, 256, 3)
        grad = xx[..., None] * rng.uniform(-0.5, 0.5, 3) + yy[..., None] * rng.uniform(-0.5, 0.5, 3)
        img = np.clip(base + grad + rng.normal(0, 12, (256, 256, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=90)
        key = f"{shard:05d}{i:04d}"
        meta = {"key": key, "caption": f"a photo number {i} of shard {shard}", "status": "success"}
        writer.write(
            {
                "__key__": key,
                "jpg": buf.getvalue(),
                "txt": meta["caption"],
                "json": json.dumps(meta),
            }
        )
    writer.close()
    stats = {"count": count, "successes": count, "failed_to_download": 0}
    fs.write_json(shard_path(folder, shard, "_stats.json"), stats)
    return count


def build_tars(folder: str, samples: int, workers: int) -> list[str]:
    jobs = [
        (folder, s, min(PER_SHARD, samples - s * PER_SHARD))
        for s in range((samples + PER_SHARD - 1) // PER_SHARD)
    ]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_shard, jobs))
    return sorted(str(p) for p in Path(folder).glob("*.tar"))


def guide_loader(
    tars: list[str], model, preprocess, tokenizer, batch: int, workers: int, device: str
) -> float:
    """clip-retrieval's reader (``bench/embed.py``'s baseline) on ``device``: samples/s."""
    from embed import baseline  # bench/ is this script's folder, first on sys.path

    started = time.perf_counter()
    n = baseline(tars, model, preprocess, tokenizer, batch, workers, device)
    return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-guide", action="store_true")
    args = ap.parse_args()
    from laionflow import clip_model
    from laionflow.jobs import embed
    from laionflow.recipes import load_recipe

    work = Path(tempfile.mkdtemp(prefix="laionflow-bench-tars-"))
    ckpt = clip_model.save_random_checkpoint(args.model, work / "model.pt")
    recipe = load_recipe(
        "laion400m",
        {
            "root": str(work / "ds"),
            "filter.num_parts": 1,
            "clip.model": args.model,
            "clip.pretrained": ckpt,
            "clip.device": args.device,
            "clip.batch_size": args.batch,
            "clip.num_workers": args.workers,
        },
    )
    folder = f"{recipe.dataset_root}/images/part_00000"
    t = time.perf_counter()
    tars = build_tars(folder, args.samples, args.workers)
    print(f"wrote {args.samples} samples in {len(tars)} tars in {time.perf_counter() - t:.1f} s")
    device = clip_model.pick_device(args.device)
    model = preprocess = tokenizer = None
    if not args.skip_guide:
        model, preprocess, tokenizer = clip_model.load(recipe.clip, device)
    ours, whole, guide = [], [], []
    for _ in range(args.runs):  # interleaved, so drift in the machine hits both alike
        if model is not None:
            guide.append(
                guide_loader(tars, model, preprocess, tokenizer, args.batch, args.workers, device)
            )
        summary = embed.run(recipe, 0, force=True)
        ours.append(summary["inference_samples_per_s"])
        whole.append(summary["samples_per_s"])
        print(
            f"run {len(ours)}: ours {ours[-1]:.0f}" + (f", guide {guide[-1]:.0f}" if guide else "")
        )
    print(
        f"model={args.model} device={device} samples={summary['rows']} batch={args.batch} "
        f"workers={args.workers} runs={args.runs}"
    )
    _line("laionflow embed, decode->model (samples/s)", ours)
    _line("laionflow embed, whole stage incl. model load + writes", whole)
    if guide:
        _line("LAION-5B guide loader (float32, PIL decode)", guide)
        _line("ratio ours/guide, run by run", [o / g for o, g in zip(ours, guide, strict=True)])


def _line(label: str, values: list[float]) -> None:
    fmt = "{:.3f}" if max(values) < 10 else "{:.0f}"
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    print(
        f"{label}: min/median/max {low} / {mid} / {high}   all: "
        + " ".join(fmt.format(v) for v in values)
    )


if __name__ == "__main__":
    main()
