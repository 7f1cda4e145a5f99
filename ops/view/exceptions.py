"""Errors of ``storee view``: each prints as one line and exits with status 1."""

from __future__ import annotations

from ops.runtime.exceptions import StoreeError


class ViewError(StoreeError):
    """A rebuild or rollback that cannot go on (nothing to roll back to, a rebuild that never caught up)."""


class PointerMoved(ViewError):
    """The view pointer changed between reading it and moving it: someone else swapped first."""
