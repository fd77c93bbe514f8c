"""Benchmark: bare img2dataset vs laionflow's download stage on the same simulated web.

    .venv/bin/python bench/web.py [--seed 0] [--hosts 200] [--urls 5000] [--parts 4]
                                  [--processes 2] [--threads 32] [--repeat 1] [--keep]

Each client gets a fresh simulated web of the same seed (same hosts, URLs and truth; fresh
rate-limit state and request log) and downloads the same metadata parts, one img2dataset call
per part, with the same options (image size, processes, threads, timeout, retries 0, shard
size). laionflow runs behind its fetch guard with the web's resolver (``LAIONFLOW_DNS``), a
per-host budget of 5 requests/s and 2 in flight, a 4 s deadline per image. Bare img2dataset
gets one help only: ``bench/bare_hook/sitecustomize.py`` makes its workers resolve the web's
names with a plain uncached query per lookup to the web's DNS server (the system resolver
cannot). Printed for each: success rate against the servable truth (servable URLs downloaded /
servable URLs; images of opted-out URLs are not counted there, but shown as ``opted-out imgs``),
images/s (all successes / summed wall time of the parts), slowest part / median part, and what
the web's own request log shows: requests violating an opt-out (robots-disallowed path,
TDM-reserved, robots.txt 5xx, before a Retry-After) and hosts over laionflow's budget (peak
concurrency, or requests in any 2 s window above ceil(rate * 2) + 1), both clients judged by the
same budget. Goals for laionflow: success rate >= bare's and within 1 % of the truth, zero
violations, slowest part <= 1.5x the median, images/s >= 0.9x bare's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

RATE = 5.0  # laionflow's per-host budget, requests per second; also the judge of bare's
CONCURRENCY = 2  # laionflow's per-host requests in flight; also the judge of bare's
WINDOW_S = 2.0
HOOK = Path(__file__).resolve().parent / "bare_hook"
GOALS = "goals: success >= bare and gap <= 1 %, violations 0, slowest <= 1.5x median"


@contextlib.contextmanager
def _env(**values: str | None):
    """Set (or, with None, remove) environment variables, restoring them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _output_to(log: Path):
    """Send this process's and its workers' stdout/stderr (progress bars, logs) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _recipe(root: Path, args: argparse.Namespace):
    from laionflow.recipes import load_recipe

    return load_recipe(
        "laion400m",
        {
            "root": str(root),
            "download.processes": args.processes,
            "download.threads": args.threads,
            "download.image_size": 64,
            "download.timeout_s": 2,
            "download.deadline_s": 4,
            "download.number_sample_per_shard": 500,
            "download.politeness.rate_per_host": RATE,
            "download.per_domain_concurrency": CONCURRENCY,
        },
    )


def run_bare(web, work: Path, args: argparse.Namespace) -> tuple[list[float], list[str]]:
    """Bare img2dataset, one call per part; returns part seconds and output folders."""
    from img2dataset import download

    from laionflow.jobs.download import EXTRA_COLUMNS

    opts = _recipe(work / "unused", args).download  # the very options laionflow gets
    parts = web.write_metadata(work / "meta", parts=args.parts)
    hook_path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH")) if p)
    seconds, folders = [], []
    with _env(PYTHONPATH=hook_path, BENCH_BARE_DNS=web.dns, BENCH_BARE_DOMAIN=web.spec.domain):
        for i, src in enumerate(parts):
            out = str(work / f"part_{i:05d}")
            started = time.perf_counter()
            # a fresh folder, so "incremental" = "overwrite", which img2dataset breaks: it
            # deletes its own just-made ``_tmp`` folder inside the output and retries for ever
            download(
                url_list=src, input_format="parquet", url_col="url", caption_col="caption",
                save_additional_columns=[c for c in EXTRA_COLUMNS if c in _columns(src)],
                output_folder=out, output_format="webdataset", image_size=opts.image_size,
                resize_mode=opts.resize_mode, resize_only_if_bigger=opts.resize_only_if_bigger,
                skip_reencode=opts.skip_reencode, encode_format=opts.encode_format,
                number_sample_per_shard=opts.number_sample_per_shard,
                processes_count=opts.processes, thread_count=opts.threads,
                timeout=opts.timeout_s, retries=0, user_agent_token=opts.user_agent_token,
                max_image_area=opts.max_image_pixels, distributor="multiprocessing",
                incremental_mode="incremental", enable_wandb=False,
            )  # fmt: skip
            seconds.append(time.perf_counter() - started)
            folders.append(out)
    return seconds, folders


def run_laionflow(web, work: Path, args: argparse.Namespace) -> tuple[list[float], list[str]]:
    """laionflow's download stage, one ``download.run`` per part (same measure as bare's)."""
    import img2dataset  # noqa: F401 - imported before the clock starts, as for bare

    from laionflow.jobs import download
    from laionflow.layout import Layout

    recipe = _recipe(work / "ds", args)
    layout = Layout(recipe.dataset_root)
    web.write_metadata(layout.filtered_metadata, parts=args.parts)
    seconds = []
    with _env(
        LAIONFLOW_FETCH_ALLOW=web.allow_entry,
        LAIONFLOW_DNS=web.dns,
        LAIONFLOW_WEB_STATE=str(work / "state"),
    ):
        for part in range(args.parts):
            started = time.perf_counter()
            download.run(recipe, part, force=True)
            seconds.append(time.perf_counter() - started)
    return seconds, [layout.images_part(p) for p in range(args.parts)]


def _columns(parquet: str) -> list[str]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(parquet).schema_arrow.names


def outcomes(folders: list[str]) -> dict[str, str]:
    """URL -> ``success`` or its reason, from the shard parquets (one try per URL here)."""
    import pyarrow.parquet as pq

    from laionflow.shards import reason_of

    out: dict[str, str] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.parquet")):
            for row in pq.read_table(path, columns=["url", "status", "error_message"]).to_pylist():
                ok = row["status"] == "success"
                out[row["url"]] = "success" if ok else reason_of(row["error_message"])
    return out


def judge(web, seconds: list[float], folders: list[str]) -> dict:
    """What one client achieved and what the web's request log says it did."""
    from laionflow.testing.simweb.analysis import (
        max_rate_per_host,
        peak_concurrency_per_host,
        violations,
    )

    truth, got = web.truth, outcomes(folders)
    servable = [u for u, t in truth.items() if t == "success"]
    kept = sum(1 for u in servable if got.get(u) == "success")
    records = web.requests()
    budget = math.ceil(RATE * WINDOW_S) + 1
    rates = max_rate_per_host(records, window_s=WINDOW_S)
    return {
        "servable": len(servable),
        "kept": kept,
        "rate": kept / len(servable) if servable else 1.0,
        "extra": sum(1 for u, r in got.items() if r == "success" and truth.get(u) != "success"),
        "images_s": sum(1 for r in got.values() if r == "success") / sum(seconds),
        "seconds": seconds,
        "slowest": max(seconds) / statistics.median(seconds),
        "violations": violations(records),
        "over_concurrency": sum(
            1 for p in peak_concurrency_per_host(records).values() if p > CONCURRENCY
        ),
        "over_rate": sum(1 for n in rates.values() if n > budget),
        "misses": Counter(
            f"{truth[u]}->{got.get(u, 'absent')}" for u in servable if got.get(u) != "success"
        ),
        "requests": len(records),
    }


def on_fresh_web(client, name: str, work: Path, args: argparse.Namespace) -> dict:
    from laionflow.testing.simweb import SimWeb, WebSpec

    spec = WebSpec(seed=args.seed, hosts=args.hosts, urls=args.urls)
    folder = work / name
    with SimWeb(spec, folder / "web") as web, _output_to(work / f"{name}.log"):
        seconds, folders = client(web, folder, args)
        return judge(web, seconds, folders)


def show(name: str, r: dict) -> None:
    v = r["violations"]
    print(
        f"{name:<16} success {r['kept']:>5}/{r['servable']:<5} = {100 * r['rate']:6.2f} %"
        f" (gap {100 * (1 - r['rate']):5.2f} %)  {r['images_s']:7.1f} images/s"
        f"  slowest/median {max(r['seconds']):6.1f}/{statistics.median(r['seconds']):5.1f} s"
        f" = {r['slowest']:4.2f}x"
    )
    print(
        f"{'':<16} violations: disallowed {v['disallowed']}, tdm_reserved {v['tdm_reserved']},"
        f" robots_unavailable {v['robots_unavailable']}, early {v['early']};"
        f" hosts over budget: concurrency {r['over_concurrency']}, rate {r['over_rate']}"
        f"  ({r['requests']} requests, {r['extra']} opted-out imgs)"
    )
    misses = ", ".join(f"{k} {n}" for k, n in r["misses"].most_common(6)) or "none"
    print(f"{'':<16} servable misses (truth->got): {misses}")


def compare(args: argparse.Namespace, work: Path) -> tuple[float, float]:
    bare = on_fresh_web(run_bare, "bare", work, args)
    ours = on_fresh_web(run_laionflow, "laionflow", work, args)
    show("bare img2dataset", bare)
    show("laionflow", ours)
    speed = ours["images_s"] / bare["images_s"]
    success = ours["rate"] / bare["rate"] if bare["rate"] else math.inf
    v = ours["violations"]["total"] + ours["over_concurrency"] + ours["over_rate"]
    print(f"ratio laionflow/bare: images/s {speed:.3f} (goal >= 0.9), success {success:.3f}"
          f" (goal >= 1)  |  laionflow: gap {100 * (1 - ours['rate']):.2f} %, violations {v},"
          f" slowest {ours['slowest']:.2f}x  ({GOALS})", flush=True)  # fmt: skip
    return speed, success


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--urls", type=int, default=5000)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (shards, logs)")
    args = ap.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check over the network
    os.environ.setdefault("WANDB_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="laionflow-bench-web-"))
    print(f"seed={args.seed} hosts={args.hosts} urls={args.urls} parts={args.parts}"
          f" processes={args.processes} threads={args.threads}"
          f" budget={RATE:g}/s x{CONCURRENCY} per host", flush=True)  # fmt: skip
    ratios = []
    try:
        for i in range(args.repeat):
            if args.repeat > 1:
                print(f"-- run {i + 1}/{args.repeat}", flush=True)
            ratios.append(compare(args, work / f"run{i}"))
    except BaseException:
        args.keep = True  # the clients' logs are there
        raise
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.repeat > 1:
        for label, values in zip(("images/s", "success"), zip(*ratios, strict=True), strict=True):
            print(f"ratio {label:<9} min {min(values):.3f}  median {statistics.median(values):.3f}"
                  f"  max {max(values):.3f}  over {args.repeat} runs")  # fmt: skip


if __name__ == "__main__":
    main()
