"""Tiny fsspec façade: one place that knows how to read, write and publish atomically on a
local path or ``s3://``. Jobs never build file systems themselves."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec


def storage_options(path: str) -> dict[str, str]:
    """The S3 endpoint and credentials of this moment's environment, passed explicitly.

    fsspec caches one file-system instance per set of constructor arguments; an ``s3://``
    instance built from the environment alone is reused after ``AWS_*`` change (another
    connection, rotated keys, a different endpoint) and keeps talking to the old ones. With
    the values as arguments, each distinct set gets its own cached instance.
    """
    if not path.startswith(("s3://", "s3a://")):
        return {}
    env = os.environ
    opts = {
        "endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        "key": env.get("AWS_ACCESS_KEY_ID"),
        "secret": env.get("AWS_SECRET_ACCESS_KEY"),
        "token": env.get("AWS_SESSION_TOKEN"),
    }
    return {k: v for k, v in opts.items() if v}


def filesystem(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, _, paths = fsspec.get_fs_token_paths(path, storage_options=storage_options(path))
    return fs, paths[0]


def open(path: str, mode: str = "rb", **kwargs: Any) -> IO:  # noqa: A001 - mirrors fsspec
    return fsspec.open(path, mode, **(storage_options(path) | kwargs)).open()


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.exists(p)


def makedirs(path: str) -> None:
    fs, p = filesystem(path)
    fs.makedirs(p, exist_ok=True)


def ls(path: str) -> list[str]:
    """Sorted entries under ``path`` (full paths, same protocol), empty if it does not exist.

    Always listed afresh: the folders laionflow lists are written by other processes (spawned
    download workers, Spark executors), and an s3fs instance, shared by every thread of this
    process, would otherwise answer from a listing cached mid-download ("N input rows but 0 in
    complete shards" after a Spark download to an ``s3://`` root)."""
    fs, p = filesystem(path)
    fs.invalidate_cache(p)
    if not fs.exists(p):
        return []
    proto = path.split("://")[0] + "://" if "://" in path else ""
    return sorted(
        proto + e if proto and not e.startswith(proto) else e for e in fs.ls(p, detail=False)
    )


def rm(path: str, recursive: bool = False) -> None:
    fs, p = filesystem(path)
    if fs.exists(p):
        fs.rm(p, recursive=recursive)


def rename(src: str, dst: str) -> None:
    fs, s = filesystem(src)
    _, d = filesystem(dst)
    if "file" in fs.protocol:  # "file" or ("file", "local"), by fsspec version
        os.replace(s, d)  # atomic on one POSIX file system
    else:
        fs.mv(s, d, recursive=True)


def protocol(path: str) -> str:
    return path.split("://", 1)[0] if "://" in path else "file"


def is_local(path: str) -> bool:
    return protocol(path) == "file"


def download(src: str, local: str) -> None:
    """Copy ``src`` (any protocol) to the local path ``local``."""
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    fsys, p = filesystem(src)
    fsys.get_file(p, local)


def move(src: str, dst: str) -> None:
    """Move a file, also between protocols (a local file published to S3: copied under a
    temporary name, then moved in place, so readers never see part of it)."""
    if protocol(src) == protocol(dst):
        rename(src, dst)
        return
    tmp = tmp_name(dst)
    with open(src, "rb") as reader, open(tmp, "wb") as writer:
        while chunk := reader.read(16 << 20):
            writer.write(chunk)
    rename(tmp, dst)
    rm(src)


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO:
    return fsspec.open(url, mode, **storage_options(url)).open()


def webdataset_urls(paths: list[str]) -> list[str]:
    """Shard paths as webdataset URLs. webdataset opens only local, pipe and http URLs; object
    stores (``s3://`` …) are opened here through fsspec, with the process's credentials.
    Call from a module that DataLoader workers import, so the schemes exist there too."""
    import importlib

    gopen = importlib.import_module("webdataset.gopen")  # the package exports a same-named func
    for scheme in ("s3", "s3a", "gs", "gcs", "az", "abfs", "hf"):
        gopen.gopen_schemes.setdefault(scheme, _gopen_fsspec)
    return [p if "://" in p else f"file:{p}" for p in paths]


def tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.tmp-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb") -> Iterator[IO]:
    """Write to a hidden temporary name, publish with a rename only once fully written.

    Readers (and reruns that test "does the done file exist") therefore never see a half file.
    """
    makedirs(path.rpartition("/")[0] or ".")
    tmp = tmp_name(path)
    try:
        with open(tmp, mode) as fh:
            yield fh
        rename(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            rm(tmp)
        raise


def write_json(path: str, data: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)


def read_json(path: str) -> Any:
    with open(path, "r") as fh:
        return json.load(fh)


def newest_in_runs(dataset_root: str, name: str) -> str | None:
    """The most recently written ``runs/<run>/<name>`` of a dataset, or None."""
    from laionflow.layout import Layout

    found = [f"{d}/{name}" for d in ls(Layout(dataset_root).runs) if exists(f"{d}/{name}")]
    if not found:
        return None
    fsys, _ = filesystem(found[0])
    return max(found, key=lambda p: fsys.modified(filesystem(p)[1]))
