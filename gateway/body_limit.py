"""Caps on request body size, enforced while the body streams in (``Content-Length`` may be absent or lie)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.error_responses import error_response
from gateway.exceptions import PayloadTooLarge


class BodyLimitMiddleware:
    """Answers 413 when a body exceeds the cap of its path (``caps``) or ``default``."""

    def __init__(self, app: ASGIApp, default: int, caps: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.caps = dict(caps or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope["path"], self.default)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            response = error_response(413, PayloadTooLarge.code, f"body larger than {cap} bytes")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # Raised inside the endpoint's read, so the app's error handlers answer it.
                    raise PayloadTooLarge(f"body larger than {cap} bytes")
            return message

        await self.app(scope, limited, send)
