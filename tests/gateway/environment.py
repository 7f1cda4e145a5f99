"""The environment that makes a served gateway (``ops.gateway_server.served``) run with test settings."""

from __future__ import annotations

import json

from gateway.settings import DEFAULT_CAPABILITIES, GatewaySettings
from ops.runtime.config import PIPELINE_TASK_TYPES


def gateway_env(settings: GatewaySettings) -> dict[str, str]:
    """Environment variables that make ``GatewaySettings.from_env`` equal the given test settings."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGODB_URL": str(settings.mongodb_url),
        "MONGODB_DATABASE": settings.mongodb_database,
        "TOPIC_PREFIX": settings.topic_prefix,
        "OUTPUT_DIR": str(settings.output_dir),
        "RATE_LIMIT_USER_PER_MINUTE": str(settings.user_limit_per_minute),
        "RATE_LIMIT_ACCOUNT_PER_MINUTE": str(settings.account_rate_per_minute),
        "RATE_LIMIT_ACCOUNT_BURST": str(settings.account_burst),
        "PUBLISH_TIMEOUT": str(settings.publish_timeout_s),
        "SSE_KEEPALIVE": str(settings.sse_keepalive_s),
        "SSE_IDLE_TIMEOUT": str(settings.sse_idle_timeout_s),
        "SSE_MAX_DURATION": str(settings.sse_max_duration_s),
        "SSE_MAX_STREAMS_PER_ACCOUNT": str(settings.sse_max_streams_per_account),
        **pools_env(settings),
    }


def pools_env(settings: GatewaySettings) -> dict[str, str]:
    """``GPU_POOLS`` declaring the settings' pools, each with the pipeline kind that runs what it runs."""
    if dict(settings.pool_capabilities) == dict(DEFAULT_CAPABILITIES):
        return {}
    kinds = {task_types: kind for kind, task_types in PIPELINE_TASK_TYPES.items()}
    pools = {
        name: {"pipeline": kinds[runs], "model": "unused"}
        for name, runs in settings.pool_capabilities.items()
    }
    return {"GPU_POOLS": json.dumps(pools)}
