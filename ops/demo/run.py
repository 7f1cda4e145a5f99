"""The main job behind ``make run``: bring Storee up, render the sample stories through the HTTP API,
show live progress, print what was made, and stop what it started.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ops.client import POLL_INTERVAL_S, send_politely
from ops.runtime.exceptions import StoreeError
from ops.system import System
from schemas.records import Tier
from schemas.view import TERMINAL_STORY_STATUSES

SAMPLES = Path(__file__).parent
TERMINAL = {status.value for status in TERMINAL_STORY_STATUSES}


@dataclass
class Run:
    """One sample story on its way through the system."""

    sample: str
    title: str
    tier: str
    story_id: str = ""
    submitted: float = 0.0
    finished: float | None = None
    status: str = "submitting"
    task_count: int = 0
    done: int = 0
    files: list[Path] = field(default_factory=list)


def load_samples(directory: Path = SAMPLES) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) | {"sample": path.stem} for path in sorted(directory.glob("*.json"))]


async def create_accounts(mongodb_url: str, database: str) -> dict[str, str]:
    """A fresh demo account per tier; returns tier -> API key."""
    from gateway.accounts import AccountStore

    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        store = AccountStore(client[database])
        return {tier.value: (await store.create(tier, f"demo-{tier.value}")).api_key for tier in Tier}
    finally:
        await client.close()


def run_demo(system: System, console: Console, output_dir: Path, timeout: float, database: str) -> list[Run]:
    """Submit every sample story, follow it to the end, download its clips; return what happened."""
    keys = asyncio.run(create_accounts(system.stack.mongodb_url, database))
    base = system.settings.gateway_url
    runs: list[Run] = []
    with httpx.Client(base_url=base, timeout=30.0) as http:
        for sample in load_samples():
            run = Run(sample["sample"], sample["title"], sample["tier"])
            body = {"title": sample["title"], **sample["story"]}
            run.submitted = time.monotonic()
            response = http.post("/v1/stories", json=body, headers=_auth(keys[run.tier]))
            if response.status_code != 202:
                raise StoreeError(
                    f"submitting {run.sample} failed: {response.status_code} {response.text[:300]}"
                )
            run.story_id = response.json()["story_id"]
            run.status = response.json().get("status", "queued")
            runs.append(run)
        _follow(http, runs, keys, console, timeout)
        for run in runs:
            run.files = _download(http, run, keys[run.tier], output_dir)
    return runs


def _follow(
    http: httpx.Client, runs: list[Run], keys: dict[str, str], console: Console, timeout: float
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        bars = {
            run.story_id: progress.add_task(f"{run.title} ({run.tier})", total=None, status="queued")
            for run in runs
        }
        while any(run.finished is None for run in runs):
            if time.monotonic() > deadline:
                raise StoreeError(
                    f"stories not finished within {timeout:.0f}s: "
                    + ", ".join(r.title for r in runs if r.finished is None)
                )
            # One list request per account per tick keeps well inside the key's rate limit.
            for tier in sorted({run.tier for run in runs if run.finished is None}):
                answer = send_politely(
                    lambda tier=tier: http.get(
                        "/v1/stories", params={"limit": 100}, headers=_auth(keys[tier])
                    )  # type: ignore[misc]
                )
                answer.raise_for_status()
                listed = {story["story_id"]: story for story in answer.json()["stories"]}
                for run in runs:
                    story = listed.get(run.story_id)
                    if run.tier != tier or run.finished is not None or story is None:
                        continue  # not in the job view yet
                    run.status = story["status"]
                    run.task_count = story.get("task_count") or 0
                    run.done = (story.get("counts") or {}).get("completed", 0)
                    bar = bars[run.story_id]
                    progress.update(bar, total=run.task_count or None, completed=run.done, status=run.status)
                    if run.status in TERMINAL:
                        run.finished = time.monotonic()
            time.sleep(POLL_INTERVAL_S)


def _download(http: httpx.Client, run: Run, key: str, output_dir: Path) -> list[Path]:
    answer = send_politely(lambda: http.get(f"/v1/stories/{run.story_id}", headers=_auth(key)))
    answer.raise_for_status()
    story = answer.json()
    files = []
    for output in sorted(story.get("outputs", []), key=lambda o: o.get("scene_index") or 0):
        if not output.get("url"):
            continue
        target = output_dir / run.sample / f"scene-{output['scene_index']:02d}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        request = http.build_request("GET", output["url"], headers=_auth(key))
        response = send_politely(lambda request=request: http.send(request, stream=True))  # type: ignore[misc]
        try:
            response.raise_for_status()
            with open(target, "wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        finally:
            response.close()
        files.append(target)
    return files


def summary_table(runs: list[Run]) -> Table:
    table = Table(title="Storee demo")
    for column in ("story", "tier", "scenes", "status", "wall time", "mp4 files"):
        table.add_column(column, overflow="fold")
    for run in runs:
        wall = f"{run.finished - run.submitted:.1f}s" if run.finished else "-"
        files = "\n".join(_shown(path) for path in run.files) or "-"
        table.add_row(run.title, run.tier, f"{run.done}/{run.task_count}", run.status, wall, files)
    return table


def _shown(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
