"""Benchmark: the embed stage's CPU side on a GPU host, without a GPU — how much main-process
CPU each sample costs when the DataLoader hands over encoded bytes (the tensor-decode path)
and nothing is decoded or encoded, with the captions tokenized in the main process (as the
LAION-5B guide's loader and the stage before 2026-12-05 did) or in the workers
(``laionflow.jobs.embed.Collate``, now).

    .venv/bin/python bench/embed_loader.py [--samples 12000] [--workers 2] [--repeat 3]

On a GPU the main process also launches the decode and the model, so its CPU per sample
bounds the stage's samples/s: the printed ceiling is that bound from the loader side alone.
Samples/s on this 2-core machine is bound by the cores, whichever side tokenizes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _main_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process: not the workers
    return usage.ru_utime + usage.ru_stime


def _bytes_only(batch: list[tuple]) -> tuple:
    keys, blobs, captions, metas = zip(*batch, strict=True)
    return list(keys), list(blobs), list(captions), list(metas)


def run(urls: list[str], tokenizer, in_workers: bool, workers: int) -> tuple[float, float]:
    """``(samples/s, main-process cpu µs per sample)``, the first batch left out."""
    import torch
    import webdataset as wds

    from laionflow import samples
    from laionflow.jobs.embed import Collate

    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).map(samples.Bytes())
    collate = Collate(tokenizer, stack_images=False) if in_workers else _bytes_only
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=1024, num_workers=workers, collate_fn=collate
    )
    n = first = 0
    for batch in loader:
        if not n:
            first, cpu, started = len(batch[0]), _main_cpu(), time.perf_counter()
        if not in_workers:
            tokenizer(batch[2])  # the captions
        n += len(batch[0])
    seconds, cpu = time.perf_counter() - started, _main_cpu() - cpu
    return (n - first) / seconds, cpu / (n - first) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=12000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import open_clip
    from embed_tars import build_tars  # bench/ is this script's folder, first on sys.path

    from laionflow import fs

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with tempfile.TemporaryDirectory(prefix="laionflow-bench-loader-") as folder:
        urls = fs.webdataset_urls(build_tars(folder, args.samples, args.workers))
        results: dict[str, list[tuple[float, float]]] = {"main process": [], "workers": []}
        for _ in range(args.repeat):  # alternating, so drift hits both alike
            results["main process"].append(run(urls, tokenizer, False, args.workers))
            results["workers"].append(run(urls, tokenizer, True, args.workers))
    print(f"samples={args.samples} workers={args.workers} runs={args.repeat} (min/median/max)")
    for where, runs in results.items():
        rate = [r for r, _ in runs]
        cpu = [c for _, c in runs]
        print(
            f"captions tokenized in {where:12s}: {min(rate):,.0f}/{statistics.median(rate):,.0f}/"
            f"{max(rate):,.0f} samples/s; main-process cpu {min(cpu):.1f}/"
            f"{statistics.median(cpu):.1f}/{max(cpu):.1f} us/sample (ceiling "
            f"{1e6 / statistics.median(cpu):,.0f} samples/s)"
        )


if __name__ == "__main__":
    main()
