"""A webhook receiver on loopback for the webhook tests and benchmark: records every request it gets.

A Starlette app under uvicorn in a thread of the caller. Each path answers from a script: a list of
steps taken in order, the last one repeating; a step is an HTTP status, ``"hang"`` (answer nothing
until :meth:`Receiver.release` or the receiver stops) or ``(status, {header: value})``. Paths without
a script answer 200.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HANG = "hang"
Step = int | str | tuple[int, Mapping[str, str]]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request was read

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _served: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, steps: Sequence[Step]) -> None:
        self.scripts[path] = list(steps)

    def release(self) -> None:
        """Let every hanging request answer (with the script's next step)."""
        self._release.set()

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        with self._lock:
            self.received.append(
                Received(path, {k.lower(): v for k, v in request.headers.items()}, body, time.time())
            )
            steps = self.scripts.get(path) or [200]
            index = self._served[path]
            self._served[path] += 1
        step = steps[min(index, len(steps) - 1)]
        if step == HANG:
            while not self._release.is_set():
                await asyncio.sleep(0.05)
            return Response(status_code=200)
        if isinstance(step, tuple):
            status, headers = step
            return Response(status_code=status, headers=dict(headers))
        return Response(status_code=int(step))


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A :class:`Receiver` listening on 127.0.0.1 at a free port until the block ends."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST", "GET"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="webhook-receiver", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        receiver.release()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
