"""Which letters an operator asked for: origin topic, service, reason, time window (pure).

Times are ISO 8601 (``2026-12-01T10:00``, ``2026-12-01``; UTC unless an offset is given) or a
duration back from now (``90s``, ``15m``, ``1h``, ``2d``, ``1w``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ops.dlq.exceptions import DlqError
from ops.dlq.letters import Letter

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_when(text: str, now_ms: int, *, name: str = "time") -> int:
    """Epoch milliseconds for an ISO time or a duration before ``now_ms``."""
    raw = text.strip()
    match = _DURATION.fullmatch(raw)
    if match is not None:
        return now_ms - int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DlqError(
            f"{name} must be an ISO time (2026-12-01T10:00) or a duration (30m, 1h, 2d), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """What ``list`` and ``replay`` select; every field that is set must match."""

    topic: str | None = None  # the origin topic's full name (the command adds the prefix)
    service: str | None = None  # the service, or a prefix of it ("streams" matches "streams.batcher")
    reason: str | None = None  # a substring of the error class or message, case-insensitive
    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.topic, self.service, self.reason, self.since_ms, self.until_ms))

    def matches(self, letter: Letter) -> bool:
        r = letter.reason
        if self.since_ms is not None and letter.failed_at < self.since_ms:
            return False
        if self.until_ms is not None and letter.failed_at > self.until_ms:
            return False
        if self.topic is not None and (r is None or r.origin_topic != self.topic):
            return False
        if self.service is not None and (r is None or not _service_matches(r.service, self.service)):
            return False
        if self.reason is not None:
            text = f"{r.error_class}: {r.error_message}" if r is not None else letter.problem
            if self.reason.lower() not in text.lower():
                return False
        return True


def select(letters: Iterable[Letter], wanted: LetterFilter, limit: int | None) -> list[Letter]:
    """The matching letters, oldest first, the newest ``limit`` of them when there are more."""
    if limit is not None and limit < 1:
        raise DlqError(f"--limit must be at least 1, got {limit}")
    chosen = sorted((x for x in letters if wanted.matches(x)), key=lambda x: (x.failed_at, x.id))
    return chosen[-limit:] if limit is not None else chosen


def _service_matches(service: str, wanted: str) -> bool:
    return service == wanted or service.startswith(wanted + ".") or service.endswith("." + wanted)
