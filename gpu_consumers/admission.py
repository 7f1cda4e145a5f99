"""Which tasks of a batch this member may run at all: pure checks, no I/O.

A task's output lives at ``outputs/<story_id>/<task_id>.<ext>``, so both ids must be one safe path
component: letters, digits, ``.``, ``_``, ``:`` and ``-``, starting with a letter or digit (so never
``.``, ``..``, a hidden name, a separator or a NUL). A bad id is refused with a reason, never rewritten:
a rewritten id could land on another task's output. Result events carry the task's sequence plus a
step (:mod:`gpu_consumers.results`), so a sequence without room for that step (or a negative one) is
refused too. The schema contract (:mod:`schemas.contract`) already rejects such records when they are
decoded; these checks keep the member safe without it.
"""

from __future__ import annotations

import re

from gpu_consumers.exceptions import InvalidTask
from gpu_consumers.results import END_STEP, MAX_SEQUENCE
from schemas.records import BatchTask

MAX_COMPONENT_CHARS = 200
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def component_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not a safe path component (``None`` if it is); the reason names ``name``."""
    if not value:
        return f"{name} is empty"
    if len(value) > MAX_COMPONENT_CHARS:
        return f"{name} has {len(value)} characters, more than {MAX_COMPONENT_CHARS}"
    if not _COMPONENT.fullmatch(value):
        shown = value if len(value) <= 60 else value[:60] + "..."
        return (
            f"{name} {shown!r} is not a safe path component (letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit)"
        )
    return None


def safe_component(name: str, value: str) -> str:
    """Return ``value`` if it is a safe path component; raise :class:`InvalidTask` naming ``name`` if not."""
    problem = component_problem(name, value)
    if problem is not None:
        raise InvalidTask(problem)
    return value


def task_problem(task: BatchTask) -> InvalidTask | None:
    """Why this member must not run ``task`` (``None`` when it may)."""
    for name, value in (("story_id", task.story_id), ("task_id", task.task_id)):
        problem = component_problem(name, value)
        if problem is not None:
            return InvalidTask(problem)
    if not 0 <= task.sequence <= MAX_SEQUENCE - END_STEP:
        return InvalidTask(
            f"task {task.task_id} has sequence {task.sequence}, which leaves no room for its result "
            f"events (0 to {MAX_SEQUENCE - END_STEP})"
        )
    return None
