"""Webhook event names: what a story's submitter may ask to be called for (pure, no I/O).

``started`` (the story's first task started), ``progress`` (throttled task progress and task ends) and
``completed`` (the story ended: completed, failed, expired or cancelled); default ``completed`` only.
StorySubmitted carries the chosen names (``webhook_events``; empty means the default), the gateway
validates them with :func:`parse_filter`, and the delivery service (:mod:`streams.webhook_events`)
decides which task events become which.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class WebhookEvent(StrEnum):
    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"


DEFAULT_FILTER = frozenset({WebhookEvent.COMPLETED})


class InvalidEventFilter(ValueError):
    """A webhook event filter names events there are none of, or is not a list of names."""


def parse_filter(names: object) -> frozenset[WebhookEvent]:
    """The filter from a request's list of names; ``None`` is the default, ``completed`` only."""
    if names is None:
        return DEFAULT_FILTER
    if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
        raise InvalidEventFilter(f"webhook events are a list of names from {_choices()}")
    if not names:
        raise InvalidEventFilter(f"webhook events must name at least one of {_choices()}")
    unknown = sorted(set(names) - {kind.value for kind in WebhookEvent})
    if unknown:
        raise InvalidEventFilter(f"unknown webhook events {', '.join(unknown)}; choose from {_choices()}")
    return frozenset(WebhookEvent(name) for name in names)


def _choices(values: Iterable[WebhookEvent] = WebhookEvent) -> str:
    return ", ".join(value.value for value in values)
