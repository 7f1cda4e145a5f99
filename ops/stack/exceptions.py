"""Errors raised by the local stack."""

from __future__ import annotations

from schemas.exceptions import StoreeError

__all__ = ["StackError"]


class StackError(StoreeError):
    """The local stack could not be provisioned, started, checked or stopped."""
