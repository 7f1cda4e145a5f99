"""The replay plan as a rich table: the same data ``--json`` prints."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ops.replay.plan import ReplayPlan, iso_ms


def render(plan: ReplayPlan) -> Group:
    first, last = plan.time_range
    span = f"records from {iso_ms(first)} to {iso_ms(last)}" if first is not None else "no records redone"
    title = (
        f"group {plan.group}  {plan.spec.describe()}  reprocess {plan.reprocess}, skip {plan.skip}; {span}"
    )
    table = Table("topic", "p", "committed", "new", "log start..end", "reprocess", "skip", "records at",
                  "notes", title=title, title_justify="left")  # fmt: skip
    for row in plan.partitions:
        times = "" if row.first_ms is None else f"{iso_ms(row.first_ms)} .. {iso_ms(row.last_ms)}"
        table.add_row(
            row.topic,
            str(row.partition),
            "-" if row.committed is None else str(row.committed),
            str(row.new) if row.changes else f"{row.new} (same)",
            f"{row.log_start}..{row.log_end}",
            str(row.reprocess),
            str(row.skip),
            times,
            "; ".join(row.notes),
        )
    parts: list[Table | Text] = [table]
    for stage, effect in plan.effects.items():
        parts.append(Text(f"{stage}: {effect}"))
    if plan.rerender is not None:
        parts.append(Text(rerender_line(plan), style="yellow"))
    for refusal in plan.refusals:
        parts.append(Text(f"refused: {refusal}", style="red"))
    return Group(*parts)


def rerender_line(plan: ReplayPlan) -> str:
    """What ``--execute`` will have the GPU consumers render again, in one line."""
    request = plan.rerender
    if request is None:
        return ""
    if not request.windows:
        return f"re-render: nothing is re-delivered; the request of {request.group} is cleared"
    windows = ", ".join(f"{w.topic}[{w.partition}]@{w.first}..{w.last}" for w in request.windows)
    first, last = plan.time_range
    span = f" (batched {iso_ms(first)} to {iso_ms(last)})" if first is not None else ""
    where = f"; stored at {plan.rerender_uri}" if plan.rerender_uri else ""
    return (
        f"re-render: every task of {request.records} batch record(s) {windows}{span} is rendered again, "
        f"stored output or not; the request ends at {request.as_dict()['expires_at']} or when the group "
        f"is reset again{where}"
    )
