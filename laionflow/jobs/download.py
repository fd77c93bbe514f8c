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
import re
import time
from collections import Counter

from laionflow import fs
from laionflow.layout import Layout, part_name
from laionflow.recipes import Recipe

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


class IncompletePartError(RuntimeError):
    """img2dataset finished but some input rows are in no complete shard."""


def _quiet_environment() -> None:
    # albumentations (imported by img2dataset) phones home on import unless told not to
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@contextlib.contextmanager
def _tls_verification(verify: bool, part: int):
    """With ``verify=False`` (recipe switch ``download.ssl_verify``), certificate checks are
    skipped in this process and in img2dataset's spawned workers, loudly; the environment is
    restored afterwards."""
    if verify:
        yield
        return
    import ssl

    log.warning("!" * 72)
    log.warning(
        "download.ssl_verify is OFF: TLS certificates are NOT checked for %s", part_name(part)
    )
    log.warning("!" * 72)
    saved = {k: os.environ.get(k) for k in ("LAIONFLOW_INSECURE_SSL", "PYTHONPATH")}
    hook = os.path.join(os.path.dirname(os.path.dirname(__file__)), "insecure_ssl")
    os.environ["LAIONFLOW_INSECURE_SSL"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (hook, saved["PYTHONPATH"]) if p)
    default_context = ssl._create_default_https_context
    ssl._create_default_https_context = ssl._create_unverified_context
    try:
        yield
    finally:
        ssl._create_default_https_context = default_context
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reason_of(error_message: str | None) -> str:
    """Short, groupable failure reason: ``http_404``, ``timeout``, ``decode_error``..."""
    msg = (error_message or "unknown").strip()
    m = re.search(r"HTTP Error (\d{3})", msg) or re.search(
        r"\b(\d{3}) (?:Client|Server) Error", msg
    )
    if m:
        return f"http_{m.group(1)}"
    low = msg.lower()
    for needle, reason in (
        ("incompleteread", "truncated"),
        ("cv_io_max_image_pixels", "too_large"),  # OpenCV's pixel limit: a bomb's header
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("connection refused", "connection_refused"),
        ("name or service", "dns"),
        ("cannot identify image", "decode_error"),
        ("image decoding", "decode_error"),
        ("x-robots-tag", "opt_out"),
        ("disallowed", "opt_out"),
        ("too small", "too_small"),
        ("too large", "too_large"),
        ("aspect ratio", "aspect_ratio"),
    ):
        if needle in low:
            return reason
    return re.sub(r"[^a-z0-9]+", "_", low)[:60].strip("_") or "unknown"


def shard_ids(folder: str) -> list[int]:
    """Shards whose ``_stats.json`` exists, i.e. complete shards."""
    out = []
    for path in fs.ls(folder):
        name = os.path.basename(path)
        if name.endswith("_stats.json"):
            out.append(int(name.split("_")[0]))
    return sorted(out)


def tally(folder: str) -> dict:
    """Count samples of the complete shards of one part folder from their parquet files."""
    import pyarrow.parquet as pq

    successes, failed = 0, Counter()
    shards, count = [], 0
    for sid in shard_ids(folder):
        stats = fs.read_json(f"{folder}/{sid:05d}_stats.json")
        with fs.open(f"{folder}/{sid:05d}.parquet") as fh:
            table = pq.read_table(fh, columns=["status", "error_message"])
        status = table.column("status").to_pylist()
        errors = table.column("error_message").to_pylist()
        ok = sum(1 for s in status if s == "success")
        for s, e in zip(status, errors, strict=True):
            if s != "success":
                failed[reason_of(e)] += 1
        if len(status) != stats["count"] or ok != stats["successes"]:
            raise IncompletePartError(f"{folder}/{sid:05d}: parquet and stats disagree")
        successes += ok
        count += len(status)
        shards.append({"shard": f"{sid:05d}", "count": len(status), "successes": ok})
    return {
        "count": count,
        "successes": successes,
        "failed": dict(sorted(failed.items())),
        "shards": shards,
    }


def run(recipe: Recipe, part: int, force: bool = False) -> dict:
    layout = Layout(recipe.dataset_root)
    marker = layout.download_summary(part)
    if fs.exists(marker) and not force:
        log.info("download %s: already done (%s)", part_name(part), marker)
        return fs.read_json(marker)
    src = layout.filtered_part(part)
    if not fs.exists(src):
        raise FileNotFoundError(f"no filtered metadata for {part_name(part)}: {src}")
    import pyarrow.parquet as pq

    with fs.open(src) as fh:
        footer = pq.ParquetFile(fh)
        expected, names = footer.metadata.num_rows, footer.schema_arrow.names
    extra = [c for c in EXTRA_COLUMNS if c in names]
    out = layout.images_part(part)
    if force:
        fs.rm(out, recursive=True)
    _quiet_environment()
    from img2dataset import download

    opts = recipe.download
    started = time.time()
    log.info("download %s: %d urls -> %s", part_name(part), expected, out)
    with _tls_verification(opts.ssl_verify, part):
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
            distributor="multiprocessing",
            incremental_mode="incremental",
            enable_wandb=False,
        )
    counts = tally(out)
    if counts["count"] != expected:
        raise IncompletePartError(
            f"{part_name(part)}: {expected} input rows but {counts['count']} in complete shards; "
            "rerun to finish the missing shards"
        )
    seconds = time.time() - started
    summary = {
        "stage": "download",
        "part": part,
        "input_rows": expected,
        "successes": counts["successes"],
        "failed": counts["failed"],
        "failed_total": sum(counts["failed"].values()),
        "shards": counts["shards"],
        "output_format": opts.output_format,
        "seconds": round(seconds, 2),
        "images_per_s": round(counts["successes"] / seconds, 1) if seconds else None,
    }
    fs.write_json(marker, summary)
    log.info(
        "download %s: %d/%d ok, failed %s, %.1f img/s",
        part_name(part),
        summary["successes"],
        expected,
        summary["failed"],
        summary["images_per_s"] or 0,
    )
    return summary
