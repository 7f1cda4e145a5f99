"""Which tasks a member may run: ids that are safe path components, sequences with room for results."""

from __future__ import annotations

import dataclasses

import pytest

from gpu_consumers.admission import component_problem, safe_component, task_problem
from gpu_consumers.exceptions import InvalidTask
from gpu_consumers.results import END_STEP, MAX_SEQUENCE
from tests.gpu_consumers.helpers import make_batch


@pytest.mark.parametrize("value", ["a", "0f3c", "story-1.v2_x", "3f9a:12", "A" * 200])
def test_safe_components(value: str) -> None:
    assert component_problem("task_id", value) is None
    assert safe_component("task_id", value) == value


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "a\x00b", "a b", "é", "x" * 201, "s:0/../.."],
)
def test_unsafe_components_are_refused_not_rewritten(value: str) -> None:
    problem = component_problem("story_id", value)
    assert problem is not None and problem.startswith("story_id")
    with pytest.raises(InvalidTask, match="story_id"):
        safe_component("story_id", value)


def test_a_task_needs_safe_ids_and_room_in_its_sequence() -> None:
    task = make_batch(["a fox"]).tasks[0]
    assert task_problem(task) is None
    assert task_problem(dataclasses.replace(task, sequence=MAX_SEQUENCE - END_STEP)) is None
    late = task_problem(dataclasses.replace(task, sequence=MAX_SEQUENCE - END_STEP + 1))
    assert isinstance(late, InvalidTask) and "leaves no room" in str(late)
    assert "leaves no room" in str(task_problem(dataclasses.replace(task, sequence=-1)))
    escaping = task_problem(dataclasses.replace(task, task_id="../../etc/passwd"))
    assert isinstance(escaping, InvalidTask) and "task_id '../../etc/passwd'" in str(escaping)
