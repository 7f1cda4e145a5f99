"""``storee submit|status|watch|result|list``: the gateway's HTTP API from the command line.

The API key comes from ``STOREE_API_KEY`` and the gateway from ``STOREE_URL`` (default
``http://127.0.0.1:8000``). Errors the API answers are printed as one line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ops.client import POLL_INTERVAL_S, ClientSettings, StoreeClient, StreamEvent, story_body_from
from schemas.view import TERMINAL_STORY_STATUSES

TERMINAL = {status.value for status in TERMINAL_STORY_STATUSES}


def register(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser("submit", help="submit a story (a JSON or text file, or the text itself)")
    submit.add_argument("source", metavar="FILE|TEXT")
    submit.add_argument("--title")
    submit.add_argument("--model", help="model pool (default: the gateway's default)")
    submit.add_argument("--task-type", choices=("text_to_video", "image_to_video", "text_to_audio"))
    submit.add_argument("--idempotency-key", help="resubmitting with the same key returns the same story")
    submit.add_argument("--wait", action="store_true", help="follow the story until it finishes")
    submit.set_defaults(handler=_submit)
    status = subparsers.add_parser("status", help="show a story and its scenes")
    status.add_argument("story_id")
    status.set_defaults(handler=_status)
    watch = subparsers.add_parser(
        "watch", help="print the story's events as they happen (exit 0 if it completes, 1 if not)"
    )
    watch.add_argument("story_id")
    watch.add_argument("--json", action="store_true", help="one JSON object per event")
    watch.add_argument("--last-event-id", help="resume after this event (no snapshot first)")
    watch.set_defaults(handler=_watch)
    retry = subparsers.add_parser("retry", help="run a failed story's failed and expired tasks again")
    retry.add_argument("story_id")
    retry.add_argument("--start-within", type=int, metavar="SECONDS", help="time the tasks have to start")
    retry.add_argument("--wait", action="store_true", help="follow the story until this run ends")
    retry.set_defaults(handler=_retry)
    result = subparsers.add_parser("result", help="download a story's clips (ZIP) or one task's clip")
    result.add_argument("id", help="a story id, or a task id (story_id:index)")
    result.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    result.set_defaults(handler=_result)
    listing = subparsers.add_parser("list", help="your stories, newest first")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=_list)


def _client() -> StoreeClient:
    return StoreeClient(ClientSettings.from_env())


def _submit(args: argparse.Namespace) -> int:
    client = _client()
    try:
        body = story_body_from(args.source, args.title, args.model, args.task_type)
        accepted = client.submit(body, args.idempotency_key)
        console = Console()
        console.print(f"story_id: {accepted['story_id']}  status: {accepted.get('status')}")
        if args.wait:
            return _follow(client, accepted["story_id"], console)
        return 0
    finally:
        client.close()


def _status(args: argparse.Namespace) -> int:
    client = _client()
    try:
        story = client.story(args.story_id)
    finally:
        client.close()
    console = Console()
    console.print(
        f"{story.get('title') or story['story_id']}: {story['status']} "
        f"({story.get('progress', 0.0):.0%}, tier {story.get('tier')})"
    )
    table = Table()
    for column in ("scene", "task", "status", "progress", "error"):
        table.add_column(column)
    for task in story.get("tasks", []):
        error = task.get("error") or {}
        table.add_row(
            str(task.get("scene_index")),
            task["task_id"],
            task["status"],
            f"{task.get('progress', 0):.0%}",
            error.get("message", "") if isinstance(error, dict) else str(error),
        )
    console.print(table)
    return 0


def _watch(args: argparse.Namespace) -> int:
    """Follow the story's event stream, one line per event; the exit status says how it ended."""
    client = _client()
    console = Console(highlight=False)
    status = None
    try:
        for event in client.events(args.story_id, last_event_id=args.last_event_id):
            if args.json:
                print(json.dumps({"event": event.name, "id": event.id, "data": event.data}), flush=True)
            else:
                console.print(event_line(event), soft_wrap=True, markup=False)
            if event.name == "snapshot" and isinstance(event.data, dict):
                status = event.data.get("status")
        if status not in TERMINAL:  # it ended on story.completed: the view says how
            status = client.story(args.story_id)["status"]
    finally:
        client.close()
    if not args.json:
        console.print(f"{args.story_id}: {status}")
    return 0 if status == "completed" else 1


def _retry(args: argparse.Namespace) -> int:
    client = _client()
    try:
        retried = client.retry(args.story_id, start_within_s=args.start_within)
        console = Console()
        console.print(
            f"story_id: {retried['story_id']}  retry: {retried['retry']}  tasks: {len(retried['task_ids'])}"
        )
        if args.wait:
            return _follow(client, retried["story_id"], console, retry=retried["retry"])
        return 0
    finally:
        client.close()


def event_line(event: StreamEvent) -> str:
    """One line for a person: the event's name and what it says."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.name == "snapshot":
        return (
            f"snapshot        {data.get('status')} {data.get('progress', 0.0):.0%} "
            f"({data.get('task_count')} tasks)"
        )
    task = data.get("task_id", "")
    details = {
        "task.started": f"attempt {data.get('attempt', 0)}",
        "task.progress": f"step {data.get('step')}/{data.get('total_steps')}",
        "task.completed": f"{len(data.get('outputs') or [])} output(s), {data.get('run_ms', 0) / 1000:.1f}s",
        "task.failed": f"{data.get('error_class')}: {data.get('message')}"
        + (" (will retry)" if data.get("retriable") else ""),
        "task.expired": "its deadline passed",
        "story.cancelled": str(data.get("reason") or ""),
        "story.completed": (
            f"completed {data.get('tasks_completed')}, failed {data.get('tasks_failed')}, "
            f"expired {data.get('tasks_expired')}"
        ),
    }.get(event.name, json.dumps(data))
    return " ".join(part for part in (f"{event.name:<15}", task, details) if part).rstrip()


def _follow(client: StoreeClient, story_id: str, console: Console, *, retry: int = 0) -> int:
    """Poll the story until it ends (its run ``retry``: the view shows a new run within moments)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(story_id, total=None, status="queued")
        while True:
            story = client.story(story_id)
            done = sum(1 for task in story.get("tasks", []) if task["status"] == "completed")
            progress.update(
                bar,
                total=story.get("task_count") or None,
                completed=done,
                status=story["status"],
                description=story.get("title") or story_id,
            )
            if story["status"] in TERMINAL and story.get("retry", 0) >= retry:
                break
            time.sleep(POLL_INTERVAL_S)
    console.print(f"{story_id}: {story['status']}")
    return 0 if story["status"] == "completed" else 1


def _result(args: argparse.Namespace) -> int:
    client = _client()
    kind = "tasks" if ":" in args.id else "stories"
    try:
        size = client.download(f"/v1/{kind}/{args.id}/result", args.output)
    finally:
        client.close()
    Console().print(f"wrote {args.output} ({size:,} bytes)")
    return 0


def _list(args: argparse.Namespace) -> int:
    client = _client()
    try:
        page = client.stories(args.status, args.limit)
    finally:
        client.close()
    table = Table()
    for column in ("story", "title", "status", "scenes", "progress", "tier"):
        table.add_column(column)
    for story in page.get("stories", page.get("items", [])):
        table.add_row(
            story["story_id"],
            story.get("title") or "",
            story["status"],
            str(story.get("task_count") or ""),
            f"{story.get('progress', 0):.0%}",
            story.get("tier") or "",
        )
    Console().print(table)
    return 0
