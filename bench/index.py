"""Benchmark: our autofaiss index vs exact faiss (IndexFlatIP) on clustered 512-d vectors.

    .venv/bin/python bench/index.py [--n 1000000] [--queries 1000] [--budget 2G]

Prints recall@10 of the index (what laionflow's index stage builds, same options) against the
exact neighbours, and p50/p99 single-query latency of both (goals: recall@10 ≥ 0.95 at
≤ 10 ms p50 on ≥ 1M vectors). Vectors: ``--clusters`` Gaussian clusters, L2-normalised, like
CLIP embeddings; queries are held-out vectors from the same distribution.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np


def clustered(n: int, dim: int, clusters: int, rng) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, size=n)] + 0.35 * rng.normal(size=(n, dim)).astype(
        np.float32
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def latencies(index, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], k)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--budget", default="2G", help="max_index_memory_usage")
    args = ap.parse_args()
    import faiss
    from autofaiss import build_index

    from laionflow.query import apply_search_params

    rng = np.random.default_rng(0)
    x = clustered(args.n + args.queries, args.dim, args.clusters, rng)
    base, queries = x[: args.n], x[args.n :]
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(base)
    _, truth = exact.search(queries, 10)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        _, info = build_index(
            embeddings=base,
            index_path=f"{tmp}/image.index",
            index_infos_path=f"{tmp}/infos.json",
            max_index_memory_usage=args.budget,
            current_memory_available="8G",
            metric_type="ip",
            save_on_disk=True,
            verbose=logging.WARNING,
        )
        build_s = time.perf_counter() - t
        index = faiss.read_index(f"{tmp}/image.index", faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        apply_search_params(index, f"{tmp}/infos.json")  # as laionflow's IndexReader does
        _, got = index.search(queries, 10)
        recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, truth, strict=True)])
        ours = latencies(index, queries)
    flat = latencies(exact, queries[:200])
    print(f"vectors={args.n} dim={args.dim} clusters={args.clusters} budget={args.budget}")
    print(
        f"index            : {info.get('index_key')} {info.get('index_param')}, "
        f"built in {build_s:.1f} s"
    )
    print(f"recall@10        : {recall:.4f}  (goal >= 0.95)")
    print(f"latency p50/p99  : {ours[0]:.2f} / {ours[1]:.2f} ms  (goal p50 <= 10 ms)")
    print(f"exact faiss      : {flat[0]:.2f} / {flat[1]:.2f} ms p50/p99")
    print(f"speed-up vs exact: {flat[0] / ours[0]:.1f}x at p50")


if __name__ == "__main__":
    main()
