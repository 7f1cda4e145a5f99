"""Errors of the contract package, and the one base class every Storee error derives from.

``StoreeError`` lives here because ``schemas`` is the bottom layer that every other package imports;
``ops.runtime.exceptions`` re-exports it.
"""

from __future__ import annotations


class StoreeError(Exception):
    """Base class of every error Storee raises on purpose."""


class SchemaError(StoreeError):
    """A schema file is malformed, or a name or fingerprint is not in the registry."""


class CodecError(StoreeError):
    """Bytes are not a decodable Storee event, or an event cannot be encoded; the message says why."""


class CatalogError(StoreeError):
    """The topic catalog was built with an invalid name, pool or setting; the message names it."""


class ContractError(CodecError):
    """A decodable event breaks a rule its Avro types cannot say (an id's shape, a bound, a count).

    ``field`` names the offending field (``params.guidance_scale``, ``tasks[2].task_id``); ``event`` is
    the decoded event, and ``story_id`` / ``task_id`` are set only where those fields passed their own
    checks, so a consumer can fail the task or story it names without trusting what broke the rules.
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        event: object = None,
        story_id: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.event = event
        self.story_id = story_id
        self.task_id = task_id
