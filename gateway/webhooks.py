"""Webhook URLs: http(s) only, and never aimed inside our network unless the deployment allows it (SSRF).

The check resolves the host now and refuses it if any address is private, loopback, link-local,
multicast, reserved or unspecified. DNS can change between now and delivery (rebinding), so whoever
sends the webhook must check the address it connects to again; this check stops the obvious cases at
the door with a clear 422.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.exceptions import InvalidRequest

FIELD = "webhook_url"
_RESOLVE_TIMEOUT_S = 2.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def is_internal(address: IPAddress) -> bool:
    """Whether ``address`` points inside a private network or at this machine."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """Return ``url`` if it may receive webhooks; raise :class:`InvalidRequest` naming ``webhook_url``."""
    host, port = parse_host(url)
    if allow_private:
        return url
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _resolve(host, port)
    for address in addresses:
        if is_internal(address):
            raise InvalidRequest(
                f"webhook_url resolves to {address}, a private, loopback or link-local address", field=FIELD
            )
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
        raw = info[4][0]
        try:
            found.append(ipaddress.ip_address(str(raw).split("%", 1)[0]))  # drop an IPv6 scope id
        except ValueError:
            continue
    if not found:
        raise InvalidRequest(f"webhook_url host {host!r} does not resolve", field=FIELD)
    return found
