"""The whole product as one unit: the local stack, the topics, and every service as a supervised child.

``storee up`` runs it until Ctrl-C or SIGTERM; the demo (``make run``) starts it, drives it through
the HTTP API and stops it. Children get the stack's addresses through the same variables a deployment
sets (``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``), so they behave exactly as they would in production.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops.lag.groups import storee_groups
from ops.lag.service import LagService, start_lag_service
from ops.lag.settings import LagSettings
from ops.runtime.config import ConnectionSettings, Env
from ops.runtime.kafka import admin_client
from ops.runtime.provisioning import ensure_topics
from ops.runtime.supervisor import ChildEvent, ChildSpec, Supervisor
from ops.stack import LocalStack, StackSettings
from ops.stack.exceptions import StackError
from ops.topics import TopicSettings
from schemas.topics import TopicCatalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SystemSettings:
    """What ``storee up`` runs: the gateway's address, the GPU pool and its devices."""

    gateway_host: str
    gateway_port: int
    pool: str
    devices: str
    ready_timeout: float

    @classmethod
    def from_env(cls, env: Env | None = None) -> SystemSettings:
        env = env or Env()
        return cls(
            gateway_host=env.str("HOST", "127.0.0.1"),
            gateway_port=env.int("PORT", 8000, minimum=1, maximum=65535),
            pool=env.str("STOREE_POOL", "default"),
            devices=env.str("STOREE_DEVICES", "cpu"),
            ready_timeout=env.float("STOREE_READY_TIMEOUT", 180.0, minimum=1.0),
        )

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"


class System:
    """Start and stop the stack and the services together."""

    def __init__(
        self,
        settings: SystemSettings,
        stack_settings: StackSettings,
        *,
        on_event: Callable[[ChildEvent], None] | None = None,
        extra_env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self._extra_env = dict(extra_env or {})
        self.stack = LocalStack(stack_settings)
        self.log_dir = log_dir or stack_settings.run_dir / "logs"
        self._on_event = on_event
        self._started_servers: list[str] = []
        self.supervisor: Supervisor | None = None
        self._stop_watching = threading.Event()
        self._watcher: threading.Thread | None = None
        self.lag: LagService | None = None

    def start(self) -> None:
        self._started_servers = self.stack.up()
        env = {
            **os.environ,
            **self._extra_env,
            "KAFKA_BOOTSTRAP_SERVERS": self.stack.bootstrap_servers,
            "MONGODB_URL": self.stack.mongodb_url,
            "PYTHONUNBUFFERED": "1",
        }
        self._ensure_topics(env)
        self.lag = _start_lag_exporter(self.stack.bootstrap_servers, env)
        cli = [sys.executable, "-m", "ops.cli"]
        s = self.settings
        self.supervisor = Supervisor(
            [
                ChildSpec("streams", [*cli, "streams"], env),
                ChildSpec("webhooks", [*cli, "webhooks"], env),
                ChildSpec(
                    "gpu-consumer", [*cli, "gpu-consumer", "--pool", s.pool, "--devices", s.devices], env
                ),
                ChildSpec(
                    "gateway", [*cli, "gateway", "--host", s.gateway_host, "--port", str(s.gateway_port)], env
                ),
            ],
            self.log_dir,
            on_event=self._on_event,
        )
        self.supervisor.start()
        # Restarts must happen whatever the caller's thread is doing (waiting for Ctrl-C, driving the
        # demo, running a test), so a thread of its own watches the children.
        self._watcher = threading.Thread(
            target=self.supervisor.run, args=(self._stop_watching,), name="supervisor", daemon=True
        )
        self._watcher.start()

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (the caller's signal handlers set it)."""
        while not stop.wait(0.5):
            pass

    def wait_ready(self) -> None:
        """Wait until the gateway answers ``/readyz`` (Kafka and MongoDB reachable through it)."""
        deadline = time.monotonic() + self.settings.ready_timeout
        url = f"{self.settings.gateway_url}/readyz"
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise StackError(
            f"the gateway at {url} was not ready within {self.settings.ready_timeout:.0f}s "
            f"(logs in {self.log_dir})"
        )

    def stop(self) -> None:
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join()
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.lag is not None:
            self.lag.stop()
            self.lag = None
        if self._started_servers:
            self.stack.down(only=self._started_servers)

    def _ensure_topics(self, env: dict[str, str]) -> None:
        """Create the catalog's missing topics before any service subscribes (auto-create is off)."""
        topics = TopicSettings.from_env(Env(env))
        catalog = TopicCatalog.build(
            prefix=ConnectionSettings.from_env(Env(env)).topic_prefix,
            pools=topics.pools,
            replication_factor=topics.replication_factor,
            min_insync_replicas=topics.min_insync_replicas,
        )
        report = ensure_topics(admin_client(self.stack.bootstrap_servers), catalog)
        for drift in report.drift:
            log.warning("topic drift (left as it is): %s", drift)


def _start_lag_exporter(bootstrap_servers: str, env: Mapping[str, str]) -> LagService | None:
    """The lag exporter on ``LAG_EXPORTER_HOST:LAG_EXPORTER_PORT`` (0: off); a taken port is a warning,
    not a reason for the system not to run."""
    settings = LagSettings.from_env(Env(env))
    if not settings.exporter_port:
        return None
    try:
        return start_lag_service(
            bootstrap_servers,
            storee_groups(Env(env)),
            settings,
            host=settings.exporter_host,
            port=settings.exporter_port,
        )
    except OSError as exc:
        log.warning("lag exporter not started on port %s: %s", settings.exporter_port, exc)
        return None


def default_system(on_event: Callable[[ChildEvent], None] | None = None) -> System:
    return System(SystemSettings.from_env(), StackSettings.from_env(), on_event=on_event)


def isolated_environment(root: Path, unique: str, port: int) -> dict[str, str]:
    """Variables that give a System its own topics, database, port, outputs and model cache.

    Tests and benchmarks run beside whatever else uses the local stack without seeing its data.
    """
    return {
        "TOPIC_PREFIX": f"i{unique}.",
        "MONGODB_DATABASE": f"i_{unique}",
        "PORT": str(port),
        "OUTPUT_DIR": str(root / "outputs"),
        "STOREE_MODEL_CACHE": str(root / "models"),
        "STREAMS_DATADIR": str(root / "streams"),
        "HF_HUB_OFFLINE": "1",
        "METRICS_PORT": "0",
        "LAG_EXPORTER_PORT": "0",
    }
