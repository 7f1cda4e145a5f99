"""Errors of ``storee replay``: each prints as one line and exits with status 1."""

from __future__ import annotations

from ops.runtime.exceptions import StoreeError


class ReplayError(StoreeError):
    """A replay that cannot be planned or applied (bad arguments, unknown topics, Kafka errors)."""


class ReplayRefused(ReplayError):
    """A replay planned but refused: the group has active members, or it would re-render unasked."""
