"""Who is calling: the API key from ``Authorization: Bearer`` or ``X-API-Key``, resolved and charged.

Every authenticated request also spends one unit of its user's and its account's limits, so a caller
over its limit learns it before any other work is done.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.accounts import Principal
from gateway.exceptions import Unauthorized
from gateway.state import GatewayState


def api_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return None
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


async def authenticate(request: Request) -> Principal:
    """The caller's principal after charging its limits; 401 without a valid key, 429 over a limit."""
    state: GatewayState = request.app.state.gateway
    key = api_key(request)
    if key is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    principal = await state.accounts.resolve(key)
    if principal is None:
        raise Unauthorized("the API key is not valid")
    await state.limits.charge(principal)
    return principal
