"""Stage 3: download one part's images with img2dataset, in img2dataset's own shard layout.

``images/part_NNNNN/{00000.tar, 00000.parquet, 00000_stats.json}`` — the stats file is written
last by img2dataset and marks a shard complete; ``incremental`` mode makes a rerun redo only
shards without one. After img2dataset returns we reconcile: every input row of the part must
appear in exactly one shard parquet (success or failure with its error message), otherwise the
part is not done and the task fails (and is retried). ``part_NNNNN_summary.json`` is then
published atomically and is this stage's done marker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from laionflow import fetchguard, fs, progress, shards
from laionflow.layout import Layout, part_name
from laionflow.recipes import Recipe
from laionflow.safety import gate
from laionflow.shards import IncompletePartError, tally
from laionflow.web import optout, resolver

log = logging.getLogger(__name__)
#: carried from the metadata into each sample's json/parquet (img2dataset forbids width/height;
#: it records the real original_width/original_height itself)
EXTRA_COLUMNS = (
    "sample_id",
    "similarity",
    "punsafe",
    "pwatermark",
    "nsfw",
    "hash",
    "license",
    "aesthetic",
    "language",
)


def _quiet_environment() -> None:
    # albumentations (imported by img2dataset) phones home on import unless told not to
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def fetch_policy(recipe: Recipe, state_dir: str = "") -> fetchguard.FetchPolicy:
    """The fetch guard of a recipe's downloads: opt-out signals, per-host budget, deadline,
    resolver (``$LAIONFLOW_DNS``) and allowlist (``$LAIONFLOW_FETCH_ALLOW``) — the last two
    worker settings, not recipe fields, on purpose."""
    opts, polite = recipe.download, recipe.download.politeness
    return fetchguard.FetchPolicy(
        allow=fetchguard.FetchPolicy.allow_from_env(),
        user_agent=fetchguard.user_agent(opts.user_agent_token),
        per_domain=opts.per_domain_concurrency,
        insecure_ssl=not opts.ssl_verify,
        token=opts.user_agent_token,
        signals=tuple(s for s in optout.SIGNALS if getattr(opts.optout, s)),
        directives=tuple(opts.disallowed_header_directives),
        deadline_s=opts.deadline_s,
        rate=polite.rate_per_host,
        max_wait_s=polite.max_wait_s,
        breaker_failures=polite.breaker_failures,
        breaker_cooldown_s=polite.breaker_cooldown_s,
        state_dir=state_dir or web_state_dir(recipe),
        dns=os.environ.get(resolver.DNS_ENV, ""),
    )


def web_state_dir(recipe: Recipe) -> str:
    """Node-local folder of host budgets and robots/TDMRep rules, shared by every part of the
    dataset a worker downloads (``$LAIONFLOW_WEB_STATE`` overrides the parent folder)."""
    import hashlib
    import tempfile

    parent = os.environ.get("LAIONFLOW_WEB_STATE") or os.path.join(
        tempfile.gettempdir(), "laionflow-web"
    )
    return os.path.join(parent, hashlib.sha1(recipe.dataset_root.encode()).hexdigest()[:12])


def signals_off(recipe: Recipe) -> list[str]:
    return [s for s in optout.SIGNALS if not getattr(recipe.download.optout, s)]


def executor_env(recipe: Recipe, state_dir: str) -> dict[str, str]:
    """What remote download workers (Spark executors) must have in their environment: the
    guard, installed at interpreter start by the sitecustomize hook, and OpenCV's pixel limit.
    ``state_dir`` holds the host budgets and rules of each node (created where missing)."""
    return {
        fetchguard.POLICY_ENV: fetch_policy(recipe, state_dir).to_env(),
        "PYTHONPATH": fetchguard.HOOK_DIR,
        "OPENCV_IO_MAX_IMAGE_PIXELS": str(recipe.download.max_image_pixels),
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }


@contextlib.contextmanager
def _worker_environment(recipe: Recipe, part: int):
    """What img2dataset's spawned workers must inherit: the fetch guard (SSRF refusal,
    honest User-Agent, per-domain limit, TLS switch) and OpenCV's pixel limit, which it reads
    once at import and checks from the header before decoding. Restored afterwards."""
    opts = recipe.download
    for signal in signals_off(recipe):
        log.warning("opt-out signal %r is OFF for %s: it is not honoured", signal, part_name(part))
    if not opts.ssl_verify:
        log.warning("!" * 72)
        log.warning(
            "download.ssl_verify is OFF: TLS certificates are NOT checked for %s", part_name(part)
        )
        log.warning("!" * 72)
    policy = fetch_policy(recipe)
    if policy.allow:
        log.info("fetch guard: private addresses allowlisted: %s", ", ".join(policy.allow))
    saved = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS")
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(opts.max_image_pixels)
    try:
        with fetchguard.applied(policy):
            yield
    finally:
        if saved is None:
            os.environ.pop("OPENCV_IO_MAX_IMAGE_PIXELS", None)
        else:
            os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = saved


def fetch(
    recipe: Recipe,
    part: int,
    src: str,
    out: str,
    extra: list[str],
    mode: str = "incremental",
    distributor: str = "multiprocessing",
) -> None:
    """One img2dataset call with the recipe's options; ``mode="extend"`` appends new shards
    after the existing ones (patch shards of a repair). ``distributor="pyspark"`` shares the
    shards over the active Spark session's executors (see ``spark_jobs/download_parts.py``)."""
    _quiet_environment()
    from img2dataset import download

    opts = recipe.download
    with _worker_environment(recipe, part):
        download(
            url_list=src,
            input_format="parquet",
            url_col="url",
            caption_col="caption",
            save_additional_columns=extra,
            output_folder=out,
            output_format=opts.output_format,
            image_size=opts.image_size,
            resize_mode=opts.resize_mode,
            resize_only_if_bigger=opts.resize_only_if_bigger,
            skip_reencode=opts.skip_reencode,
            encode_format=opts.encode_format,
            number_sample_per_shard=opts.number_sample_per_shard,
            processes_count=opts.processes,
            thread_count=opts.threads,
            timeout=opts.timeout_s,
            retries=opts.retries,
            user_agent_token=opts.user_agent_token,
            disallowed_header_directives=opts.disallowed_header_directives,
            max_image_area=opts.max_image_pixels,
            distributor=distributor,
            incremental_mode=mode,
            enable_wandb=False,
        )


def publish_summary(recipe: Recipe, part: int, expected: int, seconds: float, **extra) -> dict:
    """Reconcile the part (every input row in exactly one state) and publish its summary."""
    layout = Layout(recipe.dataset_root)
    rep = recipe.repair
    counts = tally(layout.images_part(part), rep.retryable, rep.max_attempts)
    if counts["count"] != expected:
        raise IncompletePartError(
            f"{part_name(part)}: {expected} input rows but {counts['count']} in complete shards; "
            "rerun to finish the missing shards"
        )
    fsys, path = fs.filesystem(layout.images_part(part))
    table = shards.states(layout.images_part(part))
    # quarantined rows are not failures: the ledger counts them on their own line
    quarantined = sum(1 for s in table.values() if s.row.get("status") == gate.STATUS)
    if quarantined:
        reason = shards.reason_of(gate.MESSAGE)
        counts["failed"][reason] -= quarantined
        counts["failed"] = {k: v for k, v in counts["failed"].items() if v}
    failures = [
        (s.url, s.reason or "other", s.row.get("error_message") or "", s.last_attempt)
        for s in table.values()
        if not s.success and s.row.get("status") != gate.STATUS
    ]
    opted_out = optout.table(failures)
    fs.write_json(layout.optout_table(part), opted_out)
    summary = {
        "stage": "download",
        "part": part,
        "bytes": int(fsys.du(path)) if fsys.exists(path) else 0,
        "input_rows": expected,
        "successes": counts["successes"],
        "failed": counts["failed"],
        "failed_total": sum(counts["failed"].values()),
        "retry_pending": counts["retry_pending"],
        "given_up": counts["given_up"],
        "quarantined": quarantined,
        "shards": counts["shards"],
        "output_format": recipe.download.output_format,
        "optout_hosts": len({e["host"] for e in opted_out}),
        "optout_signals_off": signals_off(recipe),
        "seconds": round(seconds, 2),
        "images_per_s": round(counts["successes"] / seconds, 1) if seconds else None,
        **extra,
    }
    fs.write_json(layout.download_summary(part), summary)
    return summary


def run(
    recipe: Recipe, part: int, force: bool = False, distributor: str = "multiprocessing"
) -> dict:
    layout = Layout(recipe.dataset_root)
    marker = layout.download_summary(part)
    if fs.exists(marker) and not force:
        log.info("download %s: already done (%s)", part_name(part), marker)
        return fs.read_json(marker)
    src = layout.filtered_part(part)
    if not fs.exists(src):
        raise FileNotFoundError(f"no filtered metadata for {part_name(part)}: {src}")
    import pyarrow.parquet as pq

    lists = hash_lists(recipe)
    blocked = 0
    if lists is not None and recipe.safety.hashlists.pre_download:
        src, blocked = gate.pre_download(layout, part, src, lists)
    with fs.open(src) as fh:
        footer = pq.ParquetFile(fh)
        expected, names = footer.metadata.num_rows, footer.schema_arrow.names
    extra = [c for c in EXTRA_COLUMNS if c in names]
    out = layout.images_part(part)
    if force:
        fs.rm(out, recursive=True)
    removed = shards.remove_orphans(out) if fs.exists(out) else []
    if removed:
        log.warning("download %s: removed unfinished shard files %s", part_name(part), removed)
    started = time.time()
    log.info("download %s: %d urls -> %s", part_name(part), expected, out)
    before = shards.counted(out)
    if before:
        log.info("download %s: %d urls already in complete shards", part_name(part), before)
    with progress.polling(  # rows of this attempt only, so rate and ETA hold on a resume
        f"download {part_name(part)}",
        expected - before,
        lambda: shards.counted(out) - before,
        log,
        "urls",
    ):
        fetch(recipe, part, src, out, extra, distributor=distributor)
    if lists is not None and recipe.safety.hashlists.post_download:
        gate.quarantine(layout, part, lists)  # before the summary: the part's done marker
    summary = publish_summary(
        recipe,
        part,
        expected,
        time.time() - started,
        distributor=distributor,
        blocked_hashlist=blocked,
    )
    log.info(
        "download %s: %d/%d ok, failed %s, %.1f img/s",
        part_name(part),
        summary["successes"],
        expected,
        summary["failed"],
        summary["images_per_s"] or 0,
    )
    return summary


def hash_lists(recipe: Recipe):
    """The recipe's known-bad lists, read before any work (None when none is configured).
    The post-download quarantine rewrites tars: webdataset output only. The repair stage
    quarantines its patch shards with the same lists."""
    cfg = recipe.safety.hashlists
    if not (cfg.pre_download or cfg.post_download):
        return None
    if cfg.post_download and recipe.download.output_format != "webdataset":
        raise ValueError("safety.hashlists md5/sha256/pdq need download.output_format webdataset")
    from laionflow.safety.hashlists import load

    lists = load(cfg)
    log.info("hash gate: list sizes %s", lists.sizes())
    return lists
