"""Errors raised by the runtime floor: a setting that is missing or malformed."""

from __future__ import annotations

from schemas.exceptions import StoreeError

__all__ = ["ConfigError", "StoreeError"]


class ConfigError(StoreeError):
    """A setting is missing or malformed; the message names the variable."""
