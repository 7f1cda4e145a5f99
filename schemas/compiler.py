"""Encoders and decoders generated for one schema and its Python classes: the codec's fast path.

fastavro interprets the schema for every value (about half a microsecond a field), which caps a
TaskRequested below 50,000 encodes a second on one of our cores before any conversion to and from
dicts. The functions generated here know the schema and the classes up front: the encoder reads
attributes and appends to one ``bytearray``, the decoder slices the buffer and builds the frozen
objects through their slots. They write the same bytes as fastavro (a differential property test checks
it) and are stricter where fastavro would write or read invalid Avro (an int beyond 32 bits, a boolean
byte other than 0 or 1). What they do not cover (maps, unions other than ``[null, T]``, logical types)
makes the codec use fastavro for that schema.
"""

from __future__ import annotations

import enum
import keyword
import struct
import types
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int], tuple[Any, int]]

_LIMITS = {"int": (-(1 << 31), (1 << 31) - 1), "long": (-(1 << 63), (1 << 63) - 1)}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_MIN_SIZE = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}


class Unsupported(Exception):
    """The schema uses a construct the generator does not cover; use fastavro instead."""


def _write_varint(out: bytearray, n: int) -> None:
    """Append a non-negative (already zigzagged) integer as a varint."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_rest(buf: bytes, pos: int, first: int, kind: str) -> tuple[int, int]:
    """Finish a zigzag varint whose first byte (>= 0x80) was read; check it fits ``kind``."""
    n = first & 0x7F
    shift = 7
    while True:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    value = (n >> 1) ^ -(n & 1)
    low, high = _LIMITS[kind]
    if not low <= value <= high:
        raise ValueError(f"{value} does not fit an Avro {kind}")
    return value, pos


class _Generator:
    """Writes the source of one function, line by line, with the constants it refers to."""

    def __init__(self, named: Mapping[str, Any], classes: Mapping[str, type]) -> None:
        self.named = named
        self.classes = classes
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "wv": _write_varint,
            "rd": _read_rest,
            "pf": struct.Struct("<f").pack,
            "pd": struct.Struct("<d").pack,
            "uf": struct.Struct("<f").unpack_from,
            "ud": struct.Struct("<d").unpack_from,
            "new": object.__new__,
            # Zigzag decoding of every one-byte varint, looked up rather than computed.
            "zz": tuple((n >> 1) ^ -(n & 1) for n in range(128)),
        }
        self.count = 0

    def local(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def const(self, value: Any, hint: str) -> str:
        name = self.local("_" + hint)
        self.env[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def build(self, name: str, parameters: str) -> Callable[..., Any]:
        # Constants and helpers become keyword-only defaults: locals are faster to load than globals.
        bound = ", ".join(f"{constant}={constant}" for constant in self.env)
        source = f"def {name}({parameters}, *, {bound}):\n" + "\n".join(self.lines) + "\n"
        namespace = dict(self.env)
        exec(compile(source, f"<storee codec {name}>", "exec"), namespace)  # noqa: S102 - our own source
        function: Callable[..., Any] = namespace[name]
        function.__doc__ = source  # kept for debugging a generated function
        return function

    def kind(self, node: Any, depth: int = 0) -> tuple[str, Any]:
        """The type name of a schema node (resolving references) and its definition."""
        if depth > 32:
            raise Unsupported("recursive schema")
        if isinstance(node, list):
            return "union", node
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node, node
            if node in self.named:
                return self.kind(self.named[node], depth + 1)
            raise Unsupported(f"unknown type {node!r}")
        if not isinstance(node, dict):
            raise Unsupported(f"unexpected schema node {node!r}")
        if "logicalType" in node:
            raise Unsupported(f"logical type {node['logicalType']}")
        kind = node["type"]
        if isinstance(kind, str) and kind in ("record", "enum", "fixed", "array"):
            return kind, node
        if kind == "map":
            raise Unsupported("map")
        return self.kind(kind, depth + 1)

    def min_size(self, node: Any) -> int:
        kind, node = self.kind(node)
        if kind in _MIN_SIZE:
            return _MIN_SIZE[kind]
        if kind == "record":
            return sum(self.min_size(field["type"]) for field in node["fields"])
        if kind == "fixed":
            return int(node["size"])
        return 1  # enum, array, union: at least one varint

    def nullable(self, node: list[Any]) -> tuple[int, int, Any]:
        """``(index of null, index of the other branch, other branch)`` of a ``[null, T]`` union."""
        names = [self.kind(branch)[0] for branch in node]
        if len(node) != 2 or "null" not in names or names.count("null") != 1:
            raise Unsupported(f"union {names}")
        null = names.index("null")
        return null, 1 - null, node[1 - null]

    def record_class(self, node: Mapping[str, Any]) -> type:
        cls = self.classes.get(node["name"])
        if cls is None or not is_dataclass(cls):
            raise Unsupported(f"no dataclass for {node['name']}")
        names = [field["name"] for field in node["fields"]]
        if {f.name for f in fields(cls)} != set(names):
            raise Unsupported(f"{cls.__name__} fields differ from {node['name']}")
        for name in names:
            if not name.isidentifier() or keyword.iskeyword(name):
                raise Unsupported(f"field name {name!r}")
            if not isinstance(getattr(cls, name, None), types.MemberDescriptorType):
                raise Unsupported(f"{cls.__name__}.{name} is not a slot")
        return cls


class _EncoderSource(_Generator):
    def function(self, schema: Any, header: bytes) -> Encoder:
        self.line(1, f"out = bytearray({self.const(header, 'header')})")
        self.line(1, "a = out.append")
        self.write(schema, "value", 1, schema["name"].rsplit(".", 1)[-1])
        self.line(1, "return bytes(out)")
        encoder: Encoder = self.build("encode", "value")
        return encoder

    def write_count(self, n: str, depth: int) -> None:
        # Lengths and counts are non-negative, so their zigzag form is a plain shift.
        self.line(depth, f"if {n} < 64: a({n} << 1)")
        self.line(depth, f"else: wv(out, {n} << 1)")

    def write(self, node: Any, v: str, d: int, label: str) -> None:
        """Append the encoding of the value in local ``v``; ``label`` names the field in errors."""
        kind, node = self.kind(node)
        if kind == "null":
            self.line(d, f"if {v} is not None: raise TypeError(f'{label} must be None, got {{{v}!r}}')")
        elif kind == "boolean":
            self.line(d, f"if {v} is True: a(1)")
            self.line(d, f"elif {v} is False: a(0)")
            self.line(d, f"else: raise TypeError(f'{label} must be a bool, got {{{v}!r}}')")
        elif kind in _LIMITS:
            low, high = _LIMITS[kind]
            n = self.local("n")
            self.line(
                d,
                f"if not {low} <= {v} <= {high}: "
                f"raise ValueError(f'{label} is {{{v}!r}}, out of range for an Avro {kind}')",
            )
            self.line(d, f"{n} = ({v} << 1) ^ ({v} >> 63)")
            self.line(d, f"if {n} < 128: a({n})")
            self.line(d, f"else: wv(out, {n})")
        elif kind in ("float", "double"):
            self.line(d, f"out += {'pf' if kind == 'float' else 'pd'}({v})")
        elif kind in ("string", "bytes"):
            b, n = self.local("b"), self.local("n")
            if kind == "string":
                self.line(d, f"{b} = {v}.encode()")
            else:
                self.line(
                    d, f"if not isinstance({v}, (bytes, bytearray)): raise TypeError('{label} must be bytes')"
                )
                self.line(d, f"{b} = {v}")
            self.line(d, f"{n} = len({b})")
            self.write_count(n, d)
            self.line(d, f"out += {b}")
        elif kind == "enum":
            index = {symbol: _zigzag_varint(i) for i, symbol in enumerate(node["symbols"])}
            self.line(d, f"out += {self.const(index, 'symbols')}[{v}]")
        elif kind == "fixed":
            self.line(
                d, f"if len({v}) != {int(node['size'])}: raise ValueError('{label} has the wrong size')"
            )
            self.line(d, f"out += {v}")
        elif kind == "record":
            self.record_class(node)
            for field in node["fields"]:
                value = self.local("v")
                self.line(d, f"{value} = {v}.{field['name']}")
                self.write(field["type"], value, d, f"{label}.{field['name']}")
        elif kind == "array":
            n, item = self.local("n"), self.local("item")
            self.line(d, f"{n} = len({v})")
            self.line(d, f"if {n}:")
            self.write_count(n, d + 1)
            self.line(d + 1, f"for {item} in {v}:")
            self.write(node["items"], item, d + 2, f"{label}[]")
            self.line(d, "a(0)")
        else:
            null, other, branch = self.nullable(node)
            self.line(d, f"if {v} is None: a({null * 2})")
            self.line(d, "else:")
            self.line(d + 1, f"a({other * 2})")
            self.write(branch, v, d + 1, label)


class _DecoderSource(_Generator):
    def function(self, schema: Any) -> Decoder:
        self.line(1, "size = len(buf)")
        self.read(schema, "value", 1)
        self.line(1, "return value, pos")
        decoder: Decoder = self.build("decode", "buf, pos")
        return decoder

    def read_integer(self, t: str, d: int, kind: str = "long") -> None:
        self.line(d, f"{t} = buf[pos]")
        self.line(d, "pos += 1")
        self.line(d, f"if {t} < 128: {t} = zz[{t}]")
        self.line(d, f"else: {t}, pos = rd(buf, pos, {t}, {kind!r})")

    def read(self, node: Any, t: str, d: int) -> None:
        kind, node = self.kind(node)
        if kind == "null":
            self.line(d, f"{t} = None")
        elif kind == "boolean":
            self.line(d, f"{t} = buf[pos]")
            self.line(d, "pos += 1")
            self.line(d, f"if {t} > 1: raise ValueError('boolean byte is not 0 or 1')")
            self.line(d, f"{t} = {t} == 1")
        elif kind in _LIMITS:
            self.read_integer(t, d, kind)
        elif kind in ("float", "double"):
            self.line(d, f"{t} = {'uf' if kind == 'float' else 'ud'}(buf, pos)[0]")
            self.line(d, f"pos += {4 if kind == 'float' else 8}")
        elif kind in ("string", "bytes", "fixed"):
            if kind == "fixed":
                self.line(d, f"{t} = {int(node['size'])}")
            else:
                self.read_integer(t, d)
            self.line(d, f"if {t} < 0 or pos + {t} > size: raise EOFError('{kind} runs past the end')")
            self.line(d, f"pos += {t}")
            text = ".decode()" if kind == "string" else ""
            self.line(d, f"{t} = buf[pos - {t}:pos]{text}")
        elif kind == "enum":
            members = self.enum_values(node)
            self.read_integer(t, d, "int")
            self.line(d, f"if {t} < 0: raise IndexError('negative enum index')")
            self.line(d, f"{t} = {self.const(members, 'members')}[{t}]")
        elif kind == "record":
            cls = self.record_class(node)
            values = []
            for field in node["fields"]:
                value = self.local("v")
                self.read(field["type"], value, d)
                values.append((field["name"], value))
            self.line(d, f"{t} = new({self.const(cls, 'cls')})")
            for name, value in values:
                setter = self.const(getattr(cls, name).__set__, "set")
                self.line(d, f"{setter}({t}, {value})")
        elif kind == "array":
            if self.min_size(node["items"]) < 1:
                raise Unsupported("array of items that may take no bytes")
            items, n, item = self.local("items"), self.local("n"), self.local("item")
            self.line(d, f"{items} = []")
            self.read_integer(n, d)
            self.line(d, f"while {n}:")
            self.line(d + 1, f"if {n} < 0:")
            self.line(d + 2, f"{n} = -{n}")
            self.read_integer(self.local("blocksize"), d + 2)
            # Every item takes at least one byte: a count beyond the bytes left is corrupt, not a big loop.
            self.line(d + 1, f"if {n} > size - pos: raise ValueError('array count exceeds the bytes left')")
            self.line(d + 1, f"for _ in range({n}):")
            self.read(node["items"], item, d + 2)
            self.line(d + 2, f"{items}.append({item})")
            self.read_integer(n, d + 1)
            self.line(d, f"{t} = tuple({items})")
        else:
            null, other, branch = self.nullable(node)
            self.read_integer(t, d)
            self.line(d, f"if {t} == {null}: {t} = None")
            self.line(d, f"elif {t} == {other}:")
            self.read(branch, t, d + 1)
            self.line(d, "else: raise IndexError('union index out of range')")

    def enum_values(self, node: Mapping[str, Any]) -> tuple[Any, ...]:
        cls = self.classes.get(node["name"])
        if cls is None:
            return tuple(node["symbols"])
        if not issubclass(cls, enum.Enum) or [m.value for m in cls] != list(node["symbols"]):
            raise Unsupported(f"{cls.__name__} symbols differ from {node['name']}")
        return tuple(cls)


def _zigzag_varint(value: int) -> bytes:
    out = bytearray()
    _write_varint(out, (value << 1) ^ (value >> 63))
    return bytes(out)


def compile_encoder(parsed: Mapping[str, Any], classes: Mapping[str, type], header: bytes) -> Encoder:
    """``encode(event) -> bytes`` (header included) for a fastavro-parsed schema; raise Unsupported."""
    return _EncoderSource(parsed.get("__named_schemas", {}), classes).function(parsed, header)


def compile_decoder(parsed: Mapping[str, Any], classes: Mapping[str, type]) -> Decoder:
    """``decode(buf, pos) -> (event, end)`` for a fastavro-parsed schema; raise Unsupported."""
    return _DecoderSource(parsed.get("__named_schemas", {}), classes).function(parsed)
