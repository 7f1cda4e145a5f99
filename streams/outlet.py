"""What the agents' shells produce through and keep state in: Faust's producer and table, behind two
small protocols so the shells can be driven by tests without a broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Protocol

Headers = Sequence[tuple[str, bytes | None]]


class Outlet(Protocol):
    """Produces records; the returned future resolves once Kafka acknowledged the record."""

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> asyncio.Future[Any]: ...


class StateTable(Protocol):
    """A Faust table's store (``data``) and its changelog, written with an explicit partition."""

    @property
    def data(self) -> MutableMapping[bytes, bytes]: ...

    def send_changelog(self, partition: int | None, key: Any, value: Any) -> Any: ...


class FaustOutlet:
    """An :class:`Outlet` over a Faust app's producer; topics are looked up once and cached.

    ``send_soon`` only buffers; Faust flushes its producer before it commits source offsets, so a record
    sent while handling an event is durable before that event's offset is committed.
    """

    def __init__(self, topic_factory: Callable[[str], Any]) -> None:
        self._topic_factory = topic_factory
        self._topics: dict[str, Any] = {}

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> asyncio.Future[Any]:
        channel = self._topics.get(topic)
        if channel is None:
            channel = self._topics[topic] = self._topic_factory(topic)
        return channel.send_soon(key=key, value=value, headers=list(headers) if headers else None)
