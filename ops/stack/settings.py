"""Settings of the local stack, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.runtime.config import Env


@dataclass(frozen=True)
class StackSettings:
    """Where the local stack keeps its caches and run state, and which ports it listens on.

    Broker ``i`` (0-based) of a cluster listens on ``kafka_port + 2*i`` and its controller on
    ``kafka_controller_port + 2*i``, so the default single broker is 9092/9093 and a three-broker
    cluster is 9092/9093, 9094/9095, 9096/9097.
    """

    cache_dir: Path
    run_dir: Path
    kafka_version: str
    kafka_port: int
    kafka_controller_port: int
    kafka_brokers: int
    kafka_heap: str
    ferretdb_version: str
    mongo_port: int
    ready_timeout: float
    external_kafka: str | None
    external_mongodb: str | None

    @classmethod
    def from_env(cls, env: Env | None = None) -> StackSettings:
        env = env or Env()
        home = Path(env.str("STOREE_HOME", str(Path.home() / ".storee"))).expanduser()
        kafka_port = env.int("STOREE_KAFKA_PORT", 9092, minimum=1, maximum=65535)
        return cls(
            cache_dir=Path(env.str("STOREE_CACHE_DIR", str(home / "cache"))).expanduser(),
            run_dir=Path(env.str("STOREE_RUN_DIR", str(home / "run"))).expanduser(),
            kafka_version=env.str("STOREE_KAFKA_VERSION", "4.1.1"),
            kafka_port=kafka_port,
            kafka_controller_port=env.int(
                "STOREE_KAFKA_CONTROLLER_PORT", kafka_port + 1, minimum=1, maximum=65535
            ),
            kafka_brokers=int(env.choice("STOREE_KAFKA_BROKERS", "1", ("1", "3"))),
            kafka_heap=env.str("STOREE_KAFKA_HEAP", "512m"),
            ferretdb_version=env.str("STOREE_FERRETDB_VERSION", "v1.24.0"),
            mongo_port=env.int("STOREE_MONGO_PORT", 27017, minimum=1, maximum=65535),
            ready_timeout=env.float("STOREE_READY_TIMEOUT", 120.0, minimum=1.0),
            external_kafka=env.optional("KAFKA_BOOTSTRAP_SERVERS"),
            external_mongodb=env.optional("MONGODB_URL"),
        )
