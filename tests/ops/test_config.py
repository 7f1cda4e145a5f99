"""Settings read from the environment: typed, named in every error, secrets masked."""

from __future__ import annotations

import json

import pytest

from ops.runtime.config import (
    PIPELINE_TASK_TYPES,
    ConnectionSettings,
    Env,
    Secret,
    pool_capabilities,
    pool_names,
)
from ops.runtime.exceptions import ConfigError
from schemas.records import TaskType


def test_typed_values_and_errors_name_the_variable():
    env = Env({"N": "5", "F": "0.5", "B": "yes", "S": "  text  ", "BAD": "x"})
    assert (env.int("N", 1), env.float("F", 1.0), env.bool("B", False), env.str("S")) == (
        5,
        0.5,
        True,
        "text",
    )
    assert env.int("MISSING", 7) == 7
    with pytest.raises(ConfigError, match="BAD must be an integer, got 'x'"):
        env.int("BAD", 1)
    with pytest.raises(ConfigError, match="N must be at most 4"):
        env.int("N", 1, maximum=4)
    with pytest.raises(ConfigError, match="BAD must be true or false"):
        env.bool("BAD", False)
    with pytest.raises(ConfigError, match="MISSING is not set"):
        env.str("MISSING")


def test_secrets_are_masked():
    settings = ConnectionSettings.from_env(Env({"MONGODB_URL": "mongodb://u:hunter2@db/"}))
    assert isinstance(settings.mongodb_url, Secret) and "hunter2" not in repr(settings)
    with pytest.raises(ConfigError, match="TOPIC_PREFIX may only hold"):
        ConnectionSettings.from_env(Env({"TOPIC_PREFIX": "bad prefix"}))


def test_pool_names_from_json_list_or_file(tmp_path):
    assert pool_names(Env({})) == ("default",)
    assert pool_names(Env({"GPU_POOLS": "wan, ltx,default"})) == ("default", "wan", "ltx")
    assert pool_names(Env({"GPU_POOLS": json.dumps({"wan": {"model": "x"}})})) == ("default", "wan")
    path = tmp_path / "pools.json"
    path.write_text(json.dumps({"ltx": {}, "default": {}}))
    assert pool_names(Env({"GPU_POOLS_FILE": str(path), "GPU_POOLS": "ignored"})) == ("default", "ltx")
    with pytest.raises(ConfigError, match="GPU_POOLS is not valid JSON"):
        pool_names(Env({"GPU_POOLS": "{nope"}))
    with pytest.raises(ConfigError, match="cannot be read"):
        pool_names(Env({"GPU_POOLS_FILE": str(tmp_path / "missing.json")}))


VIDEO, IMAGE, AUDIO = TaskType.TEXT_TO_VIDEO, TaskType.IMAGE_TO_VIDEO, TaskType.TEXT_TO_AUDIO


def test_pool_capabilities_follow_each_pools_pipeline(tmp_path):
    assert dict(pool_capabilities(Env({}))) == {"default": {VIDEO}}
    # Named only by a list: the default kind, text_to_video.
    assert dict(pool_capabilities(Env({"GPU_POOLS": "wan, default"}))) == {"default": {VIDEO}, "wan": {VIDEO}}
    pools = {
        "i2v": {"pipeline": "image_to_video", "model": "x"},
        "voice": {"pipeline": "text_to_audio", "model": "y"},
        "sim": {"pipeline": "simulated"},
        "default": {"pipeline": "simulated"},  # the built-in pool reconfigured
    }
    path = tmp_path / "pools.json"
    path.write_text(json.dumps(pools))
    declared = pool_capabilities(Env({"GPU_POOLS_FILE": str(path)}))
    assert dict(declared) == {
        "default": set(TaskType),
        "i2v": {IMAGE},
        "voice": {AUDIO},
        "sim": set(TaskType),
    }
    assert tuple(declared) == pool_names(Env({"GPU_POOLS_FILE": str(path)}))  # same names, same order
    assert set(PIPELINE_TASK_TYPES) == {"text_to_video", "image_to_video", "text_to_audio", "simulated"}


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ("{nope", "GPU_POOLS is not valid JSON"),
        ('["wan"]', "GPU_POOLS must be a JSON object of pools"),  # JSON, but not an object
        ('{"p": {"model": "x"}}', "GPU_POOLS: pool 'p': pipeline must be one of .* got None"),
        ('{"p": {"pipeline": "video"}}', "GPU_POOLS: pool 'p': pipeline must be one of .* got 'video'"),
        ('{"p": "text_to_video"}', "GPU_POOLS: pool 'p' must be an object"),
    ],
)
def test_malformed_pool_capabilities_name_the_variable(pools, message):
    with pytest.raises(ConfigError, match=message):
        pool_capabilities(Env({"GPU_POOLS": pools}))


def test_malformed_pools_file_names_the_file(tmp_path):
    path = tmp_path / "pools.json"
    path.write_text('["wan"]')
    with pytest.raises(ConfigError, match=f"GPU_POOLS_FILE {path} must be a JSON object of pools"):
        pool_capabilities(Env({"GPU_POOLS_FILE": str(path)}))
