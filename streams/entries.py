"""How the batcher's open batches are stored in its Faust table: one value per (partition, signature).

The value is JSON holding the replay offset, the open tasks (Avro single-object bytes, base64) with the
time each arrived, and the outbox of closed batches not yet acknowledged. Keeping the Avro bytes means
the changelog speaks the same contract as the topics.
"""

from __future__ import annotations

import base64
import json

from schemas.codec import Codec
from schemas.events import BatchReady, TaskRequested
from streams.batching import Pending, PendingTask

_SEPARATOR = "\x1e"


def entry_key(partition: int, sig: str) -> str:
    """The table key of one signature's open batch on one partition of tasks.requested."""
    return f"{partition}{_SEPARATOR}{sig}"


def parse_key(key: str) -> tuple[int, str]:
    partition, _, sig = key.partition(_SEPARATOR)
    return int(partition), sig


def encode_pending(pending: Pending, codec: Codec) -> bytes:
    return json.dumps(
        {
            "o": pending.offset,
            "t": [[p.arrived_at, _b64(codec.encode(p.task))] for p in pending.tasks],
            "x": [_b64(codec.encode(batch)) for batch in pending.outbox],
        },
        separators=(",", ":"),
    ).encode()


def decode_pending(data: bytes | None, codec: Codec) -> Pending:
    if not data:
        return Pending()
    raw = json.loads(data)
    tasks = []
    for arrived_at, task in raw["t"]:
        event = codec.decode(base64.b64decode(task))
        if not isinstance(event, TaskRequested):
            raise TypeError(f"batcher state holds a {type(event).__name__}, not a TaskRequested")
        tasks.append(PendingTask(event, int(arrived_at)))
    outbox = []
    for item in raw["x"]:
        batch = codec.decode(base64.b64decode(item))
        if not isinstance(batch, BatchReady):
            raise TypeError(f"batcher outbox holds a {type(batch).__name__}, not a BatchReady")
        outbox.append(batch)
    return Pending(offset=int(raw["o"]), tasks=tuple(tasks), outbox=tuple(outbox))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
