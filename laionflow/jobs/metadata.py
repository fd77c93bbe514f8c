"""Stage 1: fetch the raw metadata parts (parquet or csv) over HTTP.

Resumable: bytes go to a stable ``.name.partial`` file; a retry asks for the rest with an HTTP
``Range`` header and appends (or starts over when the server ignores ranges). Retries back off
exponentially. A part is published by an atomic rename only once its length matches the
server's, so ``metadata/raw/`` never holds a truncated file and a rerun skips finished parts.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from urllib.parse import unquote, urlparse

import requests

from laionflow import fs
from laionflow.layout import Layout
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class MetadataDownloadError(RuntimeError):
    pass


def resolve_urls(urls: list[str]) -> list[str]:
    """Expand braces (``2B-en-4.5_{1..64}.parquet``, as the SD 2.1 guide spells its parts)
    and ``hf://datasets/OWNER/NAME/GLOB`` into Hugging Face ``resolve`` URLs, in order.

    Every expanded Hub pattern must match a file, so a part missing from the repo fails the
    run by name instead of silently shrinking it. The endpoint follows ``HF_ENDPOINT``
    (huggingface_hub's own setting), so a mirror or a local test server works the same way.
    """
    from braceexpand import braceexpand

    out: list[str] = []
    listings: dict[str, list[str]] = {}  # one listing per repo, however many patterns
    for url in (u for given in urls for u in braceexpand(given)):
        if not url.startswith("hf://datasets/"):
            out.append(url)
            continue
        import fnmatch

        from huggingface_hub import HfApi, hf_hub_url

        owner, name, *rest = url[len("hf://datasets/") :].split("/")
        pattern = "/".join(rest) or "*"
        repo = f"{owner}/{name}"
        endpoint = os.environ.get("HF_ENDPOINT")  # mirrors, and loopback in tests
        if repo not in listings:
            listings[repo] = HfApi(endpoint=endpoint).list_repo_files(repo, repo_type="dataset")
        files = sorted(f for f in listings[repo] if fnmatch.fnmatch(f, pattern))
        if not files:
            raise MetadataDownloadError(f"{url}: no file in dataset {repo} matches {pattern!r}")
        out.extend(hf_hub_url(repo, f, repo_type="dataset", endpoint=endpoint) for f in files)
    return out


def target_name(url: str, index: int) -> str:
    """Stable local file name for a source URL: its basename, prefixed by its position so two
    sources with the same basename cannot collide."""
    base = posixpath.basename(unquote(urlparse(url).path)) or "metadata"
    return f"{index:05d}-{base}"


def _fetch_once(url: str, partial: str, timeout: float, headers: dict[str, str]) -> None:
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    req_headers = dict(headers)
    if have:
        req_headers["Range"] = f"bytes={have}-"
    with requests.get(url, stream=True, timeout=timeout, headers=req_headers) as resp:
        if resp.status_code == 416:  # we already have every byte
            return
        resp.raise_for_status()
        if have and resp.status_code != 206:
            log.warning("%s ignored our Range header; starting over", url)
            have = 0
        total = resp.headers.get("Content-Length")
        expected = have + int(total) if total is not None else None
        with open(partial, "ab" if have else "wb") as out:
            for chunk in resp.iter_content(CHUNK):
                out.write(chunk)
        size = os.path.getsize(partial)
        if expected is not None and size != expected:
            raise MetadataDownloadError(f"{url}: got {size} of {expected} bytes")


def fetch(
    url: str, dest: str, retries: int = 5, backoff_s: float = 1.0, timeout: float = 60
) -> int:
    """Download ``url`` to local path ``dest`` resumably; return its size in bytes."""
    if url.startswith("file://") or url.startswith("/"):
        src = url[len("file://") :] if url.startswith("file://") else url
        tmp = fs.tmp_name(dest)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return os.path.getsize(dest)
    head, _, tail = dest.rpartition("/")
    partial = f"{head}/.{tail}.partial"
    headers = {"User-Agent": "laionflow (+https://github.com/laionflow/laionflow)"}
    token = os.environ.get("HF_TOKEN")
    if token and "huggingface" in urlparse(url).netloc:
        headers["Authorization"] = f"Bearer {token}"
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, partial, timeout, headers)
            os.replace(partial, dest)
            return os.path.getsize(dest)
        except requests.HTTPError as err:
            code = err.response.status_code if err.response is not None else 0
            last = err
            if code and code < 500 and code != 429:
                break  # 404, 403...: retrying will not help
        except (requests.RequestException, MetadataDownloadError) as err:
            last = err
        if attempt < retries:
            delay = backoff_s * (2**attempt)
            log.warning(
                "metadata %s attempt %d failed (%s); retry in %.1fs", url, attempt + 1, last, delay
            )
            time.sleep(delay)
    raise MetadataDownloadError(f"could not download {url} after {attempt + 1} attempt(s): {last}")


def run(recipe: Recipe, force: bool = False) -> dict:
    """Fetch every metadata part into ``ROOT/metadata/raw``; skip parts already published."""
    layout = Layout(recipe.dataset_root)
    urls = resolve_urls(recipe.metadata.urls)
    raw = layout.raw_metadata
    fs.makedirs(raw)
    local = "://" not in raw
    files, skipped, total_bytes = [], 0, 0
    for i, url in enumerate(urls):
        name = target_name(url, i)
        dest = f"{raw}/{name}"
        if fs.exists(dest) and not force:
            skipped += 1
        else:
            stage = dest if local else os.path.join(tempfile.mkdtemp(prefix="laionflow-"), name)
            fetch(
                url,
                stage,
                recipe.metadata.retries,
                recipe.metadata.backoff_s,
                recipe.metadata.timeout_s,
            )
            if not local:
                fs_, path = fs.filesystem(dest)
                fs_.put_file(stage, path)
                os.remove(stage)
        fs_, path = fs.filesystem(dest)
        total_bytes += fs_.size(path)
        files.append({"url": url, "path": dest})
    summary = {
        "stage": "metadata",
        "files": len(files),
        "skipped": skipped,
        "bytes": total_bytes,
        "sources": files,
    }
    fs.write_json(layout.metadata_stats, summary)
    log.info("metadata: %d file(s), %d already present, %d bytes", len(files), skipped, total_bytes)
    return summary


def missing_sources(recipe: Recipe, timeout: float = 30) -> list[str]:
    """Sources not (yet) available: a HEAD that is not 2xx, or a missing local file. Used by
    the availability sensor; a 404 is "not yet", so the sensor keeps waiting until its
    timeout rather than failing a run whose metadata is still being published."""
    missing = []
    try:
        urls = resolve_urls(recipe.metadata.urls)
    except MetadataDownloadError as err:
        return [str(err)]
    for url in urls:
        if url.startswith(("file://", "/")):
            if not os.path.exists(url.removeprefix("file://")):
                missing.append(url)
            continue
        try:
            resp = requests.head(url, allow_redirects=True, timeout=timeout)
            if resp.status_code >= 400:
                missing.append(f"{url} ({resp.status_code})")
        except requests.RequestException as err:
            missing.append(f"{url} ({type(err).__name__})")
    return missing
