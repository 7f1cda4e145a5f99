"""Typed settings read once from the environment.

Every service builds one frozen settings object in its entry point and passes it down; nothing else
reads ``os.environ``. A missing or malformed variable raises :class:`ConfigError` naming it, and
secrets are masked in ``repr``.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from ops.runtime.exceptions import ConfigError
from schemas.records import TaskType

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Secret(str):
    """A string whose ``repr`` never shows its value."""

    def __repr__(self) -> str:
        return "Secret('**********')"


class Env:
    """Typed access to a mapping of environment variables (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, builtins.str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self.raw(name)
        if value is None:
            if default is None:
                raise ConfigError(f"{name} is not set")
            return default
        return value

    def optional(self, name: builtins.str) -> builtins.str | None:
        return self.raw(name)

    def secret(self, name: builtins.str, default: builtins.str | None = None) -> Secret:
        return Secret(self.str(name, default))

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        *,
        minimum: builtins.float | None = None,
        maximum: builtins.float | None = None,
    ) -> builtins.float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {number}")


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the shared infrastructure is: what every service needs to reach Kafka and MongoDB.

    ``kafka_bootstrap_servers`` and ``mongodb_url`` are ``None`` when the variables are unset. A service
    asks for them with :meth:`kafka` and :meth:`mongodb`, which name the variable when it is missing:
    services never look for a local stack themselves. The ``storee`` command fills both variables with
    the local stack's addresses before it runs a service, when they are unset.
    """

    kafka_bootstrap_servers: str | None
    mongodb_url: Secret | None
    topic_prefix: str
    mongodb_database: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> ConnectionSettings:
        env = env or Env()
        url = env.optional("MONGODB_URL")
        prefix = env.str("TOPIC_PREFIX", "storee.")
        if not all(c.isalnum() or c in "._-" for c in prefix):
            raise ConfigError(f"TOPIC_PREFIX may only hold letters, digits, '.', '_' and '-', got {prefix!r}")
        return cls(
            kafka_bootstrap_servers=env.optional("KAFKA_BOOTSTRAP_SERVERS"),
            mongodb_url=Secret(url) if url else None,
            topic_prefix=prefix,
            mongodb_database=env.str("MONGODB_DATABASE", "storee"),
        )

    def kafka(self) -> builtins.str:
        """The bootstrap servers; :class:`ConfigError` naming ``KAFKA_BOOTSTRAP_SERVERS`` when unset."""
        if self.kafka_bootstrap_servers is None:
            raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS is not set{_UNSET_HINT}")
        return self.kafka_bootstrap_servers

    def mongodb(self) -> Secret:
        """The MongoDB URL; :class:`ConfigError` naming ``MONGODB_URL`` when unset."""
        if self.mongodb_url is None:
            raise ConfigError(f"MONGODB_URL is not set{_UNSET_HINT}")
        return self.mongodb_url


_UNSET_HINT = " (the storee command sets it to the local stack's address; set it to run a service alone)"


# What each pool pipeline kind runs (GPU_POOLS' "pipeline"): the gateway accepts work from it and the
# GPU consumers check their pools against it. ``simulated`` (benchmarks only) stands in for any of them.
PIPELINE_TASK_TYPES: Mapping[builtins.str, frozenset[TaskType]] = MappingProxyType(
    {
        "text_to_video": frozenset({TaskType.TEXT_TO_VIDEO}),
        "image_to_video": frozenset({TaskType.IMAGE_TO_VIDEO}),
        "text_to_audio": frozenset({TaskType.TEXT_TO_AUDIO}),
        "simulated": frozenset(TaskType),
    }
)
# The kind of the built-in ``default`` pool (the tiny Wan model) and of a pool named only by a list.
DEFAULT_PIPELINE = "text_to_video"


def pool_names(env: Env | None = None) -> tuple[str, ...]:
    """The model pools deployed, ``default`` first: every service that routes by pool agrees on these.

    The GPU consumers configure pools with a JSON object (``{"<pool>": {...}}``) in the file
    ``GPU_POOLS_FILE`` or inline in ``GPU_POOLS``; services that only need the names take its keys.
    A comma-separated ``GPU_POOLS`` (``default,wan``) names pools without configuring them.
    """
    text, source = pools_source(env or Env())
    names = ["default"]
    if text and _is_json(text):
        names.extend(_pools_object(text, source))
    elif text:
        names.extend(_listed(text))
    return tuple(dict.fromkeys(names))


def pool_capabilities(env: Env | None = None) -> Mapping[str, frozenset[TaskType]]:
    """The task types each pool declares it runs (from its ``pipeline``), ``default`` first.

    Read from the same ``GPU_POOLS_FILE`` / ``GPU_POOLS`` as :func:`pool_names`, with the same names in
    the same order. ``default`` runs :data:`DEFAULT_PIPELINE` unless configured otherwise, and so does a
    pool named only by a comma-separated list. A configured pool must name a known ``pipeline``.
    """
    text, source = pools_source(env or Env())
    kinds = {"default": DEFAULT_PIPELINE}
    if text and _is_json(text):
        for name, values in _pools_object(text, source).items():
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: pool {name!r} must be an object")
            pipeline = values.get("pipeline")
            if not isinstance(pipeline, str) or pipeline not in PIPELINE_TASK_TYPES:
                raise ConfigError(
                    f"{source}: pool {name!r}: pipeline must be one of {list(PIPELINE_TASK_TYPES)}, "
                    f"got {pipeline!r}"
                )
            kinds[name] = pipeline
    elif text:
        kinds.update(dict.fromkeys(_listed(text), DEFAULT_PIPELINE))
    return MappingProxyType({name: PIPELINE_TASK_TYPES[kind] for name, kind in kinds.items()})


def pools_source(env: Env) -> tuple[builtins.str | None, builtins.str]:
    """The pools configuration (``None``: none) and where it came from, to name in errors.

    ``GPU_POOLS_FILE`` wins over ``GPU_POOLS``; the one reader of both, for every service.
    """
    path = env.optional("GPU_POOLS_FILE")
    if not path:
        return env.optional("GPU_POOLS"), "GPU_POOLS"
    try:
        return Path(path).expanduser().read_text(encoding="utf-8"), f"GPU_POOLS_FILE {path}"
    except OSError as exc:
        raise ConfigError(f"GPU_POOLS_FILE {path} cannot be read: {exc.strerror}") from None


def _pools_object(text: builtins.str, source: builtins.str) -> dict[builtins.str, object]:
    try:
        pools = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(pools, dict):
        raise ConfigError(f"{source} must be a JSON object of pools")
    return pools


def _is_json(text: builtins.str) -> builtins.bool:
    """JSON (an object of pools, or a mistake reported as one) rather than a comma-separated list."""
    return text.lstrip().startswith(("{", "["))


def _listed(text: builtins.str) -> list[builtins.str]:
    return [name.strip() for name in text.split(",") if name.strip()]
