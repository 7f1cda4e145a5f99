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
    for refusal in plan.refusals:
        parts.append(Text(f"refused: {refusal}", style="red"))
    return Group(*parts)
