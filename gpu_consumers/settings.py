"""The GPU consumer's settings, read once from the environment in the entry point and passed down.

Variables (defaults in brackets): ``KAFKA_BOOTSTRAP_SERVERS`` [required], ``TOPIC_PREFIX``
[storee.], ``GPU_POOLS_FILE`` / ``GPU_POOLS`` [only the built-in ``default`` pool], ``OUTPUT_DIR``
[$STOREE_HOME/outputs], ``STOREE_MODEL_CACHE`` [$STOREE_HOME/models], ``TIER_WEIGHT_PREMIUM`` [3],
``TIER_WEIGHT_FREE`` [1], ``KAFKA_SESSION_TIMEOUT_MS`` [45000], ``KAFKA_MAX_POLL_INTERVAL_MS``
[300000], ``GPU_POLL_TIMEOUT_S`` [0.02], ``PROGRESS_INTERVAL_S`` [0.5], ``TASK_MAX_RETRIES`` [3],
``RETRY_BASE_S`` [1.0], ``RETRY_MAX_S`` [30.0], ``SHUTDOWN_GRACE_S`` [120], ``METRICS_PORT`` [off;
child ``i`` of a multi-device run listens on port + i], ``READY_FILE`` [none].

Takeover and cancels: ``GPU_STATIC_MEMBERSHIP`` [1: a ``group.instance.id`` per member, see
:mod:`gpu_consumers.membership`], ``GPU_INSTANCE_ID`` [the host name; the base of the instance ids,
set it where host names are not stable], ``GPU_LEAVE_GROUP_ON_STOP`` [1: a graceful stop leaves the
group so its partitions move at once; 0 keeps the membership for a restart within the session
timeout], ``CANCEL_LOOKBACK_S`` [``MAX_TASK_TTL``, else 604800 = 7 days: how far back a starting
member reads StoryCancelled events; at least the longest a task may wait], ``CANCEL_CATCHUP_TIMEOUT_S``
[60: how long the first batch waits for those to be read].

Re-render requests (:mod:`gpu_consumers.rerender`): ``RERENDER_REFRESH_S`` [5: how often a member
re-reads its groups' requests from the output store; it reads them when it starts].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gpu_consumers.exceptions import PoolConfigError
from gpu_consumers.pools import PoolConfig, load_pools
from ops.runtime.config import ConnectionSettings, Env, pools_source
from ops.runtime.exceptions import ConfigError
from schemas.records import Tier


@dataclass(frozen=True)
class GpuConsumerSettings:
    """Everything one GPU consumer process needs to know."""

    connection: ConnectionSettings
    bootstrap_servers: str
    pools: Mapping[str, PoolConfig]
    output_dir: Path
    model_cache: Path
    premium_weight: int
    free_weight: int
    session_timeout_ms: int
    max_poll_interval_ms: int
    # How long one poll may block: bounds how late a finished batch's offsets are committed and a
    # drained tier's partitions resumed, so it is short; an idle consumer wakes 50 times a second.
    poll_timeout_s: float
    progress_interval_s: float
    max_retries: int
    retry_base_s: float
    retry_max_s: float
    shutdown_grace_s: float
    metrics_port: int | None
    ready_file: Path | None
    static_membership: bool = True
    instance_id: str | None = None
    leave_group_on_stop: bool = True
    cancel_lookback_s: float = 7 * 24 * 3600.0
    cancel_catchup_timeout_s: float = 60.0
    rerender_refresh_s: float = 5.0
    # Where the per-host instance slot locks live ($STOREE_HOME/run/gpu-members).
    member_lock_dir: Path = Path.home() / ".storee" / "run" / "gpu-members"

    @classmethod
    def from_env(cls, env: Env | None = None) -> GpuConsumerSettings:
        env = env or Env()
        connection = ConnectionSettings.from_env(env)
        home = Path(env.str("STOREE_HOME", str(Path.home() / ".storee"))).expanduser()
        model_cache = Path(env.str("STOREE_MODEL_CACHE", str(home / "models"))).expanduser()
        text, source = pools_source(env)
        try:
            pools = load_pools(text=text, source=source, model_cache=model_cache)
        except PoolConfigError as exc:
            raise ConfigError(str(exc)) from None
        session_ms = env.int("KAFKA_SESSION_TIMEOUT_MS", 45_000, minimum=1_000)
        poll_ms = env.int("KAFKA_MAX_POLL_INTERVAL_MS", 300_000, minimum=1_000)
        if poll_ms < session_ms:
            # librdkafka refuses this combination; say so with the variable names.
            raise ConfigError(
                f"KAFKA_MAX_POLL_INTERVAL_MS ({poll_ms}) must be at least "
                f"KAFKA_SESSION_TIMEOUT_MS ({session_ms})"
            )
        bootstrap = connection.kafka()
        metrics_port = env.int("METRICS_PORT", 0, minimum=0, maximum=65535)
        ready = env.optional("READY_FILE")
        return cls(
            connection=connection,
            bootstrap_servers=bootstrap,
            pools=pools,
            output_dir=output_dir_of(env),
            model_cache=model_cache,
            premium_weight=env.int("TIER_WEIGHT_PREMIUM", 3, minimum=1, maximum=1000),
            free_weight=env.int("TIER_WEIGHT_FREE", 1, minimum=1, maximum=1000),
            session_timeout_ms=session_ms,
            max_poll_interval_ms=poll_ms,
            poll_timeout_s=env.float("GPU_POLL_TIMEOUT_S", 0.02, minimum=0.001, maximum=1.0),
            progress_interval_s=env.float("PROGRESS_INTERVAL_S", 0.5, minimum=0.0),
            max_retries=env.int("TASK_MAX_RETRIES", 3, minimum=0, maximum=100),
            retry_base_s=env.float("RETRY_BASE_S", 1.0, minimum=0.0),
            retry_max_s=env.float("RETRY_MAX_S", 30.0, minimum=0.0),
            shutdown_grace_s=env.float("SHUTDOWN_GRACE_S", 120.0, minimum=0.0),
            metrics_port=metrics_port or None,
            ready_file=Path(ready).expanduser() if ready else None,
            static_membership=env.bool("GPU_STATIC_MEMBERSHIP", True),
            instance_id=env.optional("GPU_INSTANCE_ID"),
            leave_group_on_stop=env.bool("GPU_LEAVE_GROUP_ON_STOP", True),
            # A task waits at most MAX_TASK_TTL to start, so an older cancel can only name dead tasks.
            cancel_lookback_s=env.float(
                "CANCEL_LOOKBACK_S", env.float("MAX_TASK_TTL", 7 * 24 * 3600.0, minimum=0.1), minimum=0.0
            ),
            cancel_catchup_timeout_s=env.float("CANCEL_CATCHUP_TIMEOUT_S", 60.0, minimum=0.0),
            rerender_refresh_s=env.float("RERENDER_REFRESH_S", 5.0, minimum=0.0, maximum=3600.0),
            member_lock_dir=home / "run" / "gpu-members",
        )

    def pool(self, name: str) -> PoolConfig:
        """The pool called ``name``; the error lists the configured ones."""
        try:
            return self.pools[name]
        except KeyError:
            raise ConfigError(f"pool {name!r} is not configured; known: {sorted(self.pools)}") from None

    def group_id(self, pool: str, tier: Tier) -> str:
        """The consumer group every member of ``pool`` joins for ``tier`` (see gpu_consumers.consumer)."""
        return f"{self.connection.topic_prefix}gpu-consumers.{pool}.{Tier(tier).value}"


def output_dir_of(env: Env) -> Path:
    """``OUTPUT_DIR`` [$STOREE_HOME/outputs]: read the same way by ``storee replay`` (re-render requests)."""
    home = Path(env.str("STOREE_HOME", str(Path.home() / ".storee"))).expanduser()
    return Path(env.str("OUTPUT_DIR", str(home / "outputs"))).expanduser()
