"""Settings of the stream processors, read once from the environment in the entry point.

Batching knobs follow seed 000 (``BATCH_SIZE``, ``BATCH_TIMEOUT`` of 5 s) and seed 002 (optional caps
on a batch's estimated cost and GPU time); ``TASK_TTL`` is the deadline to *start* a task (seed 001).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.runtime.config import ConnectionSettings, Env, pool_names
from schemas.topics import TopicCatalog

# Records per view flush at most. Each flush writes every document it touches once, so under a backlog
# (a replay, a rebuild, a slow database catching up) larger flushes write each document fewer times:
# measured on FerretDB, 600 stories' 20,400 events at 5,000 per flush: 793 events/s; at 20,000: 2,865.
VIEW_FLUSH_MAX = 20_000


@dataclass(frozen=True)
class StreamSettings:
    """Everything ``streams/`` needs; built once by :meth:`from_env` and passed down."""

    connection: ConnectionSettings
    bootstrap_servers: str
    mongodb_url: str
    app_id: str
    pools: tuple[str, ...]
    batch_size: int
    batch_timeout_s: float
    batch_max_cost: float  # 0 disables the cap
    batch_max_gpu_seconds: float  # 0 disables the cap
    gpu_seconds_per_unit: float  # estimated GPU seconds per (megapixel x frame x step)
    cost_per_gpu_second: float
    task_ttl_s: float
    max_task_ttl_s: float
    max_scenes: int
    scene_max_chars: int
    tasks_partitions: int  # partitions of tasks.requested; the batcher's changelog must match it
    tick_s: float
    producer_linger_s: float  # how long Faust's producer gathers records into one request
    stall_timeout_s: float  # lag that does not move this long is nudged, then the worker restarts; 0: off
    materializer_enabled: bool
    sweep_interval_s: float
    sweep_grace_s: float
    materializer_group: str
    view_flush_max: int
    view_flush_s: float
    view_cache_stories: int  # stories whose documents the materializer remembers; 0: read every flush
    metrics_port: int  # 0 disables the Prometheus endpoint
    session_timeout_s: float  # how soon a crashed worker's partitions move to another worker
    datadir: str  # Faust's working directory (the tables use the memory store; this holds little)

    @property
    def catalog(self) -> TopicCatalog:
        return TopicCatalog.build(prefix=self.connection.topic_prefix, pools=self.pools)

    @property
    def mongodb_database(self) -> str:
        return self.connection.mongodb_database

    @classmethod
    def from_env(cls, env: Env | None = None) -> StreamSettings:
        env = env or Env()
        connection = ConnectionSettings.from_env(env)
        pools = pool_names(env)  # GPU_POOLS / GPU_POOLS_FILE, as the gateway and GPU consumers read them
        bootstrap = connection.kafka()
        mongodb_url = str(connection.mongodb())
        app_id = env.str("STREAMS_APP_ID", f"{connection.topic_prefix}streams")
        timeout = env.float("BATCH_TIMEOUT", 5.0, minimum=0.01)
        return cls(
            connection=connection,
            bootstrap_servers=bootstrap,
            mongodb_url=mongodb_url,
            app_id=app_id,
            pools=pools,
            batch_size=env.int("BATCH_SIZE", 8, minimum=1, maximum=1024),
            batch_timeout_s=timeout,
            batch_max_cost=env.float("BATCH_MAX_COST", 0.0, minimum=0.0),
            batch_max_gpu_seconds=env.float("BATCH_MAX_GPU_SECONDS", 0.0, minimum=0.0),
            gpu_seconds_per_unit=env.float("GPU_SECONDS_PER_UNIT", 0.0005, minimum=0.0),
            cost_per_gpu_second=env.float("COST_PER_GPU_SECOND", 0.001, minimum=0.0),
            task_ttl_s=env.float("TASK_TTL", 300.0, minimum=0.1),
            max_task_ttl_s=env.float("MAX_TASK_TTL", 7 * 86_400.0, minimum=0.1),
            max_scenes=env.int("MAX_SCENES", 64, minimum=1, maximum=10_000),
            scene_max_chars=env.int("SCENE_MAX_CHARS", 400, minimum=20),
            tasks_partitions=env.int("TASKS_PARTITIONS", 12, minimum=1),
            # Partial batches leave within BATCH_TIMEOUT + one tick; a tenth of the timeout, at most 50 ms.
            tick_s=env.float("BATCH_TICK", min(0.05, timeout / 10), minimum=0.005),
            producer_linger_s=env.float("STREAMS_PRODUCER_LINGER_MS", 5.0, minimum=0.0, maximum=1e3) / 1e3,
            stall_timeout_s=env.float("STREAMS_STALL_TIMEOUT", 60.0, minimum=0.0),
            materializer_enabled=env.bool("STREAMS_MATERIALIZER", True),
            sweep_interval_s=env.float("SWEEP_INTERVAL", 5.0, minimum=0.0),
            sweep_grace_s=env.float("SWEEP_GRACE", 5.0, minimum=0.0),
            materializer_group=env.str("MATERIALIZER_GROUP", f"{app_id}-view"),
            view_flush_max=env.int("VIEW_FLUSH_MAX", VIEW_FLUSH_MAX, minimum=1),
            view_flush_s=env.float("VIEW_FLUSH_INTERVAL", 0.2, minimum=0.001),
            view_cache_stories=env.int("VIEW_CACHE_STORIES", 2000, minimum=0),
            metrics_port=env.int("STREAMS_METRICS_PORT", 0, minimum=0, maximum=65535),
            session_timeout_s=env.float("STREAMS_SESSION_TIMEOUT", 30.0, minimum=6.0),
            datadir=env.str("STREAMS_DATADIR", str(_home(env) / "streams" / app_id)),
        )


def _home(env: Env) -> Path:
    return Path(env.str("STOREE_HOME", str(Path.home() / ".storee"))).expanduser()
