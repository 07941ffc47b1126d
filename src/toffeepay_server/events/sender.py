"""Sending one webhook attempt: sign it, POST it (sandbox chaos applied), say what came of it.

Nothing here touches the outbox: the dispatcher leases the attempt before and records the
`Outcome` after.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import structlog

from ..domain.keys import Mode
from ..domain.webhooks import LEGACY_FORM, new_secret
from ..services.context import ServiceContext
from ..services.outbox import Job, Outcome
from . import legacy, signing
from .retry import RetryPolicy, parse_retry_after
from .transport import WebhookClient, webhook_client

log = structlog.get_logger("toffeepay.dispatcher")

SEND_TIMEOUT = 10.0
EXCERPT_BYTES = 1024
# Read at most this much of an answer, so the connection can be reused; more closes it.
DRAIN_BYTES = 64 * 1024
CHAOS_BAD_SIGNATURE = "chaos: sent with a wrong signature, so counted as failed and retried"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the receiver answered to one POST, or why no answer came."""

    latency_ms: int
    status_code: int | None = None
    retry_after: str | None = None
    excerpt: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A complete 2xx answer."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def _excerpt(content: aiohttp.StreamReader) -> str:
    kept = bytearray()
    seen = 0
    while seen <= DRAIN_BYTES:
        chunk = await content.readany()
        if not chunk:
            break
        if len(kept) < EXCERPT_BYTES:
            kept += chunk[: EXCERPT_BYTES - len(kept)]
        seen += len(chunk)
    return kept.decode("utf-8", "replace").replace("\x00", "\ufffd")


async def post(client: WebhookClient, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
    """POST once and read the start of the answer; a failure to connect or answer is a `Reply` too."""
    started = time.perf_counter()
    status: int | None = None
    retry_after: str | None = None
    excerpt: str | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            async with client.open(url, body, headers) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                excerpt = await _excerpt(response.content)
    except TimeoutError:
        error = f"no complete answer within {timeout:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:EXCERPT_BYTES]
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Reply(latency_ms=latency_ms, status_code=status, retry_after=retry_after, excerpt=excerpt, error=error)


class Sender:
    """Signs and sends one attempt (with sandbox chaos applied) and says what it got.

    The dispatcher sends through one; the app hands another to the services for test events.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        site_id: str = "toffeepay",
        max_connections: int = 256,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.ctx = ctx
        self.site_id = site_id
        self.timeout = timeout
        self.clients = {
            mode: webhook_client(
                private=ctx.private_targets_allowed(mode.value), max_connections=max_connections, timeout=timeout
            )
            for mode in Mode
        }

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def _request(self, job: Job, now: datetime, *, bad_signature: bool) -> tuple[bytes, dict[str, str]]:
        valid = job.endpoint.signing_secrets(now)
        if bad_signature:
            valid = [new_secret()]
        if job.endpoint.format == LEGACY_FORM:
            # One hash only: made with the oldest valid secret, so receivers keep working
            # through a rotation's overlap (the SDK accepts both secrets meanwhile).
            body = legacy.form_body(json.loads(job.body), self.site_id, valid[-1], int(now.timestamp()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-ToffeePay-Event-Id": job.event_id,
                "X-ToffeePay-Event": job.event_type,
            }
            return body, headers
        body = job.body.encode()
        return body, signing.json_headers(job.event_id, job.event_type, body, int(now.timestamp()), valid)

    def _bad_signature(self, job: Job) -> bool:
        chaos = job.endpoint.chaos
        return bool(chaos and job.trigger != "test" and self.ctx.rng.uniform(0, 100) < chaos.bad_signature_percent)

    async def attempt(self, job: Job, policy: RetryPolicy | None) -> Outcome:
        """Send now; on failure `policy` says when to try again (None: never)."""
        attempted_at = self.ctx.clock()
        if not job.endpoint.carries(job.event_type):
            # The endpoint's format changed to one that cannot express this event: nothing to send.
            unsent = f"format {job.endpoint.format} cannot carry {job.event_type}"
            return Outcome(job=job, attempted_at=attempted_at, succeeded=False, error=unsent)
        bad_signature = self._bad_signature(job)
        body, headers = self._request(job, attempted_at, bad_signature=bad_signature)
        reply = await post(self.clients[Mode(job.endpoint.mode)], job.endpoint.url, body, headers, self.timeout)
        error = reply.error
        if bad_signature and error is None:
            error = CHAOS_BAD_SIGNATURE
        succeeded = reply.ok and error is None
        return Outcome(
            job=job,
            attempted_at=attempted_at,
            succeeded=succeeded,
            latency_ms=reply.latency_ms,
            status_code=reply.status_code,
            excerpt=reply.excerpt,
            error=error,
            next_attempt_at=None if succeeded else self._failed(job, policy, reply, error),
        )

    def _failed(self, job: Job, policy: RetryPolicy | None, reply: Reply, error: str | None) -> datetime | None:
        """Log a failed attempt; the time of the next one (None: no more)."""
        now = self.ctx.clock()
        next_attempt_at = None
        if policy is not None:
            wait = parse_retry_after(reply.retry_after, now)
            next_attempt_at = policy.next_attempt(job.attempt, job.delivery_created_at, now, wait)
        log.warning(
            "webhook attempt failed",
            delivery_id=job.delivery_id,
            event_id=job.event_id,
            endpoint_id=job.endpoint.id,
            attempt=job.attempt,
            status=reply.status_code,
            error=error,
            next_attempt_at=next_attempt_at.isoformat() if next_attempt_at else None,
        )
        return next_attempt_at
