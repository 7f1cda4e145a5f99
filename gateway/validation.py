"""Checking submissions: pure functions from a parsed body to a :class:`Submission`, or an error.

Every rule raises :class:`~gateway.exceptions.InvalidRequest` with the JSON path of the offending value
(``params.width``, ``scenes[2].prompt``); nothing is silently corrected. Unknown fields are refused too,
so a typo (``num_frame``) is not quietly ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from gateway.exceptions import InvalidRequest, MalformedRequest
from gateway.settings import GatewaySettings
from schemas.records import GenerationParams, TaskType
from schemas.webhooks import DEFAULT_FILTER, InvalidEventFilter, WebhookEvent, parse_filter

MAX_SEED = 2**63 - 1
VIDEO_TYPES = (TaskType.TEXT_TO_VIDEO, TaskType.IMAGE_TO_VIDEO)
# Video defaults sized for the local tiny pipelines and a quick first clip; clients override them.
VIDEO_DEFAULTS: dict[str, Any] = {
    "width": 512,
    "height": 320,
    "num_frames": 25,
    "fps": 8,
    "num_inference_steps": 30,
    "guidance_scale": 5.0,
}
AUDIO_DEFAULTS: dict[str, Any] = {"num_inference_steps": 50, "guidance_scale": 3.5, "audio_length_s": 10.0}
# (minimum, maximum) of each number; sizes must also be multiples of 8 (the VAEs downsample by 8).
VIDEO_RANGES: dict[str, tuple[float, float]] = {
    "width": (64, 2048),
    "height": (64, 2048),
    "num_frames": (1, 257),
    "fps": (1, 60),
    "num_inference_steps": (1, 200),
    "guidance_scale": (0.0, 50.0),
}
AUDIO_RANGES: dict[str, tuple[float, float]] = {
    "num_inference_steps": (1, 200),
    "guidance_scale": (0.0, 50.0),
    "audio_length_s": (0.5, 600.0),
}
PARAM_FIELDS = frozenset({*VIDEO_RANGES, "seed", "negative_prompt", "audio_length_s"})
STORY_FIELDS = frozenset(
    {
        "title",
        "task_type",
        "model",
        "params",
        "story_text",
        "scenes",
        "start_within_s",
        "webhook_url",
        "webhook_events",
    }
)
JOB_FIELDS = (STORY_FIELDS - {"story_text", "scenes"}) | {"prompt"}


@dataclass(frozen=True, slots=True)
class Submission:
    """A checked story or job: what becomes one StorySubmitted."""

    task_type: TaskType
    model: str
    params: GenerationParams
    prompts: tuple[str, ...]  # one per scene; empty when story_text is given
    story_text: str | None
    title: str | None
    webhook_url: str | None
    start_within_s: int
    webhook_events: tuple[str, ...] = ()  # in WebhookEvent order; empty: the default, completed only

    def canonical(self) -> bytes:
        """A stable encoding of the request, to tell a retry from a different request under one key."""
        values = asdict(self)
        values["params"] = self.params.to_record()
        if not self.webhook_events:
            del values["webhook_events"]  # so a key's fingerprint from before the filter existed still holds
        return json.dumps(values, sort_keys=True, default=str).encode("utf-8")


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; refuse NaN and Infinity, which JSON does not have."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_story(body: Any, settings: GatewaySettings) -> Submission:
    """Check a ``POST /v1/stories`` body: either ``story_text`` or ``scenes``, plus the shared fields."""
    body = _object(body, "body", STORY_FIELDS)
    has_text, has_scenes = body.get("story_text") is not None, body.get("scenes") is not None
    if has_text == has_scenes:
        raise InvalidRequest("give exactly one of story_text and scenes", field="story_text")
    story_text: str | None = None
    prompts: tuple[str, ...] = ()
    if has_text:
        story_text = text(body["story_text"], "story_text", settings.max_story_chars)
    else:
        prompts = _scenes(body["scenes"], settings)
    task_type = _task_type(body.get("task_type", TaskType.TEXT_TO_VIDEO.value))
    if task_type == TaskType.IMAGE_TO_VIDEO:
        raise InvalidRequest(
            "image_to_video needs an image: use POST /v1/jobs with an upload", field="task_type"
        )
    return _submission(body, settings, task_type, prompts, story_text)


def parse_job(body: Any, settings: GatewaySettings, *, has_image: bool) -> Submission:
    """Check a ``POST /v1/jobs`` body: one ``prompt``; an uploaded image makes it image_to_video."""
    body = _object(body, "body", JOB_FIELDS)
    if body.get("prompt") is None:
        raise InvalidRequest("prompt is required", field="prompt")
    prompt = text(body["prompt"], "prompt", settings.max_prompt_chars)
    default = TaskType.IMAGE_TO_VIDEO if has_image else TaskType.TEXT_TO_VIDEO
    task_type = _task_type(body.get("task_type", default.value))
    if (task_type == TaskType.IMAGE_TO_VIDEO) != has_image:
        message = "image_to_video needs an image upload" if not has_image else "an image needs image_to_video"
        raise InvalidRequest(message, field="image" if not has_image else "task_type")
    return _submission(body, settings, task_type, (prompt,), None)


def _submission(
    body: Mapping[str, Any],
    settings: GatewaySettings,
    task_type: TaskType,
    prompts: tuple[str, ...],
    story_text: str | None,
) -> Submission:
    model = _pool(body.get("model", settings.pools[0]), task_type, settings)
    title = body.get("title")
    if title is not None:
        title = text(title, "title", settings.max_title_chars)
    webhook = body.get("webhook_url")
    if webhook is not None:
        webhook = text(webhook, "webhook_url", 2048)
    start_within = body.get("start_within_s", settings.task_ttl_s)
    start_within = int(number(start_within, "start_within_s", 1, settings.max_task_ttl_s, integer=True))
    params = check_params(body.get("params", {}), task_type, settings.max_prompt_chars)
    events = webhook_events(body.get("webhook_events"), has_url=webhook is not None)
    return Submission(task_type, model, params, prompts, story_text, title, webhook, start_within, events)


def webhook_events(names: Any, *, has_url: bool) -> tuple[str, ...]:
    """The chosen webhook events in :class:`WebhookEvent` order; ``()`` for the default (``completed``)."""
    if names is None:
        return ()
    if not has_url:
        raise InvalidRequest("webhook_events needs a webhook_url to call", field="webhook_events")
    try:
        chosen = parse_filter(names)
    except InvalidEventFilter as exc:
        raise InvalidRequest(str(exc), field="webhook_events") from None
    if chosen == DEFAULT_FILTER:
        return ()
    return tuple(event.value for event in WebhookEvent if event in chosen)


def check_params(raw: Any, task_type: TaskType, max_prompt_chars: int) -> GenerationParams:
    """Generation parameters with the task type's defaults filled in and every range checked."""
    raw = _object(raw, "params", PARAM_FIELDS)
    video = task_type in VIDEO_TYPES
    values = dict(VIDEO_DEFAULTS if video else AUDIO_DEFAULTS)
    ranges = VIDEO_RANGES if video else AUDIO_RANGES
    for name, value in raw.items():
        path = f"params.{name}"
        if name in ("seed", "negative_prompt") or value is None:
            continue
        if name not in ranges:
            raise InvalidRequest(f"{name} does not apply to {task_type.value}", field=path)
        low, high = ranges[name]
        integer = name != "guidance_scale" and name != "audio_length_s"
        values[name] = number(value, path, low, high, integer=integer)
        if name in ("width", "height") and values[name] % 8:
            raise InvalidRequest(f"{name} must be a multiple of 8, got {value}", field=path)
    seed = raw.get("seed")
    if seed is not None:
        seed = int(number(seed, "params.seed", 0, MAX_SEED, integer=True))
    negative = raw.get("negative_prompt")
    if negative is not None:
        negative = text(negative, "params.negative_prompt", max_prompt_chars, allow_empty=True)
    return GenerationParams(
        width=values.get("width", 0),
        height=values.get("height", 0),
        num_frames=values.get("num_frames", 0),
        fps=values.get("fps", 0),
        num_inference_steps=values["num_inference_steps"],
        guidance_scale=float(values["guidance_scale"]),
        seed=seed,
        negative_prompt=negative,
        audio_length_s=None if video else float(values["audio_length_s"]),
    )


def text(value: Any, field: str, max_chars: int, *, allow_empty: bool = False) -> str:
    """A string within ``max_chars``, not blank (unless allowed), encodable as UTF-8."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string", field=field)
    if not allow_empty and not value.strip():
        raise InvalidRequest(f"{field} must not be empty", field=field)
    if len(value) > max_chars:
        raise InvalidRequest(f"{field} is longer than {max_chars} characters ({len(value)})", field=field)
    if "\x00" in value:
        raise InvalidRequest(f"{field} must not contain NUL characters", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: Avro strings are UTF-8
        raise InvalidRequest(f"{field} is not valid Unicode text", field=field) from None
    return value


def number(value: Any, field: str, low: float, high: float, *, integer: bool) -> float | int:
    """A JSON number within ``[low, high]``; booleans and (for integers) fractions are refused."""
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidRequest(f"{field} must be {'an integer' if integer else 'a number'}", field=field)
    checked = cast("float | int", value)
    if not math.isfinite(checked) or not low <= checked <= high:
        raise InvalidRequest(f"{field} must be between {low} and {high}, got {value}", field=field)
    return checked


def _object(value: Any, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object", field=None if field == "body" else field)
    unknown = sorted(set(value) - allowed)
    if unknown:
        prefix = "" if field == "body" else f"{field}."
        raise InvalidRequest(f"unknown field {unknown[0]!r}", field=prefix + unknown[0])
    return value


def _task_type(value: Any) -> TaskType:
    try:
        return TaskType(value)
    except (ValueError, TypeError):
        raise InvalidRequest(
            f"task_type must be one of {[t.value for t in TaskType]}, got {value!r}", field="task_type"
        ) from None


def _pool(model: Any, task_type: TaskType, settings: GatewaySettings) -> str:
    """The pool ``model`` names, if it is configured and its pipeline runs ``task_type``.

    Work no pool runs would stay queued forever, so it is refused here, from the pools' declared
    pipelines (``GPU_POOLS`` / ``GPU_POOLS_FILE``), rather than accepted and left waiting.
    """
    pools = ", ".join(settings.pools)
    if not isinstance(model, str):
        raise InvalidRequest(f"model must be a string naming a pool; pools: {pools}", field="model")
    runs = settings.pool_capabilities.get(model)
    if runs is None:
        raise InvalidRequest(f"no pool named {model!r}; pools: {pools}", field="model")
    if task_type not in runs:
        able = settings.pools_running(task_type)
        raise InvalidRequest(
            f"pool {model!r} runs {', '.join(sorted(runs))}; {task_type.value} needs a pool whose "
            f"pipeline is {task_type.value} "
            + (f"(pools that run it: {', '.join(able)})" if able else "(no configured pool runs it)"),
            field="task_type",
        )
    return model


def _scenes(value: Any, settings: GatewaySettings) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("scenes must be a non-empty list", field="scenes")
    if len(value) > settings.max_scenes:
        raise InvalidRequest(f"at most {settings.max_scenes} scenes, got {len(value)}", field="scenes")
    prompts = []
    for index, scene in enumerate(value):
        scene = _object(scene, f"scenes[{index}]", frozenset({"prompt"}))
        prompts.append(text(scene.get("prompt"), f"scenes[{index}].prompt", settings.max_prompt_chars))
    return tuple(prompts)
