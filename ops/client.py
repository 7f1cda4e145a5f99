"""A small client of the gateway's HTTP API, for the ``storee submit|status|watch|result|list`` commands.

Every error the API answers (``{"error": {"code", "message", "field"}}``) becomes one
:class:`ApiError` whose message is a single clear line. :meth:`StoreeClient.events` follows a story's
Server-Sent Events stream, reconnecting with ``Last-Event-ID`` when the gateway ends it early.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ops.runtime.config import Env, Secret
from ops.runtime.exceptions import ConfigError, StoreeError


class ApiError(StoreeError):
    """The gateway refused a request or could not be reached."""


# Following a story with --wait polls; every request spends one unit of the key's limit (60 a minute).
POLL_INTERVAL_S = 1.5
RETRYABLE = frozenset({429, 503})
# The event stream: the last event of a story, the story statuses that end it, and how often in a row
# a dropped stream is reopened before giving up.
STORY_END_EVENT = "story.completed"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
STREAM_RECONNECTS = 5
STREAM_READ_TIMEOUT_S = 90.0  # several keep-alives (15 s) long


@dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event: its name, its JSON data, and its id (None when it had none)."""

    name: str
    data: Any
    id: str | None = None

    @property
    def ends_story(self) -> bool:
        """The last event of the story's stream (the story ended, or had ended when it opened)."""
        if self.name == STORY_END_EVENT:
            return True
        return (
            self.name == "snapshot"
            and isinstance(self.data, dict)
            and self.data.get("status") in TERMINAL_STATUSES
        )


def parse_sse(lines: Iterable[str]) -> Iterator[StreamEvent]:
    """Events from the lines of a ``text/event-stream`` (comments and ``retry`` ignored; data as JSON)."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                raw = "\n".join(data)
                try:
                    value: Any = json.loads(raw)
                except ValueError:
                    value = raw
                yield StreamEvent(name, value, event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        key, _, value_text = line.partition(":")
        value_text = value_text[1:] if value_text.startswith(" ") else value_text
        if key == "event":
            name = value_text
        elif key == "data":
            data.append(value_text)
        elif key == "id":
            event_id = value_text


def send_politely(
    send: Callable[[], httpx.Response],
    *,
    max_wait_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Send a request that is safe to repeat; on 429 or 503 wait as ``Retry-After`` says and try again.

    Gives up (returning the last answer) once the waits would exceed ``max_wait_s`` in total. Only for
    reads: the gateway records nothing for a 429 or 503, but a caller submitting should decide itself.
    """
    waited = 0.0
    while True:
        response = send()
        if response.status_code not in RETRYABLE:
            return response
        wait = _retry_after(response)
        if waited + wait > max_wait_s:
            return response
        response.close()  # a streamed answer holds its connection until closed
        sleep(wait)
        waited += wait


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.1), 60.0)
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class ClientSettings:
    url: str
    api_key: Secret

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClientSettings:
        env = env or Env()
        key = env.optional("STOREE_API_KEY")
        if key is None:
            raise ConfigError(
                "STOREE_API_KEY is not set (create one with: storee accounts create --tier free)"
            )
        return cls(url=env.str("STOREE_URL", "http://127.0.0.1:8000").rstrip("/"), api_key=Secret(key))


class StoreeClient:
    def __init__(self, settings: ClientSettings, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=settings.url, timeout=timeout, headers={"Authorization": f"Bearer {settings.api_key}"}
        )

    def close(self) -> None:
        self._http.close()

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/stories", json=body, headers=headers)

    def story(self, story_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/stories/{story_id}")

    def stories(self, status: str | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._json("GET", "/v1/stories", params=params)

    def cancel(self, story_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/stories/{story_id}/cancel")

    def retry(self, story_id: str, *, start_within_s: int | None = None) -> dict[str, Any]:
        """Run a failed story's failed and expired tasks again (its next run)."""
        body = None if start_within_s is None else {"start_within_s": start_within_s}
        return self._json("POST", f"/v1/stories/{story_id}/retry", json=body)

    def events(self, story_id: str, *, last_event_id: str | None = None) -> Iterator[StreamEvent]:
        """The story's events as they happen, until it ends: a snapshot first (unless resuming after
        ``last_event_id``), then each task event; a stream the gateway ends early (idle, its maximum
        duration, a slow reader) or a dropped connection is reopened after the last event seen."""
        failures = 0
        path = f"/v1/stories/{story_id}/events"
        timeout = httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_S)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                with self._call_stream(path, headers=headers, timeout=timeout) as response:
                    if response.status_code == 204:  # resumed after the end: nothing more comes
                        return
                    for event in parse_sse(response.iter_lines()):
                        failures = 0
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.ends_story:
                            return
            except ApiError as exc:
                if not isinstance(exc.__cause__, httpx.HTTPError):
                    raise
                failures += 1
            except httpx.HTTPError as exc:
                failures += 1
                if failures > STREAM_RECONNECTS:
                    raise ApiError(f"the event stream of {story_id} kept dropping: {exc}") from exc
            if failures > STREAM_RECONNECTS:
                raise ApiError(f"could not reopen the event stream of {story_id}")
            if failures:
                time.sleep(min(2.0**failures, 10.0))

    def download(self, path: str, target: Path) -> int:
        """Stream ``path`` (a result URL) into ``target``; return the bytes written."""
        written = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with self._call_stream(path) as response, open(partial, "wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
                written += len(chunk)
        partial.replace(target)
        return written

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            if method == "GET":
                response = send_politely(lambda: self._http.request(method, path, **kwargs))
            else:
                response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the gateway at {self._http.base_url}: {exc}") from exc
        _raise_for_error(response)
        return response.json()

    @contextlib.contextmanager
    def _call_stream(
        self, path: str, *, headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None
    ) -> Iterator[httpx.Response]:
        try:
            request = self._http.build_request("GET", path, headers=headers, timeout=timeout)
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the gateway at {self._http.base_url}: {exc}") from exc
        try:
            if response.status_code >= 400:
                response.read()
                _raise_for_error(response)
            yield response
        finally:
            response.close()


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        field = f" (field: {error['field']})" if error.get("field") else ""
        message = f"{error.get('code', 'error')}: {error.get('message', '')}{field}"
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:200] or response.reason_phrase
    retry = response.headers.get("Retry-After")
    suffix = f"; retry after {retry}s" if retry else ""
    raise ApiError(f"HTTP {response.status_code} {message}{suffix}")


def story_body_from(
    source: str, title: str | None, model: str | None, task_type: str | None
) -> dict[str, Any]:
    """A POST /v1/stories body from a JSON file, a text file, or the text itself."""
    path = Path(source)
    if path.is_file():
        if path.suffix == ".json":
            data = _read_json(path)
            body = dict(data.get("story", data))  # the sample format wraps the body in "story"
            body.setdefault("title", data.get("title"))
        else:
            body = {"story_text": path.read_text()}
    else:
        body = {"story_text": source}
    for key, value in (("title", title), ("model", model), ("task_type", task_type)):
        if value is not None:
            body[key] = value
    return {key: value for key, value in body.items() if value is not None}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ApiError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(f"{path} must hold a JSON object")
    return data
