"""Run the gateway as a real uvicorn process on a free loopback port, for fuzzing and multi-process tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import httpx

from gateway.settings import DEFAULT_CAPABILITIES, GatewaySettings
from ops.runtime.config import PIPELINE_TASK_TYPES


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served(env: Mapping[str, str], *, workers: int = 1, timeout_s: float = 60.0) -> Iterator[str]:
    """Start ``uvicorn gateway.app:app_from_env`` with ``env``; yield its base URL; stop it afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "gateway.app:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with status {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway did not answer on {url} within {timeout_s:.0f}s")
            time.sleep(0.1)  # polling a condition with a deadline, not synchronising on time
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gateway_env(settings: GatewaySettings) -> dict[str, str]:
    """Environment variables that make ``GatewaySettings.from_env`` equal the given test settings."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGODB_URL": str(settings.mongodb_url),
        "MONGODB_DATABASE": settings.mongodb_database,
        "TOPIC_PREFIX": settings.topic_prefix,
        "OUTPUT_DIR": str(settings.output_dir),
        "RATE_LIMIT_USER_PER_MINUTE": str(settings.user_limit_per_minute),
        "RATE_LIMIT_ACCOUNT_PER_MINUTE": str(settings.account_rate_per_minute),
        "RATE_LIMIT_ACCOUNT_BURST": str(settings.account_burst),
        "PUBLISH_TIMEOUT": str(settings.publish_timeout_s),
        **pools_env(settings),
    }


def pools_env(settings: GatewaySettings) -> dict[str, str]:
    """``GPU_POOLS`` declaring the settings' pools, each with the pipeline kind that runs what it runs."""
    if dict(settings.pool_capabilities) == dict(DEFAULT_CAPABILITIES):
        return {}
    kinds = {task_types: kind for kind, task_types in PIPELINE_TASK_TYPES.items()}
    pools = {
        name: {"pipeline": kinds[runs], "model": "unused"}
        for name, runs in settings.pool_capabilities.items()
    }
    return {"GPU_POOLS": json.dumps(pools)}
