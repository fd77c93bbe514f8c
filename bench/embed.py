"""Benchmark: laionflow's inference stage vs the LAION-5B guide's loader, same model, same tars.

    .venv/bin/python bench/embed.py [--rows 2000] [--model laionflow-tiny|ViT-B-32] [--workers 2]
                                    [--repeat 5]

The baseline follows clip-retrieval's reader: ``webdataset(...).decode("pil")``, the model's
preprocess in DataLoader workers, image and text encoded in float32 batches. Ours is
``laionflow.jobs.embed.run`` on the same downloaded part. Both include decoding and writing
nothing else; the model is loaded once, outside the timings. Prints samples/s and the ratio
(goal on CPU ≥ 1.5× in every run; on a GPU, ViT-B/32 ≥ 8,000 samples/s end to end from tars);
with ``--repeat N``, N timed pairs on the same tars, in alternating order, as min/median/max.
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path


def baseline(
    tars: list[str], model, preprocess, tokenizer, batch: int, workers: int, device: str = "cpu"
) -> int:
    """clip-retrieval's reader, float32, on ``device``: the number of samples encoded."""
    import torch
    import webdataset as wds

    ds = (
        wds.WebDataset([f"file:{t}" for t in tars], shardshuffle=False, empty_check=False)
        .decode("pil")
        .to_tuple("jpg", "txt")
        .map_tuple(preprocess, lambda t: t)
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers)
    n = 0
    with torch.no_grad():
        for images, texts in loader:
            model.encode_image(images.to(device))
            model.encode_text(tokenizer(list(texts)).to(device))
            n += len(images)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--model", default="laionflow-tiny")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=1, help="timed pairs on the same tars")
    args = ap.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from laionflow import clip_model
    from laionflow.jobs import download, embed, metadata
    from laionflow.jobs.filter import run as run_filter
    from laionflow.recipes import load_recipe
    from laionflow.testing.corpus import CorpusSpec, build_corpus
    from laionflow.testing.server import FixtureServer

    work = Path(tempfile.mkdtemp(prefix="laionflow-bench-embed-"))
    ckpt = clip_model.save_random_checkpoint(args.model, work / "model.pt")
    with FixtureServer(work / "fixture") as srv:
        os.environ["LAIONFLOW_FETCH_ALLOW"] = srv.allow_entry
        corpus = build_corpus(work / "fixture", srv.base_url, CorpusSpec(rows=args.rows, parts=1))
        recipe = load_recipe(
            "laion400m",
            {
                "root": str(work / "ds"),
                "metadata.urls": corpus.metadata_urls,
                "filter.num_parts": 1,
                "download.number_sample_per_shard": 500,
                "clip.model": args.model,
                "clip.pretrained": ckpt,
                "clip.device": "auto",
                "clip.batch_size": args.batch,
                "clip.num_workers": args.workers,
            },
        )
        metadata.run(recipe)
        run_filter(recipe, master="local[2]")
        download.run(recipe, 0)
    tars = sorted(glob.glob(f"{recipe.dataset_root}/images/part_00000/*.tar"))
    device = clip_model.pick_device("auto")
    model, preprocess, tokenizer = clip_model.load(recipe.clip, device)
    model = model.to("cpu") if device == "cpu" else model
    bases, ours, wholes = [], [], []
    for i in range(args.repeat):  # alternate which goes first: neither always has warm caches
        for which in ("base", "ours") if i % 2 == 0 else ("ours", "base"):
            t = time.perf_counter()
            if which == "base":
                n = baseline(tars, model, preprocess, tokenizer, args.batch, args.workers)
                bases.append(n / (time.perf_counter() - t))
            else:
                summary = embed.run(recipe, 0, force=True)
                wholes.append(summary["rows"] / (time.perf_counter() - t))
                ours.append(summary["inference_samples_per_s"])  # the baseline's span
    ratios = [o / b for o, b in zip(ours, bases, strict=True)]
    print(
        f"model={args.model} device={device} samples={summary['rows']} "
        f"batch={args.batch} workers={args.workers} runs={args.repeat}"
    )
    print(f"LAION-5B guide loader : {_spread(bases)} samples/s")
    print(f"laionflow embed       : {_spread(ours)} samples/s")
    print(f"  with model load + writes: {_spread(wholes)}")
    print(f"ratio ours/baseline   : {_spread(ratios, '.3f')}  (goal on CPU >= 1.5 every run)")
    print("ratios per run        : " + " ".join(f"{r:.3f}" for r in ratios))


def _spread(values: list[float], fmt: str = ".1f") -> str:
    """min / median / max (one value: itself)."""
    import statistics

    if len(values) == 1:
        return format(values[0], fmt)
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{lo:{fmt}} / {mid:{fmt}} / {hi:{fmt}} (min / median / max)"


if __name__ == "__main__":
    main()
