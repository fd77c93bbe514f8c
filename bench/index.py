"""Benchmark: our autofaiss index vs exact faiss (IndexFlatIP) on clustered 512-d vectors.

    .venv/bin/python bench/index.py [--n 1000000] [--queries 1000] [--budget 4G]
    .venv/bin/python bench/index.py --n 1000000 --candidates autofaiss,hnsw64,ivf,ivf-hnsw,pq-rerank
    .venv/bin/python bench/index.py --n 1000000 --candidates ivf,ivf-hnsw --nlist 4096

By default: builds what laionflow's index stage builds (``laionflow.indexing.index_choice`` +
autofaiss ``build_index``, same options), re-applies its search parameters as the readers do,
and prints recall@10 against the exact neighbours and p50/p99 single-query latency (goals:
recall@10 ≥ 0.95 at ≤ 10 ms p50 on ≥ 1M vectors). ``--candidates`` builds each named index
instead and prints one line per (index, search parameter): build seconds, size on disk,
recall@10, p50/p99 (IVF candidates: ``--nlist`` lists, default the stage's √n). Vectors:
``--clusters`` Gaussian clusters, L2-normalised, like CLIP embeddings; queries are held-out
vectors from the same distribution.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

# name -> (what is built, search parameters swept after the build)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "autofaiss": ("autofaiss's own choice", []),
    "hnsw32": ("HNSW32", [f"efSearch={e}" for e in (256, 512, 1024, 2048)]),
    "hnsw64": ("HNSW64", [f"efSearch={e}" for e in (256, 512, 1024, 2048)]),
    "hnsw32-efc200": ("HNSW32 efConstruction=200", [f"efSearch={e}" for e in (256, 512, 1024)]),
    "ivf": ("IVF{nlist},Flat", [f"nprobe={p}" for p in (4, 8, 16, 32, 64, 128)]),
    "ivf-hnsw": (
        "IVF{nlist}_HNSW32,Flat",
        [f"nprobe={p},quantizer_efSearch={max(64, 2 * p)}" for p in (4, 8, 16, 32, 64, 128)],
    ),
    "pq-rerank": (
        "IVF{nlist},PQ64 + RFlat",
        [f"nprobe={p},k_factor={f}" for p in (16, 64) for f in (4, 16)],
    ),
}


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


def recall_at_10(index, queries: np.ndarray, truth: np.ndarray) -> float:
    _, got = index.search(queries, 10)
    return float(np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, truth, strict=True)]))


def autofaiss_build(base: np.ndarray, tmp: str, budget: str, **choice) -> tuple[object, dict]:
    """The index stage's call (laionflow/jobs/index.py), read back as laionflow's readers do."""
    import faiss
    from autofaiss import build_index

    from laionflow.query import apply_search_params

    _, info = build_index(
        embeddings=base,
        index_path=f"{tmp}/image.index",
        index_infos_path=f"{tmp}/infos.json",
        max_index_memory_usage=budget,
        current_memory_available="8G",
        metric_type="ip",
        save_on_disk=True,
        verbose=logging.WARNING,
        **choice,
    )
    index = faiss.read_index(f"{tmp}/image.index", faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    apply_search_params(index, f"{tmp}/infos.json")
    return index, info or {}


def faiss_build(base: np.ndarray, tmp: str, name: str, nlist: int):
    """Candidates autofaiss cannot build (its key parser rejects them): plain faiss."""
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    dim = base.shape[1]
    train = base[np.random.default_rng(1).choice(len(base), min(len(base), 64 * nlist), False)]
    if name == "hnsw32-efc200":
        index = faiss.IndexHNSWFlat(dim, 32, ip)
        index.hnsw.efConstruction = 200
    elif name == "ivf-hnsw":
        index = faiss.index_factory(dim, f"IVF{nlist}_HNSW32,Flat", ip)
    else:  # pq-rerank (OPQ's training took > 8 min at 100k vectors here: left out)
        index = faiss.IndexRefineFlat(faiss.index_factory(dim, f"IVF{nlist},PQ64", ip))
    index.train(train)
    index.add(base)
    faiss.write_index(index, f"{tmp}/image.index")
    return index


def candidate(
    name: str, base, queries, truth, budget: str, nlist: int, out: Callable[[str], None]
) -> None:
    import faiss

    from laionflow.indexing import ivf_nlist

    desc, sweep = CANDIDATES[name]
    nlist = nlist or ivf_nlist(len(base))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        t = time.perf_counter()
        if name in ("autofaiss", "hnsw32", "hnsw64", "ivf"):
            key = None if name == "autofaiss" else desc.format(nlist=nlist)
            index, info = autofaiss_build(
                base, tmp, budget, index_key=key, index_param=sweep[0] if key else None
            )
            key, tuned = info.get("index_key"), info.get("index_param")
        else:
            index = faiss_build(base, tmp, name, nlist)
            key, tuned = desc.format(nlist=nlist), None
        build_s = time.perf_counter() - t
        size_mb = os.path.getsize(f"{tmp}/image.index") / 2**20
        for param in [tuned] if tuned and name == "autofaiss" else sweep:
            faiss.ParameterSpace().set_index_parameters(index, param)
            rec = recall_at_10(index, queries, truth)
            p50, p99 = latencies(index, queries[:300])
            out(
                f"{name:13s} {key:28s} {param:38s} build {build_s:7.1f} s  size {size_mb:7.0f} MB"
                f"  recall@10 {rec:.4f}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            )
        del index
        gc.collect()


def default(args, base, queries, truth, exact) -> None:
    """What the index stage builds for this size and budget."""
    from laionflow.indexing import index_choice

    choice = index_choice(len(base), base.shape[1], args.budget)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        t = time.perf_counter()
        index, info = autofaiss_build(base, tmp, args.budget, **choice)
        build_s = time.perf_counter() - t
        size_mb = os.path.getsize(f"{tmp}/image.index") / 2**20
        recall = recall_at_10(index, queries, truth)
        ours = latencies(index, queries)
    flat = latencies(exact, queries[:200])
    print(f"vectors={args.n} dim={args.dim} clusters={args.clusters} budget={args.budget}")
    print(
        f"index            : {info.get('index_key')} {info.get('index_param')}, "
        f"built in {build_s:.1f} s, {size_mb:.0f} MB on disk"
    )
    print(f"recall@10        : {recall:.4f}  (goal >= 0.95)")
    print(f"latency p50/p99  : {ours[0]:.2f} / {ours[1]:.2f} ms  (goal p50 <= 10 ms)")
    print(f"exact faiss      : {flat[0]:.2f} / {flat[1]:.2f} ms p50/p99")
    print(f"speed-up vs exact: {flat[0] / ours[0]:.1f}x at p50")
    print(f"load average     : {open('/proc/loadavg').read().split()[0]} (2 cores)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--budget", default="4G", help="max_index_memory_usage (the recipe default)")
    ap.add_argument("--candidates", default="", help=f"comma list of {', '.join(CANDIDATES)}")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists of the candidates (4·√n)")
    args = ap.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    x = clustered(args.n + args.queries, args.dim, args.clusters, rng)
    base, queries = x[: args.n], x[args.n :]
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(base)
    _, truth = exact.search(queries, 10)
    if not args.candidates:
        default(args, base, queries, truth, exact)
        return
    del exact
    print(f"vectors={args.n} dim={args.dim} clusters={args.clusters} budget={args.budget}")
    for name in args.candidates.split(","):
        candidate(
            name, base, queries, truth, args.budget, args.nlist, lambda s: print(s, flush=True)
        )
        print(f"  load average {open('/proc/loadavg').read().split()[0]}", flush=True)


if __name__ == "__main__":
    main()
