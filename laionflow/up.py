"""``laionflow up`` (``make up``): the Airflow UI with every recipe in it, offline, in one command.

Starts the real services on 127.0.0.1 (api-server, scheduler, dag-processor, triggerer; SQLite
and the LocalExecutor: the embedded default, :mod:`laionflow.testing.airflow_services`), a
fixture web (:class:`~laionflow.testing.server.FixtureServer`) that also emulates the Hugging
Face Hub, so each recipe's own ``hf://`` metadata URLs resolve to a small fixture corpus, and
site defaults (``$LAIONFLOW_SITE_OVERRIDES``: dataset root, part count, worker sizes, the tiny
local CLIP model) so that every recipe's trigger form, as it stands, runs offline.

One ``up`` per root: a second one while the first runs says so and exits 1 (an ``flock`` on
``ROOT/up.lock``, released by the kernel however the first ends). Ctrl-C (SIGINT) or SIGTERM
stops every process it started, by process group, then any straggler by PID.
No Airflow import here: the services are separate processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UP_MODEL = "laionflow-tiny"
DEFAULT_PORT = 8080
#: corpus of each recipe with a DAG: its seed, column set and image sides (SD 2.1 keeps >= 512)
FIXTURES: dict[str, dict[str, Any]] = {
    "laion400m": {"seed": 7, "max_side": 320},
    "laion2b_en_sd21": {
        "seed": 11,
        "flavour": "laion2b_aesthetics",
        "min_side": 300,
        "max_side": 760,
    },
    "laion6m": {"seed": 13, "flavour": "aesthetics_12m_umap", "max_side": 300},
}


class AlreadyRunning(RuntimeError):
    """Another ``laionflow up`` holds this root."""


@dataclass
class UpInfo:
    """What ``up`` prints and writes to ``ROOT/up.json`` (mode 0600: it holds the password)."""

    pid: int
    url: str
    user: str
    password: str
    root: str

    def backfill_example(self) -> str:
        return (
            f"LAIONFLOW_SITE_OVERRIDES={self.root}/site.json LAIONFLOW_AIRFLOW_URL={self.url} "
            f"LAIONFLOW_AIRFLOW_PASSWORD={self.password} laionflow backfill laion400m --parts 1-2"
        )


def lock(root: Path):
    """Hold ``ROOT/up.lock`` for the life of this process; :class:`AlreadyRunning` if taken."""
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / "up.lock", "a+")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        info = root / "up.json"
        where = json.loads(info.read_text()) if info.exists() else {}
        raise AlreadyRunning(
            f"laionflow up is already running for {root} "
            f"(pid {where.get('pid', '?')}, {where.get('url', 'starting')}); "
            "stop it with Ctrl-C in its terminal first"
        ) from None
    return fh


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _hub_urls(recipe: str) -> list[str]:
    """The recipe's Hub metadata URLs, braces expanded (``2B-en-4.5_{1..64}.parquet``), with
    its ``metadata.prefiltered_urls`` where it has them (SD 2.1's filtered set)."""
    from braceexpand import braceexpand

    from laionflow.recipes import load_recipe

    meta = load_recipe(recipe).metadata
    given = [*meta.urls, *(getattr(meta, "prefiltered_urls", None) or [])]
    return [u for g in given for u in braceexpand(g) if u.startswith("hf://datasets/")]


def _hub_targets(urls: list[str], files: list[str]) -> list[tuple[str, str]]:
    """``(metadata file, Hub path OWNER/NAME/FILE)`` pairs that make every URL resolve: a glob
    gets every file (``*`` -> ``part-00000``...), the n-th named file gets the n-th file."""
    pairs, named = [], 0
    for url in urls:
        owner, name, *rest = url[len("hf://datasets/") :].split("/")
        path = "/".join(rest) or "*"
        if "*" in path:
            pairs += [
                (f, f"{owner}/{name}/" + path.replace("*", f"part-{i:05d}", 1))
                for i, f in enumerate(files)
            ]
        else:
            pairs.append((files[named % len(files)], f"{owner}/{name}/{path}"))
            named += 1
    return pairs


def build_fixtures(fixture: Path, base_url: str, rows: int) -> dict[str, list[str]]:
    """One small corpus per recipe, its metadata laid out where the recipe's own
    ``hf://datasets/OWNER/NAME/...`` URLs find it on the Hub emulation (as many metadata
    files as the recipe names, at least 2); returns the Hub files per recipe."""
    from laionflow.testing.corpus import CorpusSpec, build_corpus

    out: dict[str, list[str]] = {}
    for recipe, spec in FIXTURES.items():
        urls = _hub_urls(recipe)
        named = sum("*" not in u for u in urls)
        size = rows if recipe == "laion400m" else max(120, rows // 4)
        spec = CorpusSpec(rows=size, parts=max(2, named), formats=("parquet",), **spec)
        manifest = build_corpus(fixture / recipe, f"{base_url}/{recipe}", spec)
        out[recipe] = []
        for src, hub_path in _hub_targets(urls, manifest.metadata_files):
            target = fixture / "hf" / hub_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            out[recipe].append(str(target))
    return out


def site_defaults(root: Path, checkpoint: str, parts: int) -> dict[str, Any]:
    """The deployment's dotted overrides: under every recipe, over nothing the user types."""
    return {
        "root": str(root / "data"),
        "metadata.backoff_s": 0.2,
        "filter.num_parts": parts,
        "download.processes": 1,
        "download.threads": 8,
        "download.number_sample_per_shard": 64,
        "clip.model": UP_MODEL,
        "clip.pretrained": checkpoint,
        "clip.device": "cpu",
        "clip.num_workers": 0,
        "index.max_index_memory_usage": "64M",
        "index.current_memory_available": "1G",
    }


def _fixture_server(fixture: Path, previous: dict):
    """The fixture web, on its previous port when free: metadata already fetched into the
    data root keeps pointing at live URLs across restarts."""
    from laionflow.testing.server import FixtureServer

    port = previous.get("fixture_port", 0)
    try:
        return FixtureServer(fixture, port=port).start()
    except OSError:
        return FixtureServer(fixture).start()


def _print_banner(info: UpInfo, out) -> None:
    print(
        f"Airflow UI: {info.url}  user: {info.user}  password: {info.password}\n"
        f"backfill:   {info.backfill_example()}\n"
        f"data: {info.root}/data   logs: {info.root}/airflow/*.log   stop: Ctrl-C",
        file=out,
        flush=True,
    )


def up(root: str, rows: int = 600, parts: int = 3, port: int = DEFAULT_PORT, out=None) -> int:
    """Run until Ctrl-C/SIGTERM; 1 if another ``up`` holds ``root`` or a service died."""
    import sys

    out = out or sys.stdout
    root_path = Path(root).resolve()
    try:
        held = lock(root_path)
    except AlreadyRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    info_path = root_path / "up.json"
    previous = json.loads(info_path.read_text()) if info_path.exists() else {}
    info_path.unlink(missing_ok=True)
    # Ctrl-C even when started in the background (a shell's `&` ignores SIGINT), and SIGTERM
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _serve(root_path, rows, parts, port, previous, out)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:  # a service did not come up: its log says why
        print(f"laionflow up: {exc}", file=sys.stderr)
        return 1
    finally:
        info_path.unlink(missing_ok=True)
        held.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve(root: Path, rows: int, parts: int, port: int, previous: dict, out) -> int:
    import logging

    from laionflow.clip_model import save_random_checkpoint
    from laionflow.testing.airflow_services import AirflowServices

    logging.getLogger().setLevel(logging.WARNING)  # open_clip's INFO lines are not for here
    if port and not _port_free(port):
        print(f"port {port} is taken; using a free one", file=out)
        port = 0
    checkpoint = save_random_checkpoint(UP_MODEL, root / "models" / f"{UP_MODEL}.pt")
    fixture = root / "fixture"
    shutil.rmtree(fixture, ignore_errors=True)
    server = _fixture_server(fixture, previous)
    services = AirflowServices(root / "airflow", port=port or None)
    try:
        build_fixtures(fixture, server.base_url, rows)
        site = root / "site.json"
        site.write_text(json.dumps(site_defaults(root, checkpoint, parts), indent=2))
        os.environ.update(
            {
                "LAIONFLOW_SITE_OVERRIDES": str(site),
                "LAIONFLOW_FETCH_ALLOW": server.allow_entry,  # downloads may reach it
                "HF_ENDPOINT": server.base_url,  # the recipes' hf:// URLs: the fixture
            }
        )
        print(f"starting Airflow under {root / 'airflow'} ...", file=out, flush=True)
        services.start()
        info = UpInfo(os.getpid(), services.url, services.user, services.password, str(root))
        record = {**info.__dict__, "fixture_port": server.server_address[1]}
        fd = os.open(root / "up.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        _print_banner(info, out)
        while True:
            dead = [n for n, p in services.procs.items() if p.poll() is not None]
            if dead:
                print(f"{dead} exited; see {root}/airflow/*.log", file=out, flush=True)
                return 1
            time.sleep(1)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the stop
            signal.signal(sig, signal.SIG_IGN)
        print("stopping ...", file=out, flush=True)
        services.stop()  # also what start() had started when Ctrl-C came during it
        server.stop()
        print("stopped", file=out, flush=True)
