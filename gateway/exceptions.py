"""Errors of the gateway: each one knows the HTTP status, error code and field it answers with.

Handlers raise them; ``gateway.error_responses`` turns every one into
``{"error": {"code", "message", "field"?}}``.
"""

from __future__ import annotations

from schemas.exceptions import StoreeError


class GatewayError(StoreeError):
    """An error answered with a JSON body; ``status`` and ``code`` say what kind."""

    status = 500
    code = "internal"

    def __init__(
        self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    """The request is well-formed but a value breaks a rule; ``field`` names it."""

    status = 422
    code = "invalid"


class MalformedRequest(GatewayError):
    """The body cannot be parsed at all (bad JSON, bad multipart)."""

    status = 400
    code = "malformed"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class Unauthorized(GatewayError):
    """No API key, or one that matches no account."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="storee"'})


class NotFound(GatewayError):
    """Nothing with this id, or it belongs to another account (the two are never told apart)."""

    status = 404
    code = "not_found"


class Conflict(GatewayError):
    """The request clashes with an earlier one (an Idempotency-Key reused with another body)."""

    status = 409
    code = "conflict"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, reason: str) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
        self.reason = reason


class ServiceUnavailable(GatewayError):
    """Kafka or MongoDB did not answer in time; nothing was recorded, the client may retry."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class NotReady(GatewayError):
    """The job exists but has nothing to download yet."""

    status = 409
    code = "not_ready"
