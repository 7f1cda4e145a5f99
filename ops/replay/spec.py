"""What the operator asked for: the reset mode, its value, and the partitions in scope (pure parsing)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from ops.replay.exceptions import ReplayError

TopicPartitionKey = tuple[str, int]


class Mode(StrEnum):
    """The reset modes, named as ``kafka-consumer-groups --reset-offsets`` names them."""

    EARLIEST = "to-earliest"
    LATEST = "to-latest"
    OFFSET = "to-offset"
    SHIFT = "shift-by"
    DATETIME = "to-datetime"
    DURATION = "by-duration"
    FILE = "from-file"


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """One reset: ``value`` is the offset (to-offset), the shift (shift-by), the time in epoch ms
    (to-datetime, and by-duration once resolved against now), or unused; ``offsets`` is the from-file
    table."""

    mode: Mode
    value: int | None = None
    offsets: Mapping[TopicPartitionKey, int] = field(default_factory=dict)
    label: str = ""  # what the operator typed, for the plan's header

    @property
    def is_time(self) -> bool:
        return self.mode in (Mode.DATETIME, Mode.DURATION)

    def describe(self) -> str:
        return f"--{self.mode.value}" + (f" {self.label}" if self.label else "")


@dataclass(frozen=True, slots=True)
class TopicScope:
    """``--topic t`` (every partition) or ``--topic t:0,2``."""

    topic: str
    partitions: frozenset[int] = frozenset()

    def covers(self, partition: int) -> bool:
        return not self.partitions or partition in self.partitions


def parse_topic(text: str) -> TopicScope:
    """``name`` or ``name:p,p,...``; a partition that is not a non-negative integer names itself."""
    name, sep, rest = text.partition(":")
    if not name:
        raise ReplayError(f"--topic needs a topic name, got {text!r}")
    if not sep:
        return TopicScope(name)
    parts = set()
    for piece in rest.split(","):
        if not piece.strip().isdigit():
            raise ReplayError(f"--topic {text!r}: partition {piece!r} is not a non-negative integer")
        parts.add(int(piece))
    return TopicScope(name, frozenset(parts))


_SHORT = re.compile(r"(\d+)([smhd])")
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``PT10M``, ``P1DT2H``, or the short ``10m`` / ``2h`` / ``90s`` / ``1d``; positive."""
    text = text.strip()
    short = _SHORT.fullmatch(text)
    if short:
        seconds = int(short.group(1)) * _UNIT_S[short.group(2)]
    else:
        iso = _ISO.fullmatch(text)
        if iso is None or not any(iso.groups()) or text.upper().endswith("T"):
            raise ReplayError(f"--by-duration wants PT10M, P1DT2H or 10m/2h/90s/1d, got {text!r}")
        days, hours, minutes, secs = (int(g or 0) for g in iso.groups())
        seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds <= 0:
        raise ReplayError(f"--by-duration must be positive, got {text!r}")
    return timedelta(seconds=seconds)


def parse_datetime(text: str) -> int:
    """An ISO 8601 time to epoch ms; one without a zone is UTC (said in ``--help``)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"--to-datetime wants ISO 8601 (2025-05-01T12:00:00Z), got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def read_offsets_file(path: Path) -> dict[TopicPartitionKey, int]:
    """A plan exported with ``--export`` (its ``partitions[].new``), or a CSV ``topic,partition,offset``
    as ``kafka-consumer-groups --export`` writes it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ReplayError(f"--from-file {path}: {exc.strerror}") from exc
    if text.lstrip().startswith("{"):
        try:
            doc: Any = json.loads(text)
            plans = doc.get("plans", [doc])
            rows = [row for plan in plans for row in plan["partitions"]]
            return {(str(r["topic"]), int(r["partition"])): int(r["new"]) for r in rows}
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayError(f"--from-file {path}: not a plan exported by storee replay ({exc})") from exc
    offsets = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 3 or not cells[1].isdigit() or not cells[2].lstrip("-").isdigit():
            raise ReplayError(f"--from-file {path}:{number}: want topic,partition,offset, got {line!r}")
        offsets[(cells[0], int(cells[1]))] = int(cells[2])
    return offsets
