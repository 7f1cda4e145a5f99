"""``storee lag`` for people: one row per group and topic, then what the worst partitions say."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ops.lag.snapshot import LagSnapshot
from ops.lag.status import GroupStatus, PartitionStatus

_STYLE = {
    PartitionStatus.OK: "green",
    PartitionStatus.WARN: "yellow",
    PartitionStatus.REWIND: "magenta",
    PartitionStatus.STALL: "red",
    PartitionStatus.STOP: "red",
    GroupStatus.OK: "green",
    GroupStatus.WARN: "yellow",
    GroupStatus.ERR: "bold red",
}
# Partitions named under the table: enough to point at the trouble, not a page of it.
_NOTES = 8


def seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def render(snapshot: LagSnapshot) -> RenderableType:
    table = Table(
        title=f"consumer lag (window {snapshot.window_s:g}s, read in {snapshot.duration_s * 1000:.0f} ms)",
        title_justify="left",
    )
    for name, justify in (
        ("group", "left"),
        ("topic", "left"),
        ("tier", "left"),
        ("partitions", "right"),
        ("lag", "right"),
        ("lag s", "right"),
        ("status", "left"),
        ("members", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    notes: list[Text] = []
    for group in snapshot.groups:
        status = group.status
        if not group.topics:
            table.add_row(
                group.group, "(no topic found)", "-", "0", "0", "0.0", Text(status.value, _STYLE[status]), "0"
            )
        for topic in group.topics:
            topic_status = topic.status
            label = Text(topic_status.value, _STYLE[topic_status])
            if status is not GroupStatus.OK:
                label.append(f" ({status.value})", _STYLE[status])
            table.add_row(
                group.group,
                topic.topic,
                topic.tier,
                str(len(topic.partitions)),
                f"{topic.lag:,}",
                seconds(topic.lag_seconds),
                label,
                f"{len(topic.members)}/{len(group.members)} {group.state}",
            )
        for view in group.partitions:
            if view.verdict.status is not PartitionStatus.OK and len(notes) < _NOTES:
                r, verdict = view.reading, view.verdict
                notes.append(
                    Text(f"{r.group} {r.topic}[{r.partition}] {verdict.status.value}: {verdict.reason}")
                )
    return Group(table, *notes)
