"""AWS credentials for a task, from an Airflow connection (S3 dataset roots).

Every task that touches the dataset root needs them: stage subprocesses and ``spark-submit``
get them as ``AWS_*`` variables of their process, in-process tasks (plan, parts, the sensor)
for the duration of the call. The connection is ``$LAIONFLOW_AWS_CONN_ID`` (default
``aws_default``); when it does not exist the environment's own credentials, if any, apply.
Secrets are registered with Airflow's masker, and only a fingerprint of the key is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)


def default_conn_id() -> str:
    return os.environ.get("LAIONFLOW_AWS_CONN_ID", "aws_default")


def aws_env(conn_id: str | None = None, logger: logging.Logger | None = None) -> dict[str, str]:
    """``AWS_*`` variables from the connection, empty when there is no such connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    from laionflow.credentials import aws_env_from_connection, fingerprint

    conn_id = conn_id or default_conn_id()
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - no such connection: the environment's, if any
        return {}
    env = aws_env_from_connection(conn, conn_id)
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if key in env:
            mask_secret(env[key])
    (logger or log).info(
        "credentials: AWS key %s from connection %s",
        fingerprint(env.get("AWS_ACCESS_KEY_ID")),
        conn_id,
    )
    return env


@contextlib.contextmanager
def aws_environment(conn_id: str | None = None) -> Iterator[dict[str, str]]:
    """The connection's ``AWS_*`` in ``os.environ`` for the block, then restored."""
    env = aws_env(conn_id)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
