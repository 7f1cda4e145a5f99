"""The stream processors read the same pool list as the gateway and the GPU consumers."""

from __future__ import annotations

import pytest

from ops.runtime.config import Env
from ops.runtime.exceptions import ConfigError
from streams.settings import StreamSettings

SERVERS = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URL": "mongodb://127.0.0.1:2/"}


def test_pools_come_from_gpu_pools_like_everywhere_else():
    settings = StreamSettings.from_env(Env({**SERVERS, "GPU_POOLS": "wan, audio"}))
    assert settings.pools == ("default", "wan", "audio")
    assert settings.catalog.batches("wan", "premium").endswith("batches.wan.premium")
    as_json = StreamSettings.from_env(Env({**SERVERS, "GPU_POOLS": '{"wan": {"model": "x"}}'}))
    assert as_json.pools == ("default", "wan")
    assert StreamSettings.from_env(Env(SERVERS)).pools == ("default",)


def test_batching_defaults_and_errors_name_the_variable():
    settings = StreamSettings.from_env(Env(SERVERS))
    assert (settings.batch_size, settings.batch_timeout_s, settings.task_ttl_s) == (8, 5.0, 300.0)
    assert settings.producer_linger_s == 0.005
    with pytest.raises(ConfigError, match="BATCH_SIZE"):
        StreamSettings.from_env(Env({**SERVERS, "BATCH_SIZE": "0"}))
