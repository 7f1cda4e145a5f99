"""Apache Kafka in KRaft mode from the official jars, fetched with Maven and run straight from them.

Each node is a combined broker and controller. One node is the default; three nodes give a cluster
with replication factor 3 and ``min.insync.replicas=2`` for failover tests.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.stack.exceptions import StackError
from ops.stack.process import ManagedProcess, port_in_use, require_tool, wait_until

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
POM = _HERE / "kafka-pom.xml"
LOG4J = _HERE / "log4j2.properties"
# Kafka's Uuid.ZERO_UUID and Uuid.METADATA_TOPIC_ID, never handed out by Uuid.randomUuid().
_RESERVED_UUIDS = frozenset({0, 1})


def fetch_kafka(cache_dir: Path, version: str) -> Path:
    """Return the directory of the Kafka broker jars for ``version``, fetching them with Maven once."""
    libs = cache_dir / f"kafka-{version}" / "libs"
    done = libs / ".complete"
    if done.exists():
        return libs
    mvn = require_tool("mvn", "fetch the Apache Kafka jars (install Apache Maven)")
    require_tool("java", "run the Kafka broker (install a Java 17+ runtime)")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log.info("fetching Apache Kafka %s jars with Maven into %s", version, libs)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"Maven could not fetch Apache Kafka {version}: {' | '.join(detail) or 'no output'}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    done.write_text(version + "\n")
    return libs


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(f"kafka-{self.node_id}", self.directory, marker=str(self.config_file))


class KafkaCluster:
    """A KRaft cluster of ``brokers`` nodes on loopback, kept under ``run_dir``."""

    def __init__(
        self,
        cache_dir: Path,
        run_dir: Path,
        version: str,
        *,
        brokers: int = 1,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        host: str = "127.0.0.1",
    ) -> None:
        if brokers < 1:
            raise StackError(f"a Kafka cluster needs at least one broker, got {brokers}")
        self.cache_dir = cache_dir
        self.run_dir = run_dir
        self.version = version
        self.heap = heap
        self.host = host
        self.nodes = [
            KafkaNode(i + 1, port + 2 * i, controller_port + 2 * i, run_dir / f"node-{i + 1}")
            for i in range(brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{node.port}" for node in self.nodes)

    def running(self) -> list[int]:
        return [pid for node in self.nodes if (pid := node.process.pid()) is not None]

    def is_ready(self) -> bool:
        return _metadata_brokers(self.bootstrap_servers, timeout=2.0) >= len(self.nodes)

    def start(self, timeout: float) -> bool:
        """Start every node that is not running; return whether anything was started."""
        if self.running() and len(self.running()) == len(self.nodes) and self.is_ready():
            return False
        java = require_tool("java", "run the Kafka broker (install a Java 17+ runtime)")
        libs = fetch_kafka(self.cache_dir, self.version)
        cluster_id = self._cluster_id()
        started = []
        for node in self.nodes:
            if node.process.alive():
                continue
            for p in (node.port, node.controller_port):
                if port_in_use(p, self.host):
                    raise StackError(
                        f"port {p} is already in use by another process; set STOREE_KAFKA_PORT and "
                        "STOREE_KAFKA_CONTROLLER_PORT to free ports or stop that process"
                    )
            self._write_config(node)
            self.format_storage(node, cluster_id, java=java, libs=libs)
            node.process.start(self._command(java, libs, node), env=self._env())
            started.append(node)
        brokers = f"{len(self.nodes)} broker{'s' if len(self.nodes) > 1 else ''}"
        what = f"Kafka ({brokers} at {self.bootstrap_servers})"
        try:
            wait_until(self.is_ready, timeout, what, alive=lambda: all(n.process.alive() for n in self.nodes))
        except StackError as exc:
            tails = "; ".join(f"see {n.process.log_file}" for n in self.nodes)
            raise StackError(f"{exc} ({tails})") from None
        return bool(started)

    def stop(self) -> int:
        return sum(node.process.stop() for node in self.nodes)

    def _cluster_id(self) -> str:
        path = self.run_dir / "cluster.id"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id() + "\n")
        return path.read_text().strip()

    def _write_config(self, node: KafkaNode) -> None:
        count = len(self.nodes)
        voters = ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.nodes)
        replication = min(3, count)
        lines = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{node.port},CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
            "num.partitions": 1,
            "default.replication.factor": replication,
            "min.insync.replicas": 2 if count >= 3 else 1,
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": 12,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": 2 if count >= 3 else 1,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": 2 if count >= 3 else 1,
            # Topics come from the catalog (`storee topics ensure`) or are declared by the stream app;
            # a typo in a topic name should fail loudly, not create a one-partition topic.
            "auto.create.topics.enable": "false",
            # Tests and local runs should not wait 3 s before the first consumer group rebalance.
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.hours": 168,
            "log.segment.bytes": 64 * 1024 * 1024,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }
        node.directory.mkdir(parents=True, exist_ok=True)
        node.config_file.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))

    def format_storage(
        self, node: KafkaNode, cluster_id: str, *, java: str | None = None, libs: Path | None = None
    ) -> None:
        """Format ``node``'s storage for ``cluster_id`` (``kafka-storage format``), once."""
        if (node.data_dir / "meta.properties").exists():
            return
        java = java or require_tool("java", "run the Kafka broker (install a Java 17+ runtime)")
        libs = libs or fetch_kafka(self.cache_dir, self.version)
        self._write_config(node)
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={LOG4J}",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                # One argument, so an id that begins with "-" (a run directory from before
                # random_cluster_id) is never read as an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(node.config_file),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise StackError(f"could not format Kafka storage in {node.data_dir}: {' | '.join(detail)}")

    def _command(self, java: str, libs: Path, node: KafkaNode) -> list[str]:
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={node.directory}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(node.config_file),
        ]

    @staticmethod
    def _env() -> dict[str, str]:
        # The broker is configured only by its properties file: variables such as KAFKA_HEAP_OPTS or
        # JAVA_TOOL_OPTIONS meant for some other Kafka must not leak into it.
        return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JAVA_TOOL_OPTIONS"))}


def random_cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A cluster id as ``kafka-storage random-uuid`` makes one (Kafka's ``Uuid.randomUuid``).

    A random version-4 UUID in URL-safe base64 without padding (22 characters), drawn again while it
    is one of Kafka's reserved ids (all zeros, or the metadata topic's id, 1) or begins with "-",
    which command lines would read as an option.
    """
    while True:
        raw = draw().bytes
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if int.from_bytes(raw, "big") not in _RESERVED_UUIDS and not text.startswith("-"):
            return text


def _metadata_brokers(bootstrap_servers: str, timeout: float) -> int:
    """How many brokers a metadata request reports, or 0 if none answered."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # librdkafka would log every refused connection while the broker starts; a logger object is
    # accepted at runtime though the type stubs only list scalar values.
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "socket.connection.setup.timeout.ms": 1000,
            "logger": _quiet_logger(),  # type: ignore[dict-item]
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return 0
    return len(metadata.brokers)


def _quiet_logger() -> logging.Logger:
    quiet = logging.getLogger("ops.stack.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    return quiet
