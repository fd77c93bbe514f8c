"""Benchmark: laionflow's download stage vs bare img2dataset, same corpus, same options.

    .venv/bin/python bench/download.py [--rows 3000] [--processes 2] [--threads 32]

Both runs read the same filtered parquet part from the same fixture server on 127.0.0.1 and
write webdataset shards; the ratio is ours/theirs in successful images per second (goal ≥ 0.95).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--per-host", type=int, default=0, help="per-host concurrency (0: none)")
    args = ap.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset import download as bare_download

    from laionflow.jobs import download, metadata
    from laionflow.jobs.filter import run as run_filter
    from laionflow.recipes import load_recipe
    from laionflow.testing.corpus import CorpusSpec, build_corpus
    from laionflow.testing.server import FixtureServer

    work = Path(tempfile.mkdtemp(prefix="laionflow-bench-dl-"))
    with FixtureServer(work / "fixture") as srv:
        os.environ["LAIONFLOW_FETCH_ALLOW"] = srv.allow_entry  # ours runs behind the SSRF guard
        corpus = build_corpus(work / "fixture", srv.base_url, CorpusSpec(rows=args.rows, parts=2))
        overrides = {
            "root": str(work / "ours"),
            "metadata.urls": corpus.metadata_urls,
            "filter.num_parts": 1,
            "download.processes": args.processes,
            "download.threads": args.threads,
            "download.number_sample_per_shard": 1000,
            # one friendly host: measure the wrapper, not politeness (bare img2dataset has no
            # per-host limit); bench/web.py measures politeness on a web of many hosts
            "download.per_domain_concurrency": args.per_host,
        }
        recipe = load_recipe("laion400m", overrides)
        metadata.run(recipe)
        run_filter(recipe, master="local[2]")
        part = f"{recipe.dataset_root}/metadata/filtered/part-00000.parquet"
        ours, theirs = [], []
        for _ in range(args.repeat):
            shutil.rmtree(f"{recipe.dataset_root}/images", ignore_errors=True)
            t = time.perf_counter()
            ok = download.run(recipe, 0, force=True)["successes"]
            ours.append(ok / (time.perf_counter() - t))
            out = work / "bare"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            bare_download(
                url_list=part,
                input_format="parquet",
                url_col="url",
                caption_col="caption",
                output_folder=str(out),
                output_format="webdataset",
                image_size=256,
                resize_mode="border",
                processes_count=args.processes,
                thread_count=args.threads,
                number_sample_per_shard=1000,
                enable_wandb=False,
                distributor="multiprocessing",
            )
            theirs.append(ok / (time.perf_counter() - t))
    best_ours, best_theirs = max(ours), max(theirs)
    print(f"rows={args.rows} successes={ok} processes={args.processes} threads={args.threads}")
    print(f"bare img2dataset : {best_theirs:8.1f} images/s (best of {args.repeat})")
    print(f"laionflow        : {best_ours:8.1f} images/s (best of {args.repeat})")
    print(f"ratio ours/bare  : {best_ours / best_theirs:8.3f}  (goal >= 0.95)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
