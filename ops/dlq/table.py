"""What ``storee dlq`` prints: one document per letter, step or replay, shown as a rich table or JSON.

The same dictionaries feed both, so ``--json`` never says less than the table.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from ops.dlq.letters import Letter, Marker
from ops.dlq.plan import ReplayPlan
from ops.dlq.replayer import Replayed
from schemas.codec import Codec
from schemas.events import BatchReady

PREVIEW_BYTES = 256


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _reason(letter: Letter) -> str:
    r = letter.reason
    return f"{r.error_class.rpartition('.')[2]}: {r.error_message}" if r is not None else letter.problem


def _replays(markers: Sequence[Marker]) -> list[dict[str, Any]]:
    return [
        {"at": iso(m.at), "to": f"{m.topic}[{m.partition}]@{m.offset}", "marker": str(m.id)} for m in markers
    ]


def letter_row(letter: Letter, replays: Sequence[Marker]) -> dict[str, Any]:
    """One line of ``dlq list``."""
    r = letter.reason
    return {
        "id": str(letter.id),
        "failed_at": iso(letter.failed_at),
        "service": r.service if r is not None else None,
        "origin": letter.origin,
        "key": _text(letter.record.key),
        "size": letter.size,
        "reason": _reason(letter),
        "replayed_from": letter.replayed_from,
        "replays": _replays(replays),
    }


def list_table(rows: Sequence[Mapping[str, Any]], topic: str) -> Table:
    table = Table(title=f"dead letters on {topic}", title_justify="left")
    for column in ("id", "failed at", "service", "origin", "key", "size", "reason", "replayed"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for row in rows:
        replays = row["replays"]
        replayed = ""
        if replays:
            replayed = f"replayed at {replays[-1]['at']}" + (
                f" (x{len(replays)})" if len(replays) > 1 else ""
            )
        table.add_row(
            row["id"], row["failed_at"], row["service"] or "?", row["origin"], row["key"] or "",
            str(row["size"]), row["reason"], replayed,
        )  # fmt: skip
    return table


def letter_document(letter: Letter, replays: Sequence[Marker], codec: Codec) -> dict[str, Any]:
    """Everything ``dlq show`` knows about one letter: headers, the event if it decodes, what it names."""
    doc = letter_row(letter, replays)
    doc["headers"] = [
        {"name": name, "value": _text(value) if _printable(value) else (value or b"").hex()}
        for name, value in letter.record.headers
    ]
    doc["event"], doc["decode_error"], doc["names"] = None, None, {}
    value = letter.record.value
    try:
        event = codec.decode(value or b"")
    except Exception as exc:  # noqa: BLE001 - a dead letter is often undecodable; the preview says what it is
        doc["decode_error"] = f"{type(exc).__name__}: {exc}"
        head = (value or b"")[:PREVIEW_BYTES]
        doc["preview"] = {"utf8": head.decode("utf-8", errors="replace"), "hex": head.hex()}
    else:
        doc["event"] = {"type": type(event).__name__, **_plain(dataclasses.asdict(event))}
        doc["names"] = _names(event)
    return doc


def _names(event: Any) -> dict[str, Any]:
    if isinstance(event, BatchReady):
        return {
            "batch_id": event.batch_id,
            "story_ids": sorted({t.story_id for t in event.tasks}),
            "task_ids": [t.task_id for t in event.tasks],
        }
    names = {}
    for field in ("story_id", "task_id", "account_id"):
        if getattr(event, field, None) is not None:
            names[field] = getattr(event, field)
    return names


def _printable(value: bytes | None) -> bool:
    if value is None:
        return True
    try:
        return value.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def plan_document(plan: ReplayPlan, execute: bool) -> dict[str, Any]:
    return {
        "execute": execute,
        "steps": [
            {
                "id": str(step.letter.id),
                "verdict": step.verdict.value,
                "to": step.topic,
                "key": _text(step.letter.record.key),
                "size": step.letter.size,
                "from": step.letter.origin,
                "note": step.note,
                "replays": _replays(step.earlier),
            }
            for step in plan.steps
        ],
        "to_replay": len(plan.to_replay),
        "refused": len(plan.refused),
    }


def plan_table(doc: Mapping[str, Any]) -> Table:
    title = "replay" if doc["execute"] else "replay plan (dry run: nothing is produced without --execute)"
    table = Table(title=title, title_justify="left")
    for column in ("id", "verdict", "from", "to", "key", "size", "note"):
        table.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for step in doc["steps"]:
        verdict = step["verdict"] if step["verdict"] == "replay" else f"[yellow]{step['verdict']}[/yellow]"
        table.add_row(
            step["id"],
            verdict,
            step["from"],
            step["to"] or "",
            step["key"] or "",
            str(step["size"]),
            step["note"],
        )
    return table


def replayed_rows(done: Sequence[Replayed]) -> list[dict[str, Any]]:
    return [{"id": str(r.step.letter.id), "to": r.landed, "marker": r.marker} for r in done]
