from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu_consumers.pools import DEFAULT_POOL, resolve_devices
from gpu_consumers.settings import GpuConsumerSettings
from ops.runtime.config import Env, pool_capabilities
from ops.runtime.exceptions import ConfigError
from schemas.records import TaskType, Tier

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "STOREE_HOME": "/srv/storee"}


def settings(**env: str) -> GpuConsumerSettings:
    return GpuConsumerSettings.from_env(Env({**BASE, **env}))


def test_defaults() -> None:
    s = settings()
    assert s.bootstrap_servers == "127.0.0.1:1"
    assert s.output_dir == Path("/srv/storee/outputs")
    assert (s.premium_weight, s.free_weight) == (3, 1)
    assert s.group_id("default", Tier.FREE) == "storee.gpu-consumers.default.free"
    pool = s.pool(DEFAULT_POOL)
    assert pool.model == "/srv/storee/models/tiny-wan" and pool.make_tiny


def test_pools_from_a_file_add_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "pools.json"
    path.write_text(
        json.dumps(
            {
                "wan": {
                    "pipeline": "text_to_video",
                    "model": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
                    "dtype": "bfloat16",
                    "device_policy": "cuda",
                    "max_batch_size": 4,
                },
                "sim": {"pipeline": "simulated", "simulated_seconds": 0.2},
            }
        )
    )
    s = settings(GPU_POOLS_FILE=str(path))
    assert sorted(s.pools) == ["default", "sim", "wan"]
    assert s.pool("wan").dtype == "bfloat16" and s.pool("wan").max_batch_size == 4
    assert s.pool("sim").simulated and resolve_devices(s.pool("sim"), None) == ["cpu"]
    # What each pool runs is what the gateway reads from the same file: one mapping, not two copies.
    declared = pool_capabilities(Env({"GPU_POOLS_FILE": str(path)}))
    assert {name: pool.task_types for name, pool in s.pools.items()} == dict(declared)
    assert s.pool("sim").task_types == frozenset(TaskType)
    assert s.pool(DEFAULT_POOL).task_types == frozenset({TaskType.TEXT_TO_VIDEO})


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ('{"p": {"pipeline": "video"}}', "pool 'p': pipeline must be one of"),
        ('{"p": {"pipeline": "text_to_video"}}', "pool 'p': model must name"),
        (
            '{"p": {"pipeline": "simulated", "max_batch_size": 0}}',
            "max_batch_size must be a positive integer",
        ),
        ('{"p": {"pipeline": "simulated", "colour": 1}}', "unknown fields ['colour']"),
        ('{"a.b": {"pipeline": "simulated"}}', "pool 'a.b': names are"),
        ("[1]", "GPU_POOLS must be a JSON object"),
        ("{", "GPU_POOLS is not valid JSON"),
    ],
)
def test_malformed_pools_name_the_problem(pools: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", "\\[").replace("]", "\\]")):
        settings(GPU_POOLS=pools)


def test_unknown_pool_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="pool 'nope' is not configured; known: \\['default'\\]"):
        settings().pool("nope")


def test_max_poll_interval_below_session_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="KAFKA_MAX_POLL_INTERVAL_MS \\(6000\\) must be at least"):
        settings(KAFKA_SESSION_TIMEOUT_MS="10000", KAFKA_MAX_POLL_INTERVAL_MS="6000")


def test_devices_are_explicit() -> None:
    pool = settings().pool(DEFAULT_POOL)
    assert resolve_devices(pool, "cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    assert resolve_devices(pool, "cpu,cpu") == ["cpu", "cpu"]
    with pytest.raises(Exception, match="--devices takes cpu or cuda:N entries, got 'gpu0'"):
        resolve_devices(pool, "gpu0")


def test_takeover_and_cancellation_defaults() -> None:
    s = settings()
    assert s.static_membership and s.leave_group_on_stop and s.instance_id is None
    assert s.cancel_lookback_s == 7 * 24 * 3600 and s.cancel_catchup_timeout_s == 60
    assert s.member_lock_dir == Path("/srv/storee/run/gpu-members")


def test_takeover_and_cancellation_settings() -> None:
    s = settings(
        GPU_STATIC_MEMBERSHIP="false",
        GPU_INSTANCE_ID="render-0",
        GPU_LEAVE_GROUP_ON_STOP="0",
        CANCEL_LOOKBACK_S="3600",
        CANCEL_CATCHUP_TIMEOUT_S="5",
    )
    assert not s.static_membership and not s.leave_group_on_stop and s.instance_id == "render-0"
    assert (s.cancel_lookback_s, s.cancel_catchup_timeout_s) == (3600, 5)
    assert settings(MAX_TASK_TTL="86400").cancel_lookback_s == 86400  # follows the longest wait
    with pytest.raises(ConfigError, match="CANCEL_LOOKBACK_S must be a number"):
        settings(CANCEL_LOOKBACK_S="a week")
