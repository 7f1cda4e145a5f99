from __future__ import annotations

import pytest

from schemas.records import MediaRef, Scene
from streams.exceptions import EmptyStory
from streams.splitting import SplitPolicy, split, split_text
from tests.streams.factories import POLICY, T0, story


def test_explicit_scenes_are_used_as_given_with_deterministic_ids():
    image = MediaRef(uri="s3://in/a.png", media_type="image/png")
    submitted = story(scenes=(Scene(index=1, prompt="b", input=image), Scene(index=0, prompt="a")))
    tasks = split(submitted, POLICY, now=T0 + 5)
    assert [t.prompt for t in tasks] == ["a", "b"]
    assert [t.task_id for t in tasks] == ["s1:0", "s1:1"]
    assert [t.scene_index for t in tasks] == [0, 1]
    assert {t.task_count for t in tasks} == {2}
    assert tasks[1].input == image and tasks[0].input is None
    assert tasks[0].deadline == T0 + POLICY.task_ttl_ms
    assert tasks[0].sequence == submitted.sequence + 1
    again = split(submitted, POLICY, now=T0 + 99)
    assert [t.event_id for t in again] == [
        t.event_id for t in tasks
    ]  # a replay emits duplicates, not new ids


def test_text_is_split_by_paragraphs_then_sentences_with_title_and_style():
    text = (
        "Style: watercolor, soft light\n"
        "The fox wakes. It stretches in the sun.\n\n"
        "It runs across the field! The snow flies behind it. A crow watches from a branch above."
    )
    tasks = split(story(text=text), POLICY, now=T0)
    prompts = [t.prompt for t in tasks]
    assert prompts[0] == "The fox: The fox wakes. It stretches in the sun. Style: watercolor, soft light."
    assert all(p.startswith("The fox: ") and p.endswith("Style: watercolor, soft light.") for p in prompts)
    assert len(tasks) == 3  # the second paragraph exceeds 80 characters and is split at a sentence
    assert split(story(text=text), POLICY, now=T0 + 1)[2].prompt == prompts[2]


def test_split_text_groups_sentences_up_to_the_limit():
    assert split_text("A b. C d. E f.", 9) == ["A b. C d.", "E f."]
    assert split_text("One very long sentence that exceeds.", 5) == ["One very long sentence that exceeds."]
    assert split_text("  \n\n ", 100) == []


def test_too_many_text_scenes_are_merged_evenly_not_dropped():
    text = "\n\n".join(f"Paragraph {i}." for i in range(20))
    tasks = split(story(text=text), SplitPolicy(max_scenes=4, scene_max_chars=400), now=T0)
    assert len(tasks) == 4
    joined = " ".join(t.prompt for t in tasks)
    assert all(f"Paragraph {i}." in joined for i in range(20))


@pytest.mark.parametrize(
    "submitted",
    [
        story(n_scenes=0),
        story(text="   \n\n  "),
        story(n_scenes=9),
        story(scenes=(Scene(index=0, prompt=" "),)),
    ],
    ids=["no-scenes", "blank-text", "too-many-scenes", "blank-scene"],
)
def test_a_story_without_usable_scenes_raises(submitted):
    with pytest.raises(EmptyStory):
        split(submitted, POLICY, now=T0)
