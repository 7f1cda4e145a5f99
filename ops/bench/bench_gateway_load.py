"""The load generator of ``bench_gateway``: many keep-alive HTTP/1.1 clients on one asyncio loop.

It runs in its own process so its CPU does not hide inside the gateway's. It speaks just enough
HTTP/1.1 over raw asyncio streams (one request in flight per connection, Content-Length bodies): an
HTTP library would spend more CPU per request than the gateway does, on a machine with two cores.
Prints one JSON line: accepted count, elapsed seconds, latencies of accepted requests, status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

BODY = json.dumps(
    {
        "title": "bench",
        "scenes": [
            {"prompt": "a red fox trots through fresh snow at dawn"},
            {"prompt": "it reaches the woods"},
        ],
        "params": {"width": 256, "height": 160, "num_frames": 9},
    }
).encode()


def request_bytes(host: str, key: str, idempotency_key: str | None) -> bytes:
    headers = [
        "POST /v1/stories HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(BODY)}",
    ]
    if idempotency_key is not None:
        headers.append(f"Idempotency-Key: {idempotency_key}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + BODY


async def client(
    host: str,
    port: int,
    key: str,
    stop_at: float,
    measure_from: float,
    idempotent: bool,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    fixed = request_bytes(f"{host}:{port}", key, None)
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request_bytes(f"{host}:{port}", key, uuid.uuid4().hex) if idempotent else fixed)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if started >= measure_from:  # requests of the warm-up are not counted
                statuses[status] += 1
                if status == 202:
                    latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def generate(
    url: str, key: str, clients: int, duration_s: float, warmup_s: float, idempotent: bool
) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    now = time.perf_counter()
    measure_from, stop_at = now + warmup_s, now + warmup_s + duration_s
    await asyncio.gather(
        *(
            client(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                key,
                stop_at,
                measure_from,
                idempotent,
                latencies,
                statuses,
            )
            for _ in range(clients)
        )
    )
    return {"elapsed_s": duration_s, "latencies": latencies, "statuses": dict(statuses)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bench_gateway_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--idempotent", action="store_true", help="send a fresh Idempotency-Key each time")
    args = parser.parse_args(argv)
    result = asyncio.run(
        generate(args.url, args.key, args.clients, args.duration, args.warmup, args.idempotent)
    )
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
