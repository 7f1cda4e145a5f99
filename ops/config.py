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
from typing import TypeVar

from ops.exceptions import ConfigError

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

    ``kafka_bootstrap_servers`` and ``mongodb_url`` are ``None`` when the variables are unset, which
    means "use the local stack" (see :mod:`ops.stack`).
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


def pool_names(env: Env | None = None) -> tuple[str, ...]:
    """The model pools deployed, ``default`` first: every service that routes by pool agrees on these.

    The GPU consumers configure pools with a JSON object (``{"<pool>": {...}}``) in the file
    ``GPU_POOLS_FILE`` or inline in ``GPU_POOLS``; services that only need the names take its keys.
    A comma-separated ``GPU_POOLS`` (``default,wan``) names pools without configuring them.
    """
    env = env or Env()
    path = env.optional("GPU_POOLS_FILE")
    source = f"GPU_POOLS_FILE {path}" if path else "GPU_POOLS"
    if path:
        try:
            text: builtins.str | None = Path(path).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"GPU_POOLS_FILE {path} cannot be read: {exc.strerror}") from None
    else:
        text = env.optional("GPU_POOLS")
    names = ["default"]
    if text and text.lstrip().startswith("{"):
        try:
            pools = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(pools, dict):
            raise ConfigError(f"{source} must be a JSON object of pools")
        names.extend(pools)
    elif text:
        names.extend(name.strip() for name in text.split(",") if name.strip())
    return tuple(dict.fromkeys(names))
