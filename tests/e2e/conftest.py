"""The whole product started for real: stack, topics, gateway, streams worker and GPU consumer as
supervised child processes (``ops.system.System``), isolated by topic prefix, database, port and
output directory, with the tiny text-to-video model on CPU.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from ops.demo.run import create_accounts
from ops.runtime.config import Env
from ops.stack import StackSettings
from ops.system import System, SystemSettings, isolated_environment
from schemas.topics import TopicCatalog


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningSystem:
    system: System
    http: httpx.Client
    keys: dict[str, str]
    db: Database
    catalog: TopicCatalog
    output_dir: Path
    bootstrap: str

    def auth(self, tier: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tier]}"}

    def story(self, story_id: str) -> dict | None:
        return self.db["stories"].find_one({"_id": story_id})

    def tasks(self, story_id: str) -> list[dict]:
        return list(self.db["tasks"].find({"story_id": story_id}).sort("scene_index", 1))

    def pid(self, name: str) -> int | None:
        return self.system.supervisor.pid(name) if self.system.supervisor else None


def start_running(
    local_stack, mongo_client: MongoClient, root: Path, extra_env: dict[str, str] | None = None
) -> Iterator[RunningSystem]:
    """The whole product in child processes with its own topics, database and port (a generator to
    wrap in a fixture); ``extra_env`` adds settings on top of the e2e defaults."""
    unique = os.urandom(5).hex()
    env = {
        **isolated_environment(root, unique, _free_port()),
        "BATCH_SIZE": "4",
        "BATCH_TIMEOUT": "4",
        **(extra_env or {}),
    }
    stack_settings = StackSettings.from_env()
    system = System(
        SystemSettings.from_env(Env({**os.environ, **env})),
        stack_settings,
        extra_env=env,
        log_dir=root / "logs",
    )
    system.start()
    try:
        system.wait_ready()
        keys = asyncio.run(create_accounts(local_stack.mongodb_url, env["MONGODB_DATABASE"]))
        with httpx.Client(base_url=system.settings.gateway_url, timeout=30.0) as http:
            yield RunningSystem(
                system,
                http,
                keys,
                mongo_client[env["MONGODB_DATABASE"]],
                TopicCatalog.build(prefix=env["TOPIC_PREFIX"]),
                root / "outputs",
                local_stack.bootstrap_servers,
            )
    finally:
        system.stop()
        mongo_client.drop_database(env["MONGODB_DATABASE"])
        for name in ("streams", "webhooks", "gpu-consumer", "gateway"):
            log = system.log_dir / f"{name}.log"
            if log.exists():
                print(f"--- tail of {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))


@pytest.fixture(scope="module")
def running(local_stack, mongo_client: MongoClient, tmp_path_factory) -> Iterator[RunningSystem]:
    yield from start_running(local_stack, mongo_client, tmp_path_factory.mktemp("e2e"))
