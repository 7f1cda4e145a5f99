"""A gateway under uvicorn on a free loopback port, for benches and tests: started, awaited, stopped.

``served(env)`` runs ``uvicorn gateway.app:app_from_env`` as a child process with ``env`` on top of this
process's environment, yields its base URL once ``/healthz`` answers, and stops it afterwards, killing it
if it does not exit in time. Production serving is ``storee gateway`` (``gateway.commands``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import httpx

HOST = "127.0.0.1"
_STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A loopback port nothing listens on now (another process may take it before it is bound)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served(env: Mapping[str, str], *, workers: int = 1, timeout_s: float = 60.0) -> Iterator[str]:
    """Start the gateway with ``env``; yield its base URL once it answers; stop it afterwards."""
    with served_process(env, workers=workers, timeout_s=timeout_s) as (url, _):
        yield url


@contextlib.contextmanager
def served_process(
    env: Mapping[str, str], *, workers: int = 1, timeout_s: float = 60.0
) -> Iterator[tuple[str, int]]:
    """:func:`served`, yielding the base URL and the uvicorn process's pid (to read its memory)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "gateway.app:app_from_env",
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env={**os.environ, **env})
    url = f"http://{HOST}:{port}"
    try:
        _wait_until_ready(process, url, timeout_s)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(url):
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway did not answer on {url} within {timeout_s:.0f}s")
        time.sleep(0.1)  # polling a condition with a deadline, not synchronising on time


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False
