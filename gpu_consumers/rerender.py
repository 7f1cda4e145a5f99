"""Operator re-render requests: which re-delivered batches are rendered again although stored.

``storee replay gpu:<pool> ... --rerender --execute`` writes one :class:`RerenderRequest` per GPU
consumer group it resets, *before* it commits the new offsets; each member's triage asks
:class:`RerenderRequests` (the ``rerender`` hook of :mod:`gpu_consumers.triage`) whether a batch is
covered, and renders every task of a covered batch again instead of re-announcing its manifest. The
new TaskCompleted has the same attempt and a later event time, so the job view shows it.

Where a request lives: one small JSON object per group in the output store
(``control/rerender/<group>.json``, through :class:`ops.runtime.storage.LocalStore`). The output store
is the one store the GPU consumers already reach through the runtime floor, and the request is about
its contents (ignore what is stored for these batches); a topic would need an event in the contract
and a reader on every member, MongoDB a dependency the GPU consumers do not have. Offsets can only
be reset while the group is empty, so every member reads the request when it starts; it re-reads it
every ``refresh_s`` (``RERENDER_REFRESH_S``) after that, and a missing or unreadable object means no
request: a request is never guessed.

What a request covers: per partition of the group's batches topic, the offsets ``[first, last]`` the
replay re-delivers (the plan's "reprocess" range). A batch record at an offset in a window is rendered
again; a record at any other offset (new work, or a batch the batcher re-sent after the replay: it
lands past the log end the plan read) is triaged as always. So nothing but a ``--rerender`` replay
re-renders, and only the records that replay re-delivers.

How a request ends: (1) its window is delivered once: the group commits past it, and only another
offset reset delivers those records again; the next ``storee replay --execute`` of the group replaces
the request with its own (an empty one when it re-delivers nothing); (2) after its TTL
(``--rerender-ttl``, 24 h by default) it covers nothing, so an offset reset by other tools later cannot
re-render. A member that crashed before committing a re-rendered batch renders it again, as asked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpu_consumers.work import PendingBatch
from ops.runtime.storage import LocalStore, StorageError
from schemas.ids import now_ms
from schemas.records import BatchTask, Tier

log = logging.getLogger(__name__)

KEY_PREFIX = "control/rerender"
DEFAULT_TTL_MS = 24 * 3600 * 1000
DEFAULT_REFRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class OffsetWindow:
    """Offsets ``first..last`` (both included) of one partition, re-delivered by the replay."""

    topic: str
    partition: int
    first: int
    last: int

    def covers(self, topic: str, partition: int, offset: int) -> bool:
        return (topic, partition) == (self.topic, self.partition) and self.first <= offset <= self.last

    @property
    def records(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class RerenderRequest:
    """One group's request: its windows, when it was made, when it ends, and what asked for it."""

    group: str
    windows: tuple[OffsetWindow, ...]
    created_ms: int
    expires_ms: int
    request_id: str = ""
    reason: str = ""

    def covers(self, topic: str, partition: int, offset: int, now: int) -> bool:
        """Whether the batch record at ``topic[partition]@offset`` is to be rendered again at ``now``."""
        if now >= self.expires_ms:
            return False
        return any(w.covers(topic, partition, offset) for w in self.windows)

    @property
    def records(self) -> int:
        return sum(w.records for w in self.windows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "request_id": self.request_id,
            "reason": self.reason,
            "created_at": _iso(self.created_ms),
            "expires_at": _iso(self.expires_ms),
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "records": self.records,
            "windows": [
                {"topic": w.topic, "partition": w.partition, "first": w.first, "last": w.last}
                for w in self.windows
            ],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RerenderRequest:
        """The request ``as_dict`` wrote; ``ValueError`` naming the field when it is not one."""
        try:
            windows = tuple(
                OffsetWindow(str(w["topic"]), int(w["partition"]), int(w["first"]), int(w["last"]))
                for w in doc["windows"]
            )
            return cls(
                group=str(doc["group"]),
                windows=windows,
                created_ms=int(doc["created_ms"]),
                expires_ms=int(doc["expires_ms"]),
                request_id=str(doc.get("request_id", "")),
                reason=str(doc.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a re-render request: {type(exc).__name__} {exc}") from None


def request_for(
    group: str,
    redone: Iterable[tuple[str, int, int, int]],
    *,
    now: int,
    ttl_ms: int = DEFAULT_TTL_MS,
    reason: str = "",
) -> RerenderRequest:
    """A request over ``redone`` ``(topic, partition, first, last)`` windows, ending ``ttl_ms`` from now."""
    if ttl_ms <= 0:
        raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
    windows = tuple(
        sorted(
            (OffsetWindow(t, p, f, last) for t, p, f, last in redone if last >= f),
            key=lambda w: (w.topic, w.partition),
        )
    )
    return RerenderRequest(group, windows, now, now + ttl_ms, uuid.uuid4().hex[:12], reason)


def key_of(group: str) -> str:
    return f"{KEY_PREFIX}/{group}.json"


def write_request(store: LocalStore, request: RerenderRequest) -> str:
    """Store ``request`` for its group (replacing the group's previous one); return its URI."""
    body = json.dumps(request.as_dict(), indent=2, sort_keys=True) + "\n"
    return store.put_bytes(key_of(request.group), body.encode())


def read_request(store: LocalStore, group: str) -> RerenderRequest | None:
    """The group's stored request; ``None`` when there is none or it cannot be read (logged)."""
    try:
        with store.open(store.uri(key_of(group))) as handle:
            raw = handle.read()
    except StorageError:
        return None
    except OSError as exc:
        log.warning("re-render request unreadable group=%s error=%s", group, exc)
        return None
    try:
        request = RerenderRequest.from_dict(json.loads(raw))
    except ValueError as exc:
        log.warning("re-render request ignored group=%s: %s", group, exc)
        return None
    if request.group != group:
        log.warning("re-render request ignored group=%s: it names group %s", group, request.group)
        return None
    return request


class RerenderRequests:
    """The triage's ``rerender`` hook: each tier group's request, re-read every ``refresh_s``."""

    def __init__(
        self,
        store: LocalStore,
        groups: Mapping[Tier, str],
        *,
        refresh_s: float = DEFAULT_REFRESH_S,
        clock: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._groups = dict(groups)
        self._refresh_s = refresh_s
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: dict[Tier, tuple[float, RerenderRequest | None]] = {}

    def __call__(self, pending: PendingBatch, task: BatchTask) -> bool:
        request = self.request(pending.tier)
        covered = request is not None and request.covers(
            pending.topic, pending.partition, pending.offset, self._clock()
        )
        if covered:
            log.info(
                "re-rendering on request task_id=%s batch_id=%s topic=%s partition=%d offset=%d request=%s",
                task.task_id,
                pending.batch.batch_id,
                pending.topic,
                pending.partition,
                pending.offset,
                request.request_id if request else "",
            )
        return covered

    def request(self, tier: Tier) -> RerenderRequest | None:
        """``tier``'s group's request as last read (read again once ``refresh_s`` passed)."""
        group = self._groups.get(tier)
        if group is None:
            return None
        with self._lock:
            cached = self._cached.get(tier)
            if cached is not None and self._monotonic() - cached[0] < self._refresh_s:
                return cached[1]
            request = read_request(self._store, group)
            self._cached[tier] = (self._monotonic(), request)
            return request


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
