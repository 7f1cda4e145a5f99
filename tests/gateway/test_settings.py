"""Gateway settings from the environment, and the ``storee gateway`` / ``storee accounts`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gateway import commands
from gateway.accounts import hash_key
from gateway.settings import GatewaySettings
from ops.runtime.config import Env
from ops.runtime.exceptions import ConfigError
from schemas.records import TaskType
from schemas.view import ACCOUNTS, API_KEYS

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "MONGODB_URL": "mongodb://user:hunter2@db:27017"}


def test_from_env_reads_every_setting_and_masks_the_url():
    settings = GatewaySettings.from_env(
        Env(
            {
                **BASE,
                "GPU_POOLS": "default, big",
                "PORT": "9000",
                "WORKERS": "4",
                "OUTPUT_DIR": "/data/out",
                "RATE_LIMIT_USER_PER_MINUTE": "30",
                "RATE_LIMIT_ACCOUNT_PER_MINUTE": "120",
                "RATE_LIMIT_ACCOUNT_BURST": "20",
                "TASK_TTL": "900",
                "WEBHOOK_ALLOW_PRIVATE": "true",
                "PUBLISH_TIMEOUT": "2.5",
                "MAX_SCENES": "8",
            }
        )
    )
    assert settings.pools == ("default", "big") and settings.port == 9000 and settings.workers == 4
    assert dict(settings.pool_capabilities) == {
        "default": {TaskType.TEXT_TO_VIDEO},
        "big": {TaskType.TEXT_TO_VIDEO},
    }
    assert settings.output_dir == Path("/data/out") and settings.user_limit_per_minute == 30
    assert settings.account_rate_per_minute == 120 and settings.account_burst == 20
    assert settings.task_ttl_s == 900 and settings.webhook_allow_private and settings.publish_timeout_s == 2.5
    assert settings.max_scenes == 8 and settings.kafka_bootstrap_servers == "k:9092"
    assert "hunter2" not in repr(settings)
    assert settings.catalog.stories_submitted == "storee.stories.submitted"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("RATE_LIMIT_USER_PER_MINUTE", "-1"),
        ("WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("GPU_POOLS", "a.b"),
        ("GPU_POOLS", '{"wan": {"model": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}}'),  # no pipeline
        ("GPU_POOLS", '{"wan": {"pipeline": "video", "model": "x"}}'),
        ("PUBLISH_TIMEOUT", "0"),
    ],
)
def test_a_bad_variable_names_itself(name, value):
    with pytest.raises(ConfigError, match=name):
        GatewaySettings.from_env(Env({**BASE, name: value}))


def test_pools_declare_what_they_run(tmp_path: Path):
    path = tmp_path / "pools.json"
    path.write_text(
        json.dumps(
            {
                "i2v": {"pipeline": "image_to_video", "model": "x"},
                "voice": {"pipeline": "text_to_audio", "model": "y"},
                "bench": {"pipeline": "simulated"},
            }
        )
    )
    settings = GatewaySettings.from_env(Env({**BASE, "GPU_POOLS_FILE": str(path)}))
    assert settings.pools == ("default", "i2v", "voice", "bench")
    assert settings.pool_capabilities["i2v"] == {TaskType.IMAGE_TO_VIDEO}
    assert settings.pools_running(TaskType.TEXT_TO_AUDIO) == ("voice", "bench")
    assert settings.pools_running(TaskType.TEXT_TO_VIDEO) == ("default", "bench")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="storee")
    commands.register(root.add_subparsers(dest="command", required=True))
    return root


def test_commands_parse():
    served = parser().parse_args(["gateway", "--port", "9001", "--workers", "2"])
    assert served.handler is commands._serve and served.port == 9001 and served.workers == 2
    created = parser().parse_args(["accounts", "create", "--tier", "free", "--name", "studio"])
    assert created.tier == "free" and created.name == "studio"
    with pytest.raises(SystemExit):
        parser().parse_args(["accounts", "create", "--tier", "gold"])


@pytest.mark.integration
def test_accounts_create_prints_a_key_once_and_stores_its_hash(monkeypatch, capsys, mongo_url, mongo_db):
    monkeypatch.setenv("MONGODB_URL", mongo_url)
    monkeypatch.setenv("MONGODB_DATABASE", mongo_db.name)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "unused:9092")
    args = parser().parse_args(["accounts", "create", "--tier", "premium", "--name", "studio"])
    assert args.handler(args) == 0
    printed = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    key = printed["api_key"].strip()
    account = mongo_db[ACCOUNTS].find_one({"_id": printed["account_id"].strip()})
    assert account["tier"] == "premium" and account["name"] == "studio"
    assert mongo_db[API_KEYS].find_one({"_id": hash_key(key)})["account_id"] == account["_id"]
