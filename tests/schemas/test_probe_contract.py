"""The probe's account and story id prefix go together both ways, so an id alone tells a probe."""

from __future__ import annotations

import pytest

from schemas.contract import check
from schemas.events import StorySubmitted
from schemas.exceptions import ContractError
from schemas.ids import PROBE_ACCOUNT, PROBE_STORY_PREFIX, is_probe_story, task_id
from schemas.records import GenerationParams, Scene, TaskType, Tier

PARAMS = GenerationParams(width=64, height=64, num_frames=5, fps=8, num_inference_steps=2, guidance_scale=5.0)


def _story(story_id: str, account_id: str) -> StorySubmitted:
    return StorySubmitted(
        story_id=story_id,
        account_id=account_id,
        tier=Tier.FREE,
        task_type=TaskType.TEXT_TO_VIDEO,
        model="default",
        params=PARAMS,
        scenes=(Scene(index=0, prompt="probe"),),
        submitted_at=1,
    )


def test_the_probe_account_with_a_probe_id_is_valid() -> None:
    check(_story(PROBE_STORY_PREFIX + "free-1", PROBE_ACCOUNT))


@pytest.mark.parametrize(
    ("story_id", "account_id"),
    [(PROBE_STORY_PREFIX + "x", "acct_0123"), ("0123abcd", PROBE_ACCOUNT)],
)
def test_a_probe_id_and_another_account_or_the_reverse_break_the_contract(
    story_id: str, account_id: str
) -> None:
    with pytest.raises(ContractError) as caught:
        check(_story(story_id, account_id))
    assert caught.value.field == "account_id"


def test_task_ids_of_a_probe_story_are_probes_too() -> None:
    assert is_probe_story(task_id(PROBE_STORY_PREFIX + "p-1", 0))
    assert not is_probe_story("0123abcd") and not is_probe_story("storee-probe")
