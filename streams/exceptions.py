"""Errors of the stream processors."""

from __future__ import annotations

from schemas.exceptions import StoreeError


class StreamsError(StoreeError):
    """Base class of the errors the stream processors raise on purpose."""


class EmptyStory(StreamsError):
    """A story yields no scenes (no explicit scenes and no text); it is failed in the view."""

    code = "empty_story"


class UnknownPool(StreamsError):
    """A task names a model pool this deployment does not serve (see GPU_POOLS)."""


class UnexpectedEvent(StreamsError):
    """A decodable event arrived on a topic that does not carry its type."""


class ViewConflict(StreamsError):
    """Another writer changed a job-view document between our read and our write, again and again."""
