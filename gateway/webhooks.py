"""Webhook URLs: http(s) only, and never aimed inside our network unless the deployment allows it (SSRF).

The check refuses special-use names (``localhost``, ``*.internal``, a single label), resolves the
host now and refuses it if any address is not global unicast, by the one policy in
:mod:`schemas.addresses` (private, loopback, link-local, multicast, shared 100.64.0.0/10, 6to4,
Teredo, NAT64 of an inside address, ...). DNS can change between now and delivery (rebinding), so
whoever sends the webhook checks the address it connects to again with the same policy; this check
stops the obvious cases at the door with a clear 422 naming the range.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from gateway.exceptions import InvalidRequest
from schemas.addresses import IPAddress, host_refusal, parse_address, refusal

FIELD = "webhook_url"
_RESOLVE_TIMEOUT_S = 2.0


def parse_host(url: str) -> tuple[str, int | None]:
    """The host (and port) of an http(s) URL, or an error naming ``webhook_url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"webhook_url is not a valid URL: {exc}", field=FIELD) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("webhook_url must use http or https", field=FIELD)
    if not parts.hostname:
        raise InvalidRequest("webhook_url must name a host", field=FIELD)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("webhook_url must not carry credentials", field=FIELD)
    return parts.hostname, port


async def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """Return ``url`` if it may receive webhooks; raise :class:`InvalidRequest` naming ``webhook_url``."""
    host, port = parse_host(url)
    if allow_private:
        return url
    named = host_refusal(host)
    if named is not None:
        raise InvalidRequest(f"webhook_url must name a public host: {named}", field=FIELD)
    try:
        addresses = [parse_address(host)]
    except ValueError:
        addresses = await _resolve(host, port)
    for address in addresses:
        found = refusal(address)
        if found is not None:
            raise InvalidRequest(f"webhook_url resolves to a non-public address: {found}", field=FIELD)
    return url


async def _resolve(host: str, port: int | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM), _RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError, UnicodeError, ValueError):
        raise InvalidRequest(f"webhook_url host {host!r} does not resolve", field=FIELD) from None
    found = []
    for info in infos:
        try:
            found.append(parse_address(str(info[4][0])))  # an IPv6 scope id dropped
        except ValueError:
            continue
    if not found:
        raise InvalidRequest(f"webhook_url host {host!r} does not resolve", field=FIELD)
    return found
