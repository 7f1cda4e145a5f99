"""The splitter's logic: one StorySubmitted becomes one TaskRequested per scene (pure, no I/O).

Explicit scenes are used as given (ordered by their index). Raw text is split deterministically:
paragraphs (blank lines) first, then sentences grouped up to ``scene_max_chars``; a paragraph always
starts a new scene. When that gives more than ``max_scenes`` scenes, neighbouring scenes are merged
evenly rather than dropped, so no text is lost. A leading ``Style: ...`` line is the story's style
context: it and the title go into every text-derived scene's prompt.

Pure logic, named for what it computes; its I/O shell is :mod:`streams.split_agent`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.events import StorySubmitted, TaskRequested
from schemas.ids import now_ms, task_id
from schemas.records import MediaRef
from streams.event_ids import derived_event_id
from streams.exceptions import EmptyStory

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_STYLE_LINE = re.compile(r"^\s*style\s*:\s*(?P<style>.+?)\s*$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class SplitPolicy:
    """How stories are split: at most ``max_scenes`` scenes, text scenes of about ``scene_max_chars``."""

    max_scenes: int = 64
    scene_max_chars: int = 400
    task_ttl_ms: int = 300_000
    max_task_ttl_ms: int = 7 * 86_400_000

    def __post_init__(self) -> None:
        if self.max_scenes < 1:
            raise ValueError(f"max_scenes must be >= 1, got {self.max_scenes}")
        if self.scene_max_chars < 1:
            raise ValueError(f"scene_max_chars must be >= 1, got {self.scene_max_chars}")


@dataclass(frozen=True, slots=True)
class ScenePlan:
    """One scene to generate: its prompt and its input, if any."""

    prompt: str
    input: MediaRef | None


def plan_scenes(story: StorySubmitted, policy: SplitPolicy) -> list[ScenePlan]:
    """The scenes of a story; raise :class:`EmptyStory` when it has none."""
    if story.scenes:
        if len(story.scenes) > policy.max_scenes:
            raise EmptyStory(
                f"story has {len(story.scenes)} scenes, more than MAX_SCENES={policy.max_scenes}"
            )
        ordered = sorted(story.scenes, key=lambda scene: scene.index)
        plans = [ScenePlan(scene.prompt.strip(), scene.input or story.input) for scene in ordered]
        if not all(plan.prompt for plan in plans):
            raise EmptyStory("a scene has an empty prompt")
        return plans
    style, body = _style_and_body(story.story_text or "")
    chunks = split_text(body, policy.scene_max_chars)
    if not chunks:
        raise EmptyStory("story has no scenes and no text to split")
    chunks = _merge_evenly(chunks, policy.max_scenes)
    return [ScenePlan(_prompt(story.title, chunk, style), story.input) for chunk in chunks]


def split(story: StorySubmitted, policy: SplitPolicy, *, now: int | None = None) -> list[TaskRequested]:
    """One TaskRequested per scene, with deterministic task ids and event ids."""
    plans = plan_scenes(story, policy)
    event_time = now_ms() if now is None else now
    deadline = deadline_of(story, policy)
    count = len(plans)
    return [
        TaskRequested(
            event_id=derived_event_id("TaskRequested", task_id(story.story_id, index), 0),
            event_time=event_time,
            sequence=story.sequence + 1,
            story_id=story.story_id,
            task_id=task_id(story.story_id, index),
            account_id=story.account_id,
            tier=story.tier,
            task_type=story.task_type,
            model=story.model,
            scene_index=index,
            task_count=count,
            prompt=plan.prompt,
            params=story.params,
            input=plan.input,
            attempt=0,
            deadline=deadline,
        )
        for index, plan in enumerate(plans)
    ]


def deadline_of(story: StorySubmitted, policy: SplitPolicy) -> int:
    """When the story's tasks must have started: its own deadline (``start_within_s`` at the gateway),
    else ``TASK_TTL`` after submission; never later than ``MAX_TASK_TTL`` after it."""
    latest = story.submitted_at + policy.max_task_ttl_ms
    if story.deadline is None:
        return min(story.submitted_at + policy.task_ttl_ms, latest)
    return min(story.deadline, latest)


def split_text(text: str, max_chars: int) -> list[str]:
    """Paragraphs, then sentences grouped up to ``max_chars`` (a longer sentence stays whole)."""
    chunks: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        sentences = [_SPACE.sub(" ", s).strip() for s in _SENTENCE_END.split(paragraph.strip())]
        current = ""
        for sentence in filter(None, sentences):
            if current and len(current) + 1 + len(sentence) > max_chars:
                chunks.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}" if current else sentence
        if current:
            chunks.append(current)
    return chunks


def _merge_evenly(chunks: list[str], limit: int) -> list[str]:
    if len(chunks) <= limit:
        return chunks
    groups: list[list[str]] = [[] for _ in range(limit)]
    for i, chunk in enumerate(chunks):
        groups[i * limit // len(chunks)].append(chunk)
    return [" ".join(group) for group in groups]


def _style_and_body(text: str) -> tuple[str | None, str]:
    lines = text.strip().splitlines()
    if lines:
        match = _STYLE_LINE.match(lines[0])
        if match:
            return match["style"], "\n".join(lines[1:])
    return None, text


def _prompt(title: str | None, chunk: str, style: str | None) -> str:
    parts = []
    if title and title.strip():
        parts.append(f"{title.strip()}:")
    parts.append(chunk)
    if style:
        parts.append(f"Style: {style.rstrip('.')}.")
    return " ".join(parts)
