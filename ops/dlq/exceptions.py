"""Errors of the dead-letter tooling."""

from __future__ import annotations

from ops.runtime.exceptions import StoreeError


class DlqError(StoreeError):
    """Base of the dead-letter tooling's errors."""


class BadLetterId(DlqError):
    """A letter id is not ``<partition>:<offset>``."""


class LetterNotFound(DlqError):
    """No dead letter has this id (past the log's end, removed by retention, or a replay marker)."""


class ReplayIncomplete(DlqError):
    """A replay stopped part way; the message names what was produced and what was not."""
