"""The worker's outlet on the real broker: futures settle on the loop, flush reports refusals."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Message

from ops.runtime.kafka import DeliveryFailed, DurableProducer, KafkaUnavailable
from streams.outlet import KafkaOutlet

pytestmark = pytest.mark.integration


async def _send_and_flush(outlet: KafkaOutlet, topic: str, count: int) -> list[Message]:
    futures = [
        outlet.send(topic, key=b"k", value=f"v{i}".encode(), headers=[("h", b"1")]) for i in range(count)
    ]
    await outlet.flush()
    assert all(future.done() for future in futures)  # settled on this loop by the time flush returns
    return [await future for future in futures]


def test_records_are_acknowledged_in_order_before_flush_returns(kafka_bootstrap, make_topic, unique_id):
    topic = make_topic(f"t{unique_id}.outlet")
    outlet = KafkaOutlet(DurableProducer(kafka_bootstrap))
    outlet.start()
    try:
        messages = asyncio.run(_send_and_flush(outlet, topic, 50))
    finally:
        outlet.close()
    assert [m.offset() for m in messages] == list(range(50))
    assert messages[7].value() == b"v7" and messages[7].topic() == topic


def test_a_refused_record_fails_its_future_and_the_next_flush(kafka_bootstrap, make_topic, unique_id):
    # The broker refuses records over the topic's max.message.bytes: a permanent delivery error.
    topic = make_topic(f"t{unique_id}.small", config={"max.message.bytes": "200"})
    outlet = KafkaOutlet(DurableProducer(kafka_bootstrap, **{"compression.type": "none"}))
    outlet.start()

    async def scenario() -> tuple[BaseException | None, str]:
        fine = outlet.send(topic, key=b"k", value=b"small")
        await outlet.flush()
        await fine
        refused = outlet.send(topic, key=b"k", value=b"x" * 5000)
        with pytest.raises(DeliveryFailed) as flushed:
            await outlet.flush()
        await outlet.flush()  # the failure was reported once; nothing new is pending
        return refused.exception(), str(flushed.value)

    try:
        error, message = asyncio.run(scenario())
    finally:
        outlet.close()
    assert isinstance(error, DeliveryFailed)
    assert "1 record(s) refused" in message and topic in message


def test_flush_waits_out_an_unreachable_broker_instead_of_failing():
    # Nothing listens on port 1: every record stays unacknowledged, as in an outage.
    unreachable = DurableProducer("127.0.0.1:1", **{"message.timeout.ms": 0, "logger": _silent()})
    outlet = KafkaOutlet(unreachable, flush_timeout_s=0.2)
    outlet.start()

    async def scenario() -> bool:
        outlet.send("any-topic", key=b"k", value=b"v")
        waiting = asyncio.ensure_future(outlet.flush())
        done, _ = await asyncio.wait({waiting}, timeout=1.5)  # several flush timeouts
        still_waiting = not done
        waiting.cancel()
        with pytest.raises(KafkaUnavailable):
            await outlet.flush(wait_out=False)  # on stop it gives up
        return still_waiting

    try:
        assert asyncio.run(scenario())
    finally:
        outlet.close()


def _silent():  # type: ignore[no-untyped-def]
    import logging

    quiet = logging.getLogger("tests.outlet.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    return quiet
