"""Typed records behind the Avro schemas: the base class, the enums and the shared sub-records.

Each class maps one-to-one to the named Avro type of the same name in namespace ``storee.v1``; the
``.avsc`` files are the source of truth and ``tests/schemas/test_events.py`` checks every class against
them (field names, types, nullability, defaults).

Tier and TaskType are Avro enums rather than strings: a reader must know the writer's schema anyway
(a message carries only its fingerprint), so an enum ``default`` would buy no forward compatibility;
appending a symbol stays backward compatible, and an unknown symbol fails decoding loudly (and goes to
the DLQ) instead of running the wrong pipeline. Outside producers get the symbols checked by their own
Avro library.
"""

from __future__ import annotations

import enum
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

NAMESPACE = "storee.v1"

Converter = Callable[[Any], Any]


class Tier(enum.StrEnum):
    """Service tier of an account."""

    PREMIUM = "premium"
    FREE = "free"


class TaskType(enum.StrEnum):
    """What a task generates."""

    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"
    TEXT_TO_AUDIO = "text_to_audio"


@dataclass(frozen=True, slots=True)
class _Plan:
    names: tuple[str, ...]
    getter: Callable[[Any], tuple[Any, ...]]
    to_avro: tuple[tuple[str, Converter], ...]
    from_avro: tuple[tuple[str, Converter], ...]


class Record:
    """Base of the typed records: converts to and from the dicts that fastavro writes and reads."""

    __slots__ = ()
    schema_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.schema_name = f"{NAMESPACE}.{cls.__name__}"

    def to_record(self) -> dict[str, Any]:
        """This record as the dict fastavro writes (enums as strings, tuples as lists)."""
        plan = _plan(type(self))
        record = dict(zip(plan.names, plan.getter(self), strict=True))
        for name, convert in plan.to_avro:
            record[name] = convert(record[name])
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """Build the record from the dict fastavro read with this class's current schema."""
        values = dict(record)
        for name, convert in _plan(cls).from_avro:
            values[name] = convert(values[name])
        return cls(**values)


def _plan(cls: type[Record]) -> _Plan:
    # Built on first use rather than at class creation: type hints may name classes defined later.
    plan: _Plan | None = cls.__dict__.get("_record_plan")
    if plan is None:
        hints = typing.get_type_hints(cls)
        names = tuple(field.name for field in fields(cls))  # type: ignore[arg-type]
        to_avro, from_avro = [], []
        for name in names:
            converters = _converters(hints[name])
            if converters[0] is not None:
                to_avro.append((name, converters[0]))
            if converters[1] is not None:
                from_avro.append((name, converters[1]))
        getter = operator.attrgetter(*names)
        plan = _Plan(names, getter, tuple(to_avro), tuple(from_avro))
        type.__setattr__(cls, "_record_plan", plan)
    return plan


def _converters(hint: Any) -> tuple[Converter | None, Converter | None]:
    """How a value of type ``hint`` goes to fastavro and comes back; ``None`` where it passes as is."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        to_avro, from_avro = _converters(inner)
        return _optional(to_avro), _optional(from_avro)
    if origin is tuple:
        item_to, item_from = _converters(typing.get_args(hint)[0])
        return _sequence(item_to, list), _sequence(item_from, tuple)
    if isinstance(hint, type) and issubclass(hint, Record):
        return _to_record, hint.from_record
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        # StrEnum members are str, so fastavro writes them as they are.
        return None, hint
    return None, None


def _to_record(value: Record) -> dict[str, Any]:
    return value.to_record()


def _optional(convert: Converter | None) -> Converter | None:
    if convert is None:
        return None
    return lambda value: None if value is None else convert(value)


def _sequence(convert: Converter | None, kind: Callable[[Any], Any]) -> Converter:
    if convert is None:
        return kind
    return lambda values: kind(map(convert, values))


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaRef(Record):
    """A reference to an input image or audio clip stored outside Kafka."""

    uri: str
    media_type: str
    sha256: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationParams(Record):
    """Parameters of one generation call (0 for the video sizes of text_to_audio)."""

    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int | None = None
    negative_prompt: str | None = None
    audio_length_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scene(Record):
    """One scene of a story."""

    index: int
    prompt: str
    input: MediaRef | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchTask(Record):
    """One task inside a BatchReady."""

    task_id: str
    story_id: str
    account_id: str
    sequence: int
    scene_index: int
    prompt: str
    params: GenerationParams
    input: MediaRef | None = None
    attempt: int = 0
    deadline: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputArtifact(Record):
    """One file a task produced."""

    uri: str
    media_type: str
    duration_s: float | None = None
    size_bytes: int | None = None
    sha256: str | None = None


# Every named Avro type shared between events, by its Python class (the Avro name is the class name).
SHARED_TYPES: tuple[type, ...] = (
    Tier,
    TaskType,
    MediaRef,
    GenerationParams,
    Scene,
    BatchTask,
    OutputArtifact,
)
