"""Errors of the lag tooling."""

from __future__ import annotations

from ops.runtime.exceptions import StoreeError


class LagError(StoreeError):
    """Base of the lag tooling's errors."""


class LagReadError(LagError):
    """Kafka did not answer one of the reads an observation needs; the message names which."""
