"""The one codec: Avro binary in the Avro specification's single-object encoding.

A message is ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
Canonical Form, then the Avro body. The decoder looks the writer schema up by fingerprint and, when it
is an older version, resolves it against the current schema of the same name, so old messages keep
decoding after a (backward-compatible) schema change. Anything else raises :class:`CodecError`.

Events of the current schemas go through functions generated for them (:mod:`schemas.compiler`), three
to five times faster than fastavro; older writers and plain records go through fastavro, which also
words the error when a generated function refuses something.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.compiler import Decoder, Encoder, Unsupported, compile_decoder, compile_encoder
from schemas.contract import check
from schemas.events import EVENTS_BY_NAME, PYTHON_TYPES, Event
from schemas.exceptions import CodecError, SchemaError
from schemas.registry import HEADER_SIZE, MARKER, SchemaEntry, SchemaRegistry, default_registry

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview


class Codec:
    """Encodes events to single-object Avro bytes and decodes them back, resolving older writers."""

    def __init__(self, registry: SchemaRegistry | None = None, *, compiled: bool = True) -> None:
        self.registry = registry or default_registry()
        self._writers: dict[str, tuple[bytes, Any]] = {}
        self._encoders: dict[type, Encoder] = {}
        self._decoders: dict[bytes, Decoder] = {}
        for entry in self.registry.current_entries():
            self._writers[entry.fullname] = (entry.header, entry.parsed)
            cls = EVENTS_BY_NAME.get(entry.fullname)
            if compiled and cls is not None:
                try:
                    self._encoders[cls] = compile_encoder(entry.parsed, PYTHON_TYPES, entry.header)
                    self._decoders[entry.fingerprint] = compile_decoder(entry.parsed, PYTHON_TYPES)
                except Unsupported as exc:
                    log.debug("schema=%s uses fastavro only: %s", entry.fullname, exc)

    @property
    def compiled_events(self) -> tuple[type, ...]:
        """Event classes that take the generated fast path."""
        return tuple(self._encoders)

    def encode(self, event: Event) -> bytes:
        """Encode an event with the current schema of its class."""
        fast = self._encoders.get(type(event))
        if fast is None:
            return self.encode_record(event.schema_name, event.to_record())
        try:
            return fast(event)
        except Exception as exc:
            refused = exc
        # fastavro usually names what does not fit more precisely, so let it raise first; where it accepts
        # what the generated encoder refused (an int beyond 32 bits, which it writes as invalid Avro),
        # the refusal stands.
        try:
            record = event.to_record()
        except Exception as exc:
            raise CodecError(f"cannot encode {event.schema_name}: {type(exc).__name__}: {exc}") from exc
        self.encode_record(event.schema_name, record)
        raise CodecError(f"cannot encode {event.schema_name}: {refused}") from refused

    def encode_record(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Encode a plain record (as fastavro takes it) with the current schema ``schema_name``."""
        try:
            header, parsed = self._writers[schema_name]
        except KeyError:
            raise CodecError(f"cannot encode {schema_name}: no current schema has that name") from None
        out = BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, parsed, record)
        except Exception as exc:  # fastavro signals a record that does not fit with many error types
            raise CodecError(f"cannot encode {schema_name}: {type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: Buffer) -> Event:
        """Decode a message into its event class; raise :class:`CodecError` if it is not one."""
        data = _as_bytes(data)
        fast = self._decoders.get(data[2:HEADER_SIZE]) if data[:2] == MARKER else None
        if fast is not None:
            try:
                event, end = fast(data, HEADER_SIZE)
            except Exception as exc:
                refused: Exception = exc
            else:
                if end == len(data):
                    return event  # type: ignore[no-any-return]
                refused = ValueError(f"{len(data) - end} trailing bytes")
            # As in encode: fastavro explains most damage better, but what the generated decoder refused
            # (an int beyond 32 bits, a boolean byte of 2) stays refused even where fastavro reads it.
            name, _ = self.decode_record(data)
            raise CodecError(f"cannot decode {name} body: {type(refused).__name__}: {refused}") from refused
        name, record = self.decode_record(data)
        try:
            cls = EVENTS_BY_NAME[name]
        except KeyError:
            raise CodecError(
                f"{name} is a known schema but not an event this package has a class for"
            ) from None
        try:
            return cls.from_record(record)
        except Exception as exc:  # a record that fits the schema but not the class is a contract bug
            raise CodecError(
                f"cannot build {name} from its decoded record: {type(exc).__name__}: {exc}"
            ) from exc

    def read(self, data: Buffer) -> Event:
        """Decode a consumed message and check it against the contract (:mod:`schemas.contract`).

        What every consumer calls: raises :class:`CodecError` for bytes that are not an event, and its
        subclass :class:`~schemas.exceptions.ContractError`, naming the field, for an event that breaks
        the rules its Avro types cannot say.
        """
        return check(self.decode(data))

    def decode_record(self, data: Buffer) -> tuple[str, dict[str, Any]]:
        """Decode a message into ``(schema fullname, record)`` shaped by the current schema of that name."""
        data = _as_bytes(data)
        writer, reader = self._schemas(data)
        stream = BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(stream, writer.parsed, None if reader is writer else reader.parsed)
        except Exception as exc:
            # Malformed bodies surface from fastavro's compiled reader as EOFError, IndexError, ValueError,
            # UnicodeDecodeError, OverflowError, SchemaResolutionError and more, varying by version; the
            # contract is one error type, with the original chained.
            raise CodecError(
                f"cannot decode {writer.fullname} body ({len(data) - HEADER_SIZE} bytes, schema "
                f"{writer.fingerprint.hex()}): {type(exc).__name__}: {exc}"
            ) from exc
        if stream.tell() != len(data):
            raise CodecError(
                f"{len(data) - stream.tell()} trailing bytes after the {writer.fullname} body "
                f"({len(data)} bytes in all)"
            )
        if not isinstance(record, dict):
            raise CodecError(f"{writer.fullname} decoded to {type(record).__name__}, not a record")
        return reader.fullname, record

    def schema_of(self, data: Buffer) -> SchemaEntry:
        """The writer schema named by a message's header, without decoding its body."""
        return self._schemas(_as_bytes(data))[0]

    def _schemas(self, data: bytes) -> tuple[SchemaEntry, SchemaEntry]:
        """The writer schema a message names and the current reader schema for it."""
        if len(data) < HEADER_SIZE:
            raise CodecError(
                f"truncated message: {len(data)} bytes, shorter than the "
                f"{HEADER_SIZE}-byte single-object header"
            )
        if data[:2] != MARKER:
            raise CodecError(
                f"wrong marker {data[:2].hex()}: not Avro single-object encoding (expected {MARKER.hex()})"
            )
        fingerprint = data[2:HEADER_SIZE]
        writer = self.registry.find(fingerprint)
        if writer is None:
            raise CodecError(
                f"unknown schema fingerprint {fingerprint.hex()}: "
                "written with a schema this version does not know"
            )
        try:
            reader = self.registry.current(writer.fullname)
        except SchemaError:
            raise CodecError(
                f"{writer.fullname} (fingerprint {fingerprint.hex()}) is no longer a current schema"
            ) from None
        return writer, reader


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if data is None:
        raise CodecError("no value to decode (a tombstone or an empty record)")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise CodecError(f"cannot decode a {type(data).__name__}; expected bytes")
