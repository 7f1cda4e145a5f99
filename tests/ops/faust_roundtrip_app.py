"""A minimal Faust app for the round-trip smoke test: upper-cases each record from one topic into another.

Configured through SMOKE_* variables by the test that starts it as ``faust -A tests.ops.faust_roundtrip_app``.
"""

from __future__ import annotations

import faust

from ops.runtime.config import Env

_env = Env()

app = faust.App(
    _env.str("SMOKE_APP_ID"),
    broker=f"kafka://{_env.str('SMOKE_BOOTSTRAP')}",
    store="memory://",
    web_enabled=False,
    topic_allow_declare=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(_env.str("SMOKE_IN"), key_serializer="raw", value_serializer="raw")
sink = app.topic(_env.str("SMOKE_OUT"), key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def upper(stream: faust.StreamT) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value.upper())
