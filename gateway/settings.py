"""The gateway's settings, read once from the environment in its entry point and passed down.

``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL`` are required (``storee gateway`` fills them with the local
stack's addresses when unset). Sizes are bytes, durations seconds, rates per minute. A rate of 0 switches that
limit off. The pools and what each one runs come from ``GPU_POOLS_FILE`` / ``GPU_POOLS``, the configuration
the GPU consumers run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ops.runtime.config import PIPELINE_TASK_TYPES, ConnectionSettings, Env, Secret, pool_capabilities
from ops.runtime.exceptions import ConfigError
from schemas.records import TaskType
from schemas.topics import DEFAULT_POOL, TopicCatalog

DEFAULT_CAPABILITIES: Mapping[str, frozenset[TaskType]] = MappingProxyType(
    {DEFAULT_POOL: PIPELINE_TASK_TYPES["text_to_video"]}
)


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway needs; ``repr`` masks the MongoDB URL."""

    kafka_bootstrap_servers: str
    mongodb_url: Secret
    mongodb_database: str
    topic_prefix: str
    # Pool -> the task types its pipeline runs, default first: work no pool runs is refused (422).
    pool_capabilities: Mapping[str, frozenset[TaskType]] = field(default_factory=lambda: DEFAULT_CAPABILITIES)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    output_dir: Path = Path("~/.storee/outputs")
    # Limits (seed 002): a sliding window per user (API key), a token bucket per account (project).
    user_limit_per_minute: int = 60
    account_rate_per_minute: int = 300
    account_burst: int = 50
    limit_lease_max: int = 50
    # Input caps.
    max_body_bytes: int = 256 * 1024
    max_image_bytes: int = 10 * 1024 * 1024
    max_story_chars: int = 20_000
    max_prompt_chars: int = 2_000
    max_title_chars: int = 200
    max_scenes: int = 64
    # Time.
    task_ttl_s: int = 300
    max_task_ttl_s: int = 7 * 86_400
    publish_timeout_s: float = 5.0
    unavailable_retry_after_s: int = 5
    api_key_cache_ttl_s: float = 30.0
    idempotency_ttl_s: int = 86_400
    webhook_allow_private: bool = False
    # The live progress stream (GET /v1/stories/{id}/events): open streams per account in one gateway
    # process, seconds between keep-alive comments, without an event, and in all; events queued per
    # stream before a slow client's stream is ended (it resumes with Last-Event-ID); records a resume may
    # read back; seconds that read may take.
    sse_max_streams_per_account: int = 10
    sse_keepalive_s: float = 15.0
    sse_idle_timeout_s: float = 600.0
    sse_max_duration_s: float = 3_600.0
    sse_queue_size: int = 1_000
    sse_replay_max_records: int = 200_000
    sse_replay_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> GatewaySettings:
        env = env or Env()
        connection = ConnectionSettings.from_env(env)
        capabilities = pool_capabilities(env)
        try:
            TopicCatalog.build(prefix=connection.topic_prefix, pools=tuple(capabilities))
        except Exception as exc:  # CatalogError names the bad pool; say which variable held it
            raise ConfigError(f"GPU_POOLS: {exc}") from exc
        return cls(
            kafka_bootstrap_servers=connection.kafka(),
            mongodb_url=connection.mongodb(),
            mongodb_database=connection.mongodb_database,
            topic_prefix=connection.topic_prefix,
            pool_capabilities=capabilities,
            host=env.str("HOST", "127.0.0.1"),
            port=env.int("PORT", 8000, minimum=0, maximum=65535),
            workers=env.int("WORKERS", 1, minimum=1, maximum=256),
            # The same default as the GPU consumers that write the clips: $STOREE_HOME/outputs.
            output_dir=Path(
                env.str("OUTPUT_DIR", str(Path(env.str("STOREE_HOME", "~/.storee")).expanduser() / "outputs"))
            ).expanduser(),
            user_limit_per_minute=env.int("RATE_LIMIT_USER_PER_MINUTE", 60, minimum=0),
            account_rate_per_minute=env.int("RATE_LIMIT_ACCOUNT_PER_MINUTE", 300, minimum=0),
            account_burst=env.int("RATE_LIMIT_ACCOUNT_BURST", 50, minimum=1),
            limit_lease_max=env.int("RATE_LIMIT_LEASE_MAX", 50, minimum=1),
            max_body_bytes=env.int("MAX_BODY_BYTES", 256 * 1024, minimum=1024),
            max_image_bytes=env.int("MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024),
            max_story_chars=env.int("MAX_STORY_CHARS", 20_000, minimum=1),
            max_prompt_chars=env.int("MAX_PROMPT_CHARS", 2_000, minimum=1),
            max_title_chars=env.int("MAX_TITLE_CHARS", 200, minimum=1),
            max_scenes=env.int("MAX_SCENES", 64, minimum=1),
            task_ttl_s=env.int("TASK_TTL", 300, minimum=1),
            max_task_ttl_s=env.int("MAX_TASK_TTL", 7 * 86_400, minimum=1),
            publish_timeout_s=env.float("PUBLISH_TIMEOUT", 5.0, minimum=0.1),
            unavailable_retry_after_s=env.int("UNAVAILABLE_RETRY_AFTER", 5, minimum=1),
            api_key_cache_ttl_s=env.float("API_KEY_CACHE_TTL", 30.0, minimum=0.0),
            idempotency_ttl_s=env.int("IDEMPOTENCY_TTL", 86_400, minimum=60),
            webhook_allow_private=env.bool("WEBHOOK_ALLOW_PRIVATE", False),
            sse_max_streams_per_account=env.int("SSE_MAX_STREAMS_PER_ACCOUNT", 10, minimum=1),
            sse_keepalive_s=env.float("SSE_KEEPALIVE", 15.0, minimum=0.05),
            sse_idle_timeout_s=env.float("SSE_IDLE_TIMEOUT", 600.0, minimum=0.1),
            sse_max_duration_s=env.float("SSE_MAX_DURATION", 3_600.0, minimum=0.1),
            sse_queue_size=env.int("SSE_QUEUE_SIZE", 1_000, minimum=1),
            sse_replay_max_records=env.int("SSE_REPLAY_MAX_RECORDS", 200_000, minimum=1),
            sse_replay_timeout_s=env.float("SSE_REPLAY_TIMEOUT", 10.0, minimum=0.1),
        )

    @property
    def pools(self) -> tuple[str, ...]:
        """The pool names, default first."""
        return tuple(self.pool_capabilities)

    def pools_running(self, task_type: TaskType) -> tuple[str, ...]:
        return tuple(name for name, runs in self.pool_capabilities.items() if task_type in runs)

    @property
    def catalog(self) -> TopicCatalog:
        return TopicCatalog.build(prefix=self.topic_prefix, pools=self.pools)
