"""``storee streams`` start-up: a cluster that cannot take the topic check yet is waited for."""

from __future__ import annotations

import pytest

from ops.runtime.config import Env
from ops.runtime.topic_plan import EnsureReport
from streams import commands
from streams.settings import StreamSettings


def _settings() -> StreamSettings:
    return StreamSettings.from_env(
        Env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MONGODB_URL": "mongodb://x"})
    )


def test_topic_check_is_retried_until_the_cluster_answers(monkeypatch, caplog):
    answers: list[Exception | EnsureReport] = [RuntimeError("node 3 not ready"), EnsureReport((), (), (), ())]
    monkeypatch.setattr(commands, "ensure_topics", lambda admin, catalog: _next(answers))
    monkeypatch.setattr(commands.time, "sleep", lambda seconds: None)
    report = commands._ensure_topics_waiting(_settings())
    assert report.created == () and answers == []
    assert "cannot ensure topics yet (node 3 not ready)" in caplog.text


def test_topic_check_gives_up_after_its_budget(monkeypatch):
    monkeypatch.setattr(commands, "ensure_topics", lambda admin, catalog: _next([RuntimeError("down")]))
    with pytest.raises(RuntimeError, match="down"):
        commands._ensure_topics_waiting(_settings(), budget_s=0.5)


def _next(answers: list) -> EnsureReport:  # type: ignore[type-arg]
    answer = answers.pop(0)
    if isinstance(answer, Exception):
        raise answer
    return answer
