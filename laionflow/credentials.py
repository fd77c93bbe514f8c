"""Credentials: where they come from, and keeping them out of logs, XComs and reports.

Secrets are read from the environment (``AWS_*``, ``HF_TOKEN``...) or, in Airflow, from a
connection that the stage operator turns into those variables for the stage's process
(:func:`aws_env_from_connection`). They never travel in a recipe, a run config or a URL: a
metadata URL carrying a password or a token is refused when the recipe is validated.
What is logged is a fingerprint (``AKIA…1234``), never the value.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: environment variables whose values are secrets
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AIRFLOW_CONN_AWS_DEFAULT",
)
#: query parameters that carry credentials (presigned URLs, API tokens)
SECRET_PARAMS = re.compile(
    r"^(x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|"
    r"access_token|api_key|apikey|key|password|secret)$",
    re.IGNORECASE,
)


def url_secret(url: str) -> str | None:
    """What in ``url`` is a credential (``password``, ``query parameter token``), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return "a password in the URL"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_PARAMS.match(name):
            return f"the query parameter {name!r}"
    return None


def fingerprint(secret: str | None) -> str:
    """``AKIA…1234``: enough to tell keys apart, useless to an attacker."""
    if not secret:
        return "none"
    return f"{secret[:4]}…{secret[-4:]}" if len(secret) >= 12 else "…"


def secret_values() -> list[str]:
    return [v for k in SECRET_ENV if (v := os.environ.get(k)) and len(v) >= 6]


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """``value`` (str, or dicts/lists of them) with every known secret replaced by ``***``."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


def describe() -> str:
    """The credential sources this process sees, as fingerprints (logged by every stage)."""
    found = []
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        found.append(
            f"AWS key {fingerprint(os.environ['AWS_ACCESS_KEY_ID'])} "
            f"(from {os.environ.get('LAIONFLOW_CREDENTIALS_SOURCE', 'environment')})"
        )
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        found.append("Hugging Face token (environment)")
    return ", ".join(found) or "none"


def aws_env_from_connection(conn: Any, conn_id: str) -> dict[str, str]:
    """Environment variables for a stage process from an Airflow AWS connection: login and
    password are the key pair, ``endpoint_url`` / ``region_name`` come from its extra."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    env = {"LAIONFLOW_CREDENTIALS_SOURCE": f"connection {conn_id}"}
    if conn.login:
        env["AWS_ACCESS_KEY_ID"] = conn.login
    if conn.password:
        env["AWS_SECRET_ACCESS_KEY"] = conn.password
    if extra.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = extra["aws_session_token"]
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get(
        "endpoint_url"
    )
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = extra["region_name"]
    return env


def executor_env() -> dict[str, str]:
    """``spark.executorEnv.*`` settings that hand this process's ``AWS_*`` to Spark executors
    (which read and write an S3 dataset root themselves). Spark redacts values whose names
    match ``secret|token|password`` in its UI and event logs."""
    return {
        f"spark.executorEnv.{k}": v for k, v in os.environ.items() if k.startswith("AWS_") and v
    }
