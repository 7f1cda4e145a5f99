"""Errors of the contract package, and the one base class every Storee error derives from.

``StoreeError`` lives here because ``schemas`` is the bottom layer that every other package imports;
``ops.exceptions`` re-exports it.
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
