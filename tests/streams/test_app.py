"""The worker is built from the settings it is given: nothing at import, nothing shared between builds."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from ops.runtime.config import Env
from streams import commands
from streams.app import StreamApp, build_app
from streams.metrics import StreamMetrics
from streams.services import OutletService, ViewLoops
from streams.settings import StreamSettings


def _settings(tmp_path: Path, prefix: str = "t1.") -> StreamSettings:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URL": "mongodb://x", "TOPIC_PREFIX": prefix,
           "STREAMS_DATADIR": str(tmp_path / "fresh" / "datadir")}  # fmt: skip
    return StreamSettings.from_env(Env(env))


@pytest.fixture
def built(tmp_path: Path) -> Iterator[list[StreamApp]]:
    apps: list[StreamApp] = []
    yield apps
    for stream_app in apps:
        stream_app.outlet.close()


def test_build_app_composes_agents_tables_timers_and_services(tmp_path: Path, built: list) -> None:
    stream_app = build_app(_settings(tmp_path))
    built.append(stream_app)
    app = stream_app.app
    assert app.conf.id == "t1.streams"
    topics = {name: agent.channel.topics for name, agent in app.agents.items()}
    assert topics == {
        "streams.app.splitter": ("t1.stories.submitted",),
        "streams.app.batcher": ("t1.tasks.requested", "t1.task.events"),
    }
    assert set(app.tables) == {"batcher-pending", "batcher-cancelled"}
    assert len(app._app_tasks) == 2  # the batch timer and the stall watchdog
    assert [type(service) for service in app._extra_services] == [OutletService, ViewLoops]
    assert stream_app.outlet.flush in app.flush_hooks
    assert (tmp_path / "fresh" / "datadir").is_dir()  # Faust would not create the parents


def test_two_builds_share_nothing(tmp_path: Path, built: list) -> None:
    metrics = StreamMetrics()
    first = build_app(_settings(tmp_path, "a."), metrics=metrics)
    second = build_app(_settings(tmp_path, "b."))
    built.extend([first, second])
    assert first.app is not second.app and first.outlet is not second.outlet
    assert first.metrics is metrics and second.metrics.registry is not metrics.registry
    assert first.catalog.stories_submitted == "a.stories.submitted"
    assert second.catalog.stories_submitted == "b.stories.submitted"


def test_the_command_runs_the_app_its_build_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MONGODB_URL", "mongodb://x")
    monkeypatch.setenv("TOPIC_PREFIX", "cmd.")
    seen: dict[str, Any] = {}

    class FakeWorker:
        def __init__(self, app: object, loglevel: str) -> None:
            seen.update(app=app, loglevel=loglevel)

        def execute_from_commandline(self) -> None:
            raise SystemExit(3)

    def build(settings: StreamSettings) -> Any:
        seen["settings"] = settings
        return SimpleNamespace(app="the app", metrics=StreamMetrics())

    monkeypatch.setattr(faust, "Worker", FakeWorker)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(), build=build)
    args = parser.parse_args(["streams", "--skip-topics", "--loglevel", "warning"])
    assert args.handler(args) == 3
    assert seen["app"] == "the app" and seen["loglevel"] == "warning"
    assert seen["settings"].catalog.stories_submitted == "cmd.stories.submitted"


def test_dead_letter_counters_exist_from_the_start() -> None:
    from prometheus_client import generate_latest

    from streams.metrics import StreamMetrics

    text = generate_latest(StreamMetrics().registry).decode()
    for agent in ("splitter", "batcher", "materializer"):
        assert f'storee_streams_dlq_total{{agent="{agent}"}} 0.0' in text
