"""The contract check: what a decoded event must satisfy beyond its Avro types (pure, no I/O).

Avro says a field is a string or a long; the rest of the contract lives here, once, for every consumer
(:meth:`schemas.codec.Codec.read` decodes and checks). A decodable event that breaks it raises
:class:`~schemas.exceptions.ContractError` naming the field, and goes to the DLQ like undecodable bytes.

The rules, and why:

* ids: ``story_id`` and ``account_id`` are 1-128 characters of letters, digits, ``.``, ``_`` and
  ``-``, starting with a letter or digit, so an id is always one safe path component (outputs live under
  ``outputs/<story_id>/``); ``task_id`` is ``<story_id>:<scene index>``; ``batch_id`` is ``b-`` and 24
  hex digits, and a BatchReady's is the one its task ids give; event and consumer ids are short tokens.
* numbers: ``sequence`` and timestamps in ``[0, 2**53]`` (so ``sequence + 1`` always encodes, and any
  JSON reader keeps them exact); attempts up to 100, ten per run of a story (:func:`retry_of`); scene
  indexes below ``task_count`` and at most :data:`MAX_TASKS` tasks; floats finite; sizes, frames, steps,
  guidance and seeds within the ranges below, generous for every model we serve but far from what
  breaks an allocator.
* the probe: a story id starting with ``storee-probe-`` belongs to the account ``storee-probe`` and
  that account submits nothing else (:data:`schemas.ids.PROBE_ACCOUNT`), so an id tells a probe.
* text: prompts, story text, titles and messages have a length cap.

Which pools exist is deployment configuration, not contract: consumers check that themselves and fail
the named tasks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from schemas.events import (
    BatchReady,
    Event,
    StoryCancelled,
    StoryCompleted,
    StorySubmitted,
    TaskCompleted,
    TaskExpired,
    TaskFailed,
    TaskProgress,
    TaskRequested,
    TaskStarted,
)
from schemas.exceptions import ContractError
from schemas.ids import BATCH_ID_PREFIX, PROBE_ACCOUNT, batch_id, is_probe_story
from schemas.records import BatchTask, GenerationParams, MediaRef, OutputArtifact, Scene
from schemas.webhooks import InvalidEventFilter, parse_filter

MAX_ID_CHARS = 128
MAX_SEQUENCE = 2**53
MAX_TIME_MS = 2**53
MAX_ATTEMPT = 100
# A story's runs: its first (retry 0) and each POST /v1/stories/{id}/retry. Run N's tasks carry attempts
# N*10 to N*10+9 (the GPU consumers' own retries count up inside that range), so an event's attempt says
# which run it belongs to and the job view lets a newer run reopen a task an older one ended.
ATTEMPTS_PER_RETRY = 10
MAX_STORY_RETRIES = MAX_ATTEMPT // ATTEMPTS_PER_RETRY - 1
MAX_TASKS = 1024
MAX_PROMPT_CHARS = 20_000
MAX_STORY_TEXT_CHARS = 1_000_000
MAX_TITLE_CHARS = 1_000
MAX_MESSAGE_CHARS = 64 * 1024
MAX_URI_CHARS = 2_048
MAX_OUTPUTS = 64
MAX_DIMENSION = 8_192
MAX_FRAMES = 10_000
MAX_FPS = 240
MAX_STEPS = 10_000
MAX_GUIDANCE = 100.0
MAX_SEED = 2**63 - 1
MAX_AUDIO_S = 3_600.0


def retry_of(attempt: int) -> int:
    """The run of its story an attempt belongs to (0: the first run)."""
    return max(attempt, 0) // ATTEMPTS_PER_RETRY


def first_attempt(retry: int) -> int:
    """The attempt a run's tasks are requested with."""
    return retry * ATTEMPTS_PER_RETRY


def attempt_within_run(base: int, retries: int) -> int:
    """Attempt ``base`` after ``retries`` in-place retries, kept inside ``base``'s run and the bounds."""
    last = first_attempt(retry_of(base)) + ATTEMPTS_PER_RETRY - 1
    return max(0, min(base + retries, last, MAX_ATTEMPT))


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no spaces
_POOL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MODEL = re.compile(r"[\x21-\x7e]{1,256}")
_BATCH_ID = re.compile(re.escape(BATCH_ID_PREFIX) + r"[0-9a-f]{24}")
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+")


class _Check:
    """Checks one event, remembering which of its ids are trustworthy for naming it."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.story_id: str | None = None
        self.task_id: str | None = None

    def fail(self, field: str, message: str) -> ContractError:
        return ContractError(field, message, event=self.event, story_id=self.story_id, task_id=self.task_id)

    def id(self, field: str, value: str) -> None:
        if not _ID.fullmatch(value):
            raise self.fail(
                field,
                f"{_show(value)} is not an id (1-{MAX_ID_CHARS} letters, digits, '.', '_' or '-', "
                "starting with a letter or digit)",
            )

    def token(self, field: str, value: str, pattern: re.Pattern[str] = _TOKEN) -> None:
        if not pattern.fullmatch(value):
            raise self.fail(field, f"{_show(value)} does not match {pattern.pattern}")

    def story(self, field: str, value: str) -> None:
        self.id(field, value)
        if self.story_id is None:
            self.story_id = value

    def task(self, field: str, value: str, story_id: str, index: int | None = None) -> None:
        head, sep, tail = value.rpartition(":")
        if not sep or head != story_id or not _INDEX.fullmatch(tail):
            raise self.fail(field, f"{_show(value)} is not '<story_id>:<scene index>' of story {story_id!r}")
        if index is not None and int(tail) != index:
            raise self.fail(field, f"{_show(value)} names scene {tail}, but scene_index is {index}")
        if int(tail) >= MAX_TASKS:
            raise self.fail(field, f"scene {tail} is beyond the {MAX_TASKS} tasks a story may have")
        if self.task_id is None:
            self.task_id = value

    def int_range(self, field: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            raise self.fail(field, f"{value} is outside [{low}, {high}]")

    def float_range(self, field: str, value: float, low: float, high: float) -> None:
        if not math.isfinite(value) or not low <= value <= high:
            raise self.fail(field, f"{value} is outside [{low}, {high}]")

    def text(self, field: str, value: str | None, limit: int, *, required: bool = False) -> None:
        if value is None:
            if required:
                raise self.fail(field, "must not be null")
            return
        if len(value) > limit:
            raise self.fail(field, f"{len(value)} characters, more than {limit}")
        if required and not value.strip():
            raise self.fail(field, "must not be empty")

    def time(self, field: str, value: int | None) -> None:
        if value is not None:
            self.int_range(field, value, 0, MAX_TIME_MS)

    def params(self, field: str, params: GenerationParams) -> None:
        self.int_range(f"{field}.width", params.width, 0, MAX_DIMENSION)
        self.int_range(f"{field}.height", params.height, 0, MAX_DIMENSION)
        self.int_range(f"{field}.num_frames", params.num_frames, 0, MAX_FRAMES)
        self.int_range(f"{field}.fps", params.fps, 0, MAX_FPS)
        self.int_range(f"{field}.num_inference_steps", params.num_inference_steps, 0, MAX_STEPS)
        self.float_range(f"{field}.guidance_scale", params.guidance_scale, 0.0, MAX_GUIDANCE)
        if params.seed is not None:
            self.int_range(f"{field}.seed", params.seed, 0, MAX_SEED)
        self.text(f"{field}.negative_prompt", params.negative_prompt, MAX_PROMPT_CHARS)
        if params.audio_length_s is not None:
            self.float_range(f"{field}.audio_length_s", params.audio_length_s, 0.0, MAX_AUDIO_S)

    def media(self, field: str, ref: MediaRef | None) -> None:
        if ref is None:
            return
        self.text(f"{field}.uri", ref.uri, MAX_URI_CHARS, required=True)
        self.token(f"{field}.media_type", ref.media_type, _MEDIA_TYPE)
        if ref.sha256 is not None:
            self.token(f"{field}.sha256", ref.sha256, _SHA256)

    def common(self) -> None:
        event = self.event
        self.token("event_id", event.event_id)
        self.time("event_time", event.event_time)
        self.int_range("sequence", event.sequence, 0, MAX_SEQUENCE)


def check(event: Event) -> Event:
    """Return ``event`` if it keeps the contract; raise :class:`ContractError` naming the field if not."""
    checker = _Check(event)
    rules = _RULES.get(type(event))
    # Ids first, so a later failure can name the story and task.
    if rules is not None:
        rules(checker, event)
    checker.common()
    return event


def _story_submitted(c: _Check, e: StorySubmitted) -> None:
    c.story("story_id", e.story_id)
    c.id("account_id", e.account_id)
    if is_probe_story(e.story_id) != (e.account_id == PROBE_ACCOUNT):
        # Rooms recognise a probe by its story id alone; a user's story must never look like one.
        raise c.fail(
            "account_id", f"only the probe account {PROBE_ACCOUNT!r} submits probe stories, and only those"
        )
    c.token("model", e.model, _MODEL)
    c.text("title", e.title, MAX_TITLE_CHARS)
    c.params("params", e.params)
    if len(e.scenes) > MAX_TASKS:
        raise c.fail("scenes", f"{len(e.scenes)} scenes, more than {MAX_TASKS}")
    seen: set[int] = set()
    for i, scene in enumerate(e.scenes):
        _scene(c, f"scenes[{i}]", scene)
        if scene.index in seen:
            raise c.fail(f"scenes[{i}].index", f"index {scene.index} appears twice")
        seen.add(scene.index)
    c.text("story_text", e.story_text, MAX_STORY_TEXT_CHARS)
    c.media("input", e.input)
    c.text("callback_url", e.callback_url, MAX_URI_CHARS)
    try:
        parse_filter(list(e.webhook_events) or None)
    except InvalidEventFilter as exc:
        raise c.fail("webhook_events", str(exc)) from None
    if len(set(e.webhook_events)) != len(e.webhook_events):
        raise c.fail("webhook_events", "an event is named twice")
    c.text("idempotency_key", e.idempotency_key, 255)
    c.time("submitted_at", e.submitted_at)
    c.time("deadline", e.deadline)


def _scene(c: _Check, field: str, scene: Scene) -> None:
    c.int_range(f"{field}.index", scene.index, 0, MAX_TASKS - 1)
    c.text(f"{field}.prompt", scene.prompt, MAX_PROMPT_CHARS)
    c.media(f"{field}.input", scene.input)


def _task_requested(c: _Check, e: TaskRequested) -> None:
    c.story("story_id", e.story_id)
    c.task("task_id", e.task_id, e.story_id, e.scene_index)
    c.int_range("task_count", e.task_count, 1, MAX_TASKS)
    c.int_range("scene_index", e.scene_index, 0, e.task_count - 1)
    c.id("account_id", e.account_id)
    c.token("model", e.model, _MODEL)
    c.text("prompt", e.prompt, MAX_PROMPT_CHARS, required=True)
    c.params("params", e.params)
    c.media("input", e.input)
    c.int_range("attempt", e.attempt, 0, MAX_ATTEMPT)
    c.time("deadline", e.deadline)


def _batch_task(c: _Check, field: str, task: BatchTask) -> None:
    c.id(f"{field}.story_id", task.story_id)
    c.task(f"{field}.task_id", task.task_id, task.story_id, task.scene_index)
    c.id(f"{field}.account_id", task.account_id)
    c.int_range(f"{field}.sequence", task.sequence, 0, MAX_SEQUENCE)
    c.text(f"{field}.prompt", task.prompt, MAX_PROMPT_CHARS, required=True)
    c.params(f"{field}.params", task.params)
    c.media(f"{field}.input", task.input)
    c.int_range(f"{field}.attempt", task.attempt, 0, MAX_ATTEMPT)
    c.time(f"{field}.deadline", task.deadline)


def _batch_ready(c: _Check, e: BatchReady) -> None:
    if not 1 <= len(e.tasks) <= MAX_TASKS:
        raise c.fail("tasks", f"{len(e.tasks)} tasks; a batch holds 1 to {MAX_TASKS}")
    for i, task in enumerate(e.tasks):
        _batch_task(c, f"tasks[{i}]", task)
    ids = [task.task_id for task in e.tasks]
    if len(set(ids)) != len(ids):
        raise c.fail("tasks", "a task appears twice in the batch")
    c.token("batch_id", e.batch_id, _BATCH_ID)
    if e.batch_id != batch_id(ids):
        raise c.fail("batch_id", f"{e.batch_id} is not the id of its tasks ({batch_id(ids)})")
    c.token("pool", e.pool, _POOL)
    c.token("model", e.model, _MODEL)
    c.params("params", e.params)
    c.time("deadline", e.deadline)


def _task_event(c: _Check, e: Any) -> None:
    """The fields TaskStarted, TaskProgress, TaskCompleted, TaskFailed and TaskExpired share."""
    c.story("story_id", e.story_id)
    c.task("task_id", e.task_id, e.story_id)
    if getattr(e, "batch_id", None) is not None:
        c.token("batch_id", e.batch_id)  # its shape is BatchReady's rule; here it only labels the run
    if hasattr(e, "consumer_id"):
        c.token("consumer_id", e.consumer_id)
    if hasattr(e, "attempt"):
        c.int_range("attempt", e.attempt, 0, MAX_ATTEMPT)


def _task_progress(c: _Check, e: TaskProgress) -> None:
    _task_event(c, e)
    c.int_range("total_steps", e.total_steps, 1, MAX_STEPS)
    c.int_range("step", e.step, 0, e.total_steps)


def _task_completed(c: _Check, e: TaskCompleted) -> None:
    _task_event(c, e)
    if not 1 <= len(e.outputs) <= MAX_OUTPUTS:
        raise c.fail("outputs", f"{len(e.outputs)} outputs; a task has 1 to {MAX_OUTPUTS}")
    for i, output in enumerate(e.outputs):
        _output(c, f"outputs[{i}]", output)
    if e.seed is not None:
        c.int_range("seed", e.seed, 0, MAX_SEED)
    c.int_range("run_ms", e.run_ms, 0, MAX_TIME_MS)
    c.float_range("gpu_seconds", e.gpu_seconds, 0.0, 1e9)


def _output(c: _Check, field: str, output: OutputArtifact) -> None:
    c.text(f"{field}.uri", output.uri, MAX_URI_CHARS, required=True)
    c.token(f"{field}.media_type", output.media_type, _MEDIA_TYPE)
    if output.duration_s is not None:
        c.float_range(f"{field}.duration_s", output.duration_s, 0.0, 1e7)
    if output.size_bytes is not None:
        c.int_range(f"{field}.size_bytes", output.size_bytes, 0, 2**53)
    if output.sha256 is not None:
        c.token(f"{field}.sha256", output.sha256, _SHA256)


def _task_failed(c: _Check, e: TaskFailed) -> None:
    _task_event(c, e)
    c.text("error_class", e.error_class, 1_000, required=True)
    c.text("message", e.message, MAX_MESSAGE_CHARS)


def _task_expired(c: _Check, e: TaskExpired) -> None:
    _task_event(c, e)
    c.time("deadline", e.deadline)


def _story_cancelled(c: _Check, e: StoryCancelled) -> None:
    c.story("story_id", e.story_id)
    c.id("account_id", e.account_id)
    c.text("reason", e.reason, MAX_MESSAGE_CHARS)


def _story_completed(c: _Check, e: StoryCompleted) -> None:
    c.story("story_id", e.story_id)
    c.id("account_id", e.account_id)
    for name in ("tasks_completed", "tasks_failed", "tasks_expired"):
        c.int_range(name, getattr(e, name), 0, MAX_TASKS)
    c.float_range("gpu_seconds", e.gpu_seconds, 0.0, 1e12)
    c.int_range("retry", e.retry, 0, MAX_STORY_RETRIES)


_RULES: dict[type, Callable[[_Check, Any], None]] = {
    StorySubmitted: _story_submitted,
    TaskRequested: _task_requested,
    BatchReady: _batch_ready,
    TaskStarted: _task_event,
    TaskProgress: _task_progress,
    TaskCompleted: _task_completed,
    TaskFailed: _task_failed,
    TaskExpired: _task_expired,
    StoryCancelled: _story_cancelled,
    StoryCompleted: _story_completed,
}


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")
