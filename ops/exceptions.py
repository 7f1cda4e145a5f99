"""Errors raised by the operations package."""

from __future__ import annotations

from schemas.exceptions import StoreeError

__all__ = ["ConfigError", "StackError", "StoreeError"]


class ConfigError(StoreeError):
    """A setting is missing or malformed; the message names the variable."""


class StackError(StoreeError):
    """The local stack could not be provisioned, started, checked or stopped."""
