"""A small client of the gateway's HTTP API, for the ``storee submit|status|watch|result|list`` commands.

Every error the API answers (``{"error": {"code", "message", "field"}}``) becomes one
:class:`ApiError` whose message is a single clear line.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ops.runtime.config import Env, Secret
from ops.runtime.exceptions import ConfigError, StoreeError


class ApiError(StoreeError):
    """The gateway refused a request or could not be reached."""


# Watching a story polls; every request spends one unit of the key's limit (60 a minute by default).
POLL_INTERVAL_S = 1.5
RETRYABLE = frozenset({429, 503})


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
    def _call_stream(self, path: str) -> Iterator[httpx.Response]:
        try:
            response = self._http.send(self._http.build_request("GET", path), stream=True)
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
