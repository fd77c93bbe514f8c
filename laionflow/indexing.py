"""Which faiss index the index stage builds, in one place (``jobs/index.py`` and
``bench/index.py`` both call :func:`index_choice`).

Below ``BIG_N`` vectors autofaiss's own choice stands (an HNSW when it fits the memory budget,
tuned to its 10 ms target): it meets recall@10 ≥ 0.95 there (0.980 at 5.4 ms p50 at 300k).
From ``BIG_N`` up its HNSW32 is at the edge of the latency goal (0.974 at 9.8 ms p50 at 500k)
and then falls short (recall@10 0.926-0.939 at 8-9 ms p50 on 1M clustered vectors,
``bench/index.py``), while an uncompressed IVF with a fixed ``nprobe`` reaches 0.9999 at a
fraction of the latency; with √n lists (1024 at 1M) it is also cheaper to build than the HNSW
(4·√n lists, faiss's guideline, took 4.5× longer to build for the same recall there). Figures
in README, "Performance". The search parameter is passed to autofaiss explicitly so that it
lands in the infos json the readers re-apply (``laionflow.query.apply_search_params``) and does
not depend on how loaded the building machine was while autofaiss timed its queries. The
``nprobe`` was tuned on synthetic clustered vectors (recall saturates at 4 of 1024 lists
there); a recipe can raise it for real data (``index.index_key``/``index.index_param``).
"""

from __future__ import annotations

from math import log2, sqrt

#: from this many vectors on, the IVF below replaces autofaiss's choice
BIG_N = 500_000
#: inverted lists probed per query, as a fraction of the lists (at least ``MIN_NPROBE``)
NPROBE_FRACTION = 1 / 128
MIN_NPROBE = 8


def ivf_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest √n (1024 for 1M; below
    faiss's 4·√n–16·√n guideline, for the build time: see the module docstring)."""
    return 2 ** round(log2(sqrt(max(n, 1))))


def ivf_nprobe(nlist: int) -> int:
    """Lists probed per query for an IVF of ``nlist`` lists."""
    return max(MIN_NPROBE, round(nlist * NPROBE_FRACTION))


def index_choice(
    n: int,
    dim: int,
    budget: str,
    *,
    index_key: str | None = None,
    index_param: str | None = None,
    big_n: int | None = None,
) -> dict[str, str | None]:
    """``index_key``/``index_param`` for autofaiss ``build_index``; both None means
    "let autofaiss choose and tune" (small corpora, or the IVF does not fit ``budget``).

    A user's ``index_key`` (recipe ``index.index_key``) wins; with it, a user's
    ``index_param`` or None (autofaiss tunes it for its latency target). ``big_n`` defaults
    to the module's ``BIG_N``, read at call time (tests lower it)."""
    if index_key:
        return {"index_key": index_key, "index_param": index_param}
    if n < (BIG_N if big_n is None else big_n):
        return {"index_key": None, "index_param": None}
    from autofaiss.external.metadata import IndexMetadata
    from autofaiss.utils.cast import cast_memory_to_bytes

    nlist = ivf_nlist(n)
    key = f"IVF{nlist},Flat"
    if IndexMetadata(key, n, dim).estimated_index_size_in_bytes() > cast_memory_to_bytes(budget):
        return {"index_key": None, "index_param": None}
    return {"index_key": key, "index_param": f"nprobe={ivf_nprobe(nlist)}"}
