"""laion6m's prepackaged path: fetch tar packs + an index file from a Hugging Face dataset
repo, extract them safely in parallel, verify, and write the caption/image index.

Layout under the dataset root::

    packs/download/...           the repo files, as huggingface_hub fetched them (resumable)
    packs/extracted/...          the packs' contents
    packs/extracted/.done-NAME.json   per-pack report, written last (a rerun skips the pack)
    packs/index.parquet          image_path, caption — one row per verified index entry
    packs/_summary.json          counts and every rejected member / unresolved entry

Extraction uses Python's tarfile ``data`` filter member by member: absolute paths, ``..``,
links leaving the target and device files are refused and reported, the rest is extracted.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from laionflow import fs
from laionflow.recipes import Recipe

log = logging.getLogger(__name__)


def _root(recipe: Recipe) -> Path:
    if "://" in recipe.dataset_root:
        raise ValueError("the prepackaged path extracts to a local dataset root")
    return Path(recipe.dataset_root) / "packs"


def _selected(files: list[str], pattern: str, start: int | None, end: int | None) -> list[str]:
    return sorted(f for f in files if fnmatch.fnmatch(f, pattern))[start:end]


def fetch(recipe: Recipe, force: bool = False) -> dict:
    from huggingface_hub import HfApi, hf_hub_download

    src = recipe.prepackaged
    endpoint = src.endpoint or os.environ.get("HF_ENDPOINT")
    files = HfApi(endpoint=endpoint).list_repo_files(
        src.repo, repo_type="dataset", revision=src.revision
    )
    wanted = _selected(files, src.packs, src.start, src.end)
    for pattern in src.extra_packs:
        wanted += _selected(files, pattern, src.start, src.end)
    if src.index_file not in files:
        raise FileNotFoundError(f"{src.repo} has no {src.index_file}")
    wanted.append(src.index_file)
    target = _root(recipe) / "download"
    for name in wanted:
        hf_hub_download(
            src.repo,
            name,
            repo_type="dataset",
            revision=src.revision,
            endpoint=endpoint,
            local_dir=target,
            force_download=force,
        )
    log.info("packs: fetched %d file(s) from %s", len(wanted), src.repo)
    return {"stage": "pack_fetch", "files": len(wanted), "repo": src.repo}


def safe_extract(tar_path: str, dest: str) -> dict:
    """Extract what is safe, report what is not; never writes outside ``dest``."""
    extracted, rejected = 0, []
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if member.name.startswith("/") or os.path.isabs(member.name):
                # the data filter would silently strip the slash; we refuse and report it
                rejected.append(
                    {
                        "pack": os.path.basename(tar_path),
                        "member": member.name,
                        "reason": "AbsolutePath: absolute member name",
                    }
                )
                continue
            try:
                # parallel extractors race on tarfile's exists-then-makedirs of shared folders:
                # once the data filter accepts a member, create its folder ourselves (exist_ok)
                accepted = tarfile.data_filter(member, dest)
                parent = os.path.dirname(os.path.join(dest, accepted.name))
                os.makedirs(parent, exist_ok=True)
                tar.extract(member, dest, filter="data")
                extracted += int(member.isfile())
            except (tarfile.FilterError, OSError) as err:
                rejected.append(
                    {
                        "pack": os.path.basename(tar_path),
                        "member": member.name,
                        "reason": type(err).__name__ + ": " + str(err),
                    }
                )
    return {"pack": os.path.basename(tar_path), "extracted": extracted, "rejected": rejected}


def _extract_one(args: tuple[str, str]) -> dict:
    tar_path, dest = args
    name = os.path.relpath(tar_path, Path(dest).parent / "download").replace("/", "_")
    done = Path(dest) / f".done-{name}.json"
    if done.exists():
        return json.loads(done.read_text())
    report = safe_extract(tar_path, dest)
    fs.write_json(str(done), report)
    return report


def extract(recipe: Recipe, force: bool = False) -> dict:
    src = recipe.prepackaged
    root = _root(recipe)
    dest = root / "extracted"
    dest.mkdir(parents=True, exist_ok=True)
    if force:
        for marker in dest.glob(".done-*.json"):
            marker.unlink()
    download = root / "download"
    tars = [str(p) for p in sorted(download.rglob("*.tar"))]
    jobs = [(t, str(dest)) for t in tars]
    with ProcessPoolExecutor(
        max_workers=min(src.workers, max(len(jobs), 1)), mp_context=get_context("spawn")
    ) as pool:
        reports = list(pool.map(_extract_one, jobs))
    rejected = [r for rep in reports for r in rep["rejected"]]
    for item in rejected:
        log.warning("refused %s in %s: %s", item["member"], item["pack"], item["reason"])
    return {
        "stage": "pack_extract",
        "packs": len(reports),
        "files": sum(r["extracted"] for r in reports),
        "rejected": rejected,
    }


def index(recipe: Recipe, force: bool = False) -> dict:
    """Verify every index entry (image opens, caption resolves) and write ``index.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    src = recipe.prepackaged
    root = _root(recipe)
    dest = (root / "extracted").resolve()
    entries = json.loads((root / "download" / src.index_file).read_text())
    if isinstance(entries, dict):
        entries = entries.get("data") or list(entries.values())
    rows, problems = [], []
    for i, entry in enumerate(entries):
        image = (dest / entry["image"]).resolve()
        caption = entry.get("caption") or entry.get("text")
        if caption is None and entry.get("caption_file"):
            cap = (dest / entry["caption_file"]).resolve()
            if dest in cap.parents and cap.is_file():
                caption = cap.read_text(encoding="utf-8", errors="replace").strip()
        reason = None
        if dest not in image.parents or not image.is_file():
            reason = "missing_image"
        else:
            try:
                with Image.open(image) as img:
                    img.verify()
            except Exception:  # any decoder error means the file is unusable
                reason = "corrupt_image"
        if reason is None and caption is None:
            reason = "missing_caption"
        if reason:
            problems.append({"entry": i, "image": entry.get("image"), "reason": reason})
        else:
            rows.append({"image_path": str(image), "caption": caption})
    table = pa.table(
        {"image_path": [r["image_path"] for r in rows], "caption": [r["caption"] for r in rows]}
    )
    with fs.atomic_write(str(root / "index.parquet")) as fh:
        pq.write_table(table, fh)
    reasons: dict[str, int] = {}
    for p in problems:
        reasons[p["reason"]] = reasons.get(p["reason"], 0) + 1
    extract_reports = [json.loads(p.read_text()) for p in sorted(dest.glob(".done-*.json"))]
    summary = {
        "stage": "pack_index",
        "entries": len(entries),
        "ok": len(rows),
        "problems": reasons,
        "unresolved": problems,
        "rejected_members": [r for rep in extract_reports for r in rep["rejected"]],
        "balanced": len(rows) + len(problems) == len(entries),
    }
    fs.write_json(str(root / "_summary.json"), summary)
    log.info("packs: %d/%d entries verified, problems %s", len(rows), len(entries), reasons)
    return summary
