"""The local stack: a real Kafka broker (or three) and a real MongoDB-wire server on loopback.

``LocalStack.up()`` starts what is missing and is harmless to repeat; ``down()`` stops only what the
stack started (pid files under the run directory); servers named by ``KAFKA_BOOTSTRAP_SERVERS`` or
``MONGODB_URL`` are used as they are and never started or stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ops.stack.ferretdb import FerretDB
from ops.stack.kafka import KafkaCluster
from ops.stack.process import locked
from ops.stack.settings import StackSettings

__all__ = ["ComponentStatus", "LocalStack", "StackSettings", "local_bootstrap_servers", "local_mongodb_url"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    state: str  # "running", "stopped" or "external"
    pids: tuple[int, ...] = ()
    log: str = ""


class LocalStack:
    def __init__(self, settings: StackSettings, *, brokers: int | None = None) -> None:
        self.settings = settings
        count = brokers or settings.kafka_brokers
        self.kafka: KafkaCluster | None = None
        if settings.external_kafka is None:
            self.kafka = self._cluster(count)
        self.mongo: FerretDB | None = None
        if settings.external_mongodb is None:
            self.mongo = FerretDB(
                settings.cache_dir,
                settings.run_dir / "ferretdb",
                settings.ferretdb_version,
                port=settings.mongo_port,
            )

    def _cluster(self, count: int) -> KafkaCluster:
        s = self.settings
        name = "kafka" if count == 1 else f"kafka-{count}"
        return KafkaCluster(
            s.cache_dir,
            s.run_dir / name,
            s.kafka_version,
            brokers=count,
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
            heap=s.kafka_heap,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.external_kafka or self.kafka.bootstrap_servers  # type: ignore[union-attr]

    @property
    def mongodb_url(self) -> str:
        return self.settings.external_mongodb or self.mongo.url  # type: ignore[union-attr]

    def up(self) -> list[str]:
        """Start what is not running; return the names of what this call started."""
        started = []
        with locked(self.settings.run_dir / "stack.lock"):
            if self.mongo is not None and self.mongo.start(self.settings.ready_timeout):
                started.append("ferretdb")
            if self.kafka is not None and self.kafka.start(self.settings.ready_timeout):
                started.append("kafka")
        return started

    def down(self, only: Iterable[str] | None = None) -> int:
        """Stop the servers the stack started (``only`` limits it to names ``up`` returned).

        Returns how many processes stopped. Both cluster sizes are checked, so ``down`` also stops a
        three-broker cluster started with ``--brokers 3``.
        """
        names = set(only) if only is not None else {"kafka", "ferretdb"}
        stopped = 0
        with locked(self.settings.run_dir / "stack.lock"):
            if self.settings.external_kafka is None and "kafka" in names:
                stopped += sum(self._cluster(count).stop() for count in (1, 3))
            if self.mongo is not None and "ferretdb" in names:
                stopped += self.mongo.stop()
        return stopped

    def status(self) -> list[ComponentStatus]:
        result = []
        if self.kafka is None:
            result.append(ComponentStatus("kafka", self.bootstrap_servers, "external"))
        else:
            for count in (1, 3):
                cluster = self._cluster(count)
                pids = tuple(cluster.running())
                if pids or count == (self.kafka and len(self.kafka.nodes)):
                    log = ", ".join(str(n.process.log_file) for n in cluster.nodes)
                    result.append(
                        ComponentStatus(
                            f"kafka ({count} broker{'s' * (count > 1)})",
                            cluster.bootstrap_servers,
                            "running" if pids else "stopped",
                            pids,
                            log,
                        )
                    )
        if self.mongo is None:
            result.append(ComponentStatus("mongodb", _mask(self.mongodb_url), "external"))
        else:
            pid = self.mongo.process.pid()
            result.append(
                ComponentStatus(
                    "ferretdb (MongoDB wire)",
                    self.mongo.url,
                    "running" if pid else "stopped",
                    (pid,) if pid else (),
                    str(self.mongo.process.log_file),
                )
            )
        return result


def _mask(url: str) -> str:
    """Hide a password in a MongoDB URL."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:****@{host}"


def local_bootstrap_servers(settings: StackSettings | None = None) -> str:
    """The Kafka bootstrap servers to use: ``KAFKA_BOOTSTRAP_SERVERS`` or the local stack's."""
    return LocalStack(settings or StackSettings.from_env()).bootstrap_servers


def local_mongodb_url(settings: StackSettings | None = None) -> str:
    """The MongoDB URL to use: ``MONGODB_URL`` or the local stack's."""
    return LocalStack(settings or StackSettings.from_env()).mongodb_url
