"""The webhook sender: leases due deliveries from MongoDB, POSTs them signed, and records every attempt.

An asyncio loop over one ``httpx.AsyncClient``. Each turn it reads the due deliveries (soonest
first), claims each with a lease (:meth:`WebhookStore.claim`), and starts an attempt, within
``WEBHOOK_CONCURRENCY`` attempts in flight and ``WEBHOOK_HOST_CONCURRENCY`` per target host (a slow
receiver holds its own slots, not everyone's). The intake wakes it as soon as it writes new
deliveries; retries are found by polling every ``WEBHOOK_POLL_INTERVAL``.

One attempt:

1. The target's address is checked at connect time, whatever the gateway saw at submit (DNS may have
   changed since): the name is resolved here, every address it resolves to must be global unicast
   (:mod:`schemas.addresses`) unless ``WEBHOOK_ALLOW_PRIVATE``, and the connection goes to the checked
   address, with the URL's host in ``Host`` and as the TLS server name (SNI and certificate check), so
   a second lookup cannot swap the address. A refused target gives up at once: no retry would be safe.
2. The body is signed with the account's live secrets (one ``v1,`` signature each while a secret
   rotates, :mod:`streams.webhook_signing`); the ``webhook-id`` is the delivery's id on every attempt.
3. POST with connect and total timeouts, redirects not followed, no proxy from the environment.
4. The verdict and the next step come from :mod:`streams.webhook_schedule`: 2xx delivered; 410 gives up
   and disables the story's endpoint (its other open deliveries are skipped); anything else retries
   at the next step of the schedule (``Retry-After`` honoured on 429 and 503); after the last one the
   delivery goes to the DLQ with its reason and is marked ``failed``. The dead letter is written
   before the mark, so a crash between them only repeats a try.

A sender that dies mid-attempt leaves its lease to run out (``WEBHOOK_LEASE``), and the delivery is
tried again: at least once, the ``webhook-id`` letting the receiver drop a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from schemas.addresses import host_refusal, parse_address, refusal
from schemas.ids import now_ms
from schemas.view import WebhookStatus
from streams.webhook_metrics import WebhookMetrics
from streams.webhook_schedule import AttemptResult, Delivered, GiveUp, RetryAt, RetrySchedule
from streams.webhook_signing import headers as signature_headers
from streams.webhook_store import WebhookStore

log = logging.getLogger(__name__)

USER_AGENT = "Storee-Webhooks/1"
DLQ_RETRY_MS = 30_000  # a give-up whose dead letter could not be written is tried again this soon
NO_SECRET = "the account has no webhook signing secret (storee accounts rotate-webhook-secret makes one)"

# (host, port) -> addresses, as the resolver answers; injectable so tests can name what a host resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]
# (delivery document, reason) -> None once the DLQ acknowledged the dead letter; raises otherwise.
DeadLetterSink = Callable[[Mapping[str, Any], str], None]


class Refused(Exception):
    """The target may not receive webhooks (its address is not global unicast)."""


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Sender:
    def __init__(
        self,
        *,
        store: WebhookStore,
        schedule: RetrySchedule,
        metrics: WebhookMetrics,
        dead_letter: DeadLetterSink,
        disabled: set[str],
        allow_private: bool = False,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 15.0,
        lease_s: float = 60.0,
        concurrency: int = 64,
        host_concurrency: int = 8,
        poll_s: float = 1.0,
        resolve: Resolver = system_resolver,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.disabled = disabled
        self.allow_private = allow_private
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.lease_ms = int(lease_s * 1000)
        self.concurrency = concurrency
        self.host_concurrency = host_concurrency
        self.poll_s = poll_s
        self.resolve = resolve
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._per_host: Counter[str] = Counter()

    def wake(self, _count: int = 0) -> None:
        """Look for due deliveries now (thread-safe: the intake calls it from its thread)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def run_forever(self, stop: threading.Event) -> None:
        """Run :meth:`run` in this thread's own event loop until ``stop`` is set."""
        asyncio.run(self.run(stop))

    async def run(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        timeout = httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(
            timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
        ) as client:
            log.info(
                "webhook sender started concurrency=%d per host=%d", self.concurrency, self.host_concurrency
            )
            delay = 0.5
            while not stop.is_set():
                try:
                    await self.fill(client)
                    delay = 0.5
                    self.metrics.waiting.labels("sender").set(0)
                except Exception as exc:  # noqa: BLE001 - MongoDB away: wait it out, never crash-loop
                    self.metrics.waiting.labels("sender").set(1)
                    log.warning("webhook sender waits for MongoDB: %s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()
            if self._in_flight:  # finish what is under way; a lease left behind runs out by itself
                await asyncio.wait(list(self._in_flight.values()), timeout=self.timeout_s + 1)
        log.info("webhook sender stopped")

    async def fill(self, client: httpx.AsyncClient) -> int:
        """Claim due deliveries up to the free slots and start their attempts; returns how many."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        now = self.clock()
        docs = await asyncio.to_thread(self.store.due, now, free * 2, list(self._in_flight))
        started = 0
        for doc in docs:
            if started >= free:
                break
            host = _host_of(str(doc.get("url", "")))
            if self._per_host[host] >= self.host_concurrency:
                continue
            if not await asyncio.to_thread(self.store.claim, doc, now, self.lease_ms):
                continue
            self._per_host[host] += 1
            task = asyncio.create_task(self._attempt(client, doc, host))
            self._in_flight[doc["_id"]] = task
            started += 1
        self.metrics.in_flight.set(len(self._in_flight))
        return started

    async def _attempt(self, client: httpx.AsyncClient, doc: dict[str, Any], host: str) -> None:
        try:
            await self.attempt(client, doc)
        except Exception:  # noqa: BLE001 - the lease runs out and the delivery is tried again
            log.exception("webhook %s: attempt not recorded; it is tried again after its lease", doc["_id"])
        finally:
            self._in_flight.pop(doc["_id"], None)
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
            self.metrics.in_flight.set(len(self._in_flight))
            if self._wake is not None:
                self._wake.set()  # a slot is free

    async def attempt(self, client: httpx.AsyncClient, doc: dict[str, Any]) -> None:
        """One attempt at ``doc`` (claimed), recorded in its document."""
        started = self.clock()
        keys = await asyncio.to_thread(self.store.signing_keys, str(doc.get("account_id", "")), started)
        refused: str | None = None
        if not keys:
            result = AttemptResult(error=NO_SECRET)
        else:
            try:
                body = str(doc["body"]).encode("utf-8")
                signed = signature_headers(keys, doc["_id"], started // 1000, body)
                result = await self.post(client, str(doc["url"]), body, signed)
            except Refused as exc:
                refused, result = str(exc), AttemptResult(error=str(exc))
        ended = self.clock()
        self.metrics.attempt_seconds.observe((ended - started) / 1000)
        attempts = int(doc.get("attempts") or 0) + 1
        fields: dict[str, Any] = {
            "attempts": attempts,
            "last_status": result.status,
            "last_attempt_at": started,
            "updated_at": ended,
            "lease_until": 0,
        }
        decision = (
            GiveUp(f"refused: {refused}")
            if refused
            else self.schedule.next_attempt(attempts, ended / 1000, result)
        )
        if isinstance(decision, Delivered):
            fields.update(
                status=WebhookStatus.DELIVERED.value, next_at=None, last_error=None, delivered_at=ended
            )
            self.metrics.attempts.labels("delivered").inc()
            event_time = doc.get("event_time")
            if isinstance(event_time, int):
                self.metrics.delivery_seconds.labels(doc.get("kind", "completed")).observe(
                    max(0, ended - event_time) / 1000
                )
        elif isinstance(decision, RetryAt):
            fields.update(
                status=WebhookStatus.FAILING.value,
                next_at=int(decision.due * 1000),
                last_error=decision.reason,
            )
            self.metrics.attempts.labels("retry").inc()
        else:
            fields.update(await self._give_up(doc, decision, refused is not None, ended))
        await asyncio.to_thread(self.store.record, doc["_id"], fields)
        if isinstance(decision, GiveUp) and decision.disabled:
            story_id = str(doc.get("story_id", ""))
            self.disabled.add(story_id)
            reason = "the receiver answered 410 Gone: no more webhooks for this story"
            await asyncio.to_thread(self.store.skip_open, story_id, reason, ended)

    async def _give_up(
        self, doc: Mapping[str, Any], decision: GiveUp, refused: bool, now: int
    ) -> dict[str, Any]:
        self.metrics.attempts.labels(
            "refused" if refused else "gone" if decision.disabled else "gave_up"
        ).inc()
        try:
            await asyncio.to_thread(self.dead_letter, doc, decision.reason)
        except Exception as exc:  # noqa: BLE001 - Kafka away: keep the delivery open, give up again later
            log.warning(
                "webhook %s: the dead letter was not written (%s); trying again later", doc["_id"], exc
            )
            return {
                "status": WebhookStatus.FAILING.value,
                "next_at": now + DLQ_RETRY_MS,
                "last_error": f"{decision.reason} (waiting for the DLQ: {exc})",
                "attempts": max(int(doc.get("attempts") or 0), self.schedule.attempts - 1),
            }
        self.metrics.dead_letters.inc()
        log.warning("webhook %s gave up: %s", doc["_id"], decision.reason)
        fields: dict[str, Any] = {
            "status": WebhookStatus.FAILED.value,
            "next_at": None,
            "last_error": decision.reason,
        }
        if decision.disabled:
            fields["disabled"] = True
        return fields

    async def post(
        self, client: httpx.AsyncClient, url: str, body: bytes, signed: Mapping[str, str]
    ) -> AttemptResult:
        """POST ``body`` to ``url`` at a checked address; raises :class:`Refused` for a forbidden target."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise Refused(f"{url!r} is not a valid URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise Refused(f"{url!r} is not an http(s) URL")
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            address = await self._address(host, port)
        except OSError as exc:
            return AttemptResult(error=f"{host} does not resolve: {exc}")
        headers = {
            "host": parsed.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signed,
        }
        extensions = {"sni_hostname": host} if parsed.scheme == "https" and address != host else {}
        try:
            async with asyncio.timeout(self.timeout_s):
                request = client.build_request(
                    "POST",
                    parsed.copy_with(host=address),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                )
                response = await client.send(request, stream=True)
                await response.aclose()
        except TimeoutError:
            return AttemptResult(error=f"no answer within {self.timeout_s:g}s")
        except httpx.TimeoutException as exc:
            return AttemptResult(error=f"timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {exc}"[:500])
        return AttemptResult(status=response.status_code, retry_after=response.headers.get("retry-after"))

    async def _address(self, host: str, port: int) -> str:
        """The address to connect to: checked unless private targets are allowed."""
        try:
            literal = parse_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            if not self.allow_private:
                named = host_refusal(host)
                if named is not None:
                    raise Refused(named)
            try:
                addresses = await asyncio.wait_for(self.resolve(host, port), self.connect_timeout_s)
            except TimeoutError:
                raise OSError(f"no answer from the resolver within {self.connect_timeout_s:g}s") from None
            if not addresses:
                raise OSError("no addresses")
        if not self.allow_private:
            for found in addresses:
                why = refusal(found)
                if why is not None:
                    raise Refused(f"{host} resolves to {why}" if literal is None else str(why))
        return addresses[0]


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host or url
    except httpx.InvalidURL:
        return url
