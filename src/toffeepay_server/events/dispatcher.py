"""The webhook dispatcher: outbox events become signed POSTs, retried until they land.

One loop fans new events out to deliveries and leases due ones; every leased delivery is
sent at once in its own task, within the limits of `outbox.Limits` (per endpoint, per game
and mode, per mode, with room kept for games that hold little), so slow or dead endpoints
only ever hold their own game's slots and sandbox never takes live's; finished
attempts are recorded in batches. Leases (claimed_by / claimed_until) let any number of
dispatchers share the outbox without two sending the same attempt.

The loop wakes at once when a transaction of this process commits outbox work, on
PostgreSQL also on a NOTIFY from any process; on SQLite it notices other processes' commits
by `PRAGMA data_version` every `poll` seconds. Once a second it looks for due retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections import Counter
from datetime import datetime, timedelta

import httpx
import structlog

from ..domain.keys import Mode
from ..domain.webhooks import LEGACY_FORM, new_secret
from ..observability import metrics
from ..services import outbox
from ..services.context import ServiceContext
from ..services.outbox import Capacity, Job, Limits, Outcome, scope_key
from . import legacy, signing
from .retry import RetryPolicy, parse_retry_after
from .transport import webhook_client

log = structlog.get_logger("toffeepay.dispatcher")

SEND_TIMEOUT = 10.0
LEASE = timedelta(seconds=60)
EXCERPT_BYTES = 1024
# Read at most this much of an answer, so the connection can be reused; more closes it.
DRAIN_BYTES = 64 * 1024
SHUTDOWN_GRACE = 5.0
# Retries and expired leases come due with the clock, not with a commit: look this often.
DUE_CHECK = 1.0
# Finished attempts are recorded together if they finish within this long of each other.
RECORD_COALESCE = 0.005


def dispatcher_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


async def _excerpt(response: httpx.Response) -> str:
    kept = bytearray()
    seen = 0
    async for chunk in response.aiter_bytes():
        if len(kept) < EXCERPT_BYTES:
            kept += chunk[: EXCERPT_BYTES - len(kept)]
        seen += len(chunk)
        if seen > DRAIN_BYTES:
            break
    return kept.decode("utf-8", "replace").replace("\x00", "\ufffd")


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
            return Outcome(
                job,
                attempted_at,
                0,
                None,
                None,
                f"format {job.endpoint.format} cannot carry {job.event_type}",
                False,
                None,
            )
        bad_signature = self._bad_signature(job)
        body, headers = self._request(job, attempted_at, bad_signature=bad_signature)
        client = self.clients[Mode(job.endpoint.mode)]
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        retry_after: str | None = None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream("POST", job.endpoint.url, content=body, headers=headers) as response:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    excerpt = await _excerpt(response)
        except TimeoutError:
            error = f"no complete answer within {self.timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:EXCERPT_BYTES]
        latency_ms = round((time.perf_counter() - started) * 1000)
        if bad_signature and error is None:
            error = "chaos: sent with a wrong signature, so counted as failed and retried"
        succeeded = error is None and status is not None and 200 <= status < 300
        next_attempt_at = None
        if not succeeded:
            now = self.ctx.clock()
            if policy is not None:
                wait = parse_retry_after(retry_after, now)
                next_attempt_at = policy.next_attempt(job.attempt, job.delivery_created_at, now, wait)
            log.warning(
                "webhook attempt failed",
                delivery_id=job.delivery_id,
                event_id=job.event_id,
                endpoint_id=job.endpoint.id,
                attempt=job.attempt,
                status=status,
                error=error,
                next_attempt_at=next_attempt_at.isoformat() if next_attempt_at else None,
            )
        return Outcome(job, attempted_at, latency_ms, status, excerpt, error, succeeded, next_attempt_at)


class Dispatcher:
    def __init__(
        self,
        ctx: ServiceContext,
        *,
        site_id: str = "toffeepay",
        policy: RetryPolicy | None = None,
        concurrency: int = 256,
        per_game: int = 64,
        per_endpoint: int = 16,
        timeout: float = SEND_TIMEOUT,
        lease: timedelta = LEASE,
        poll: float = 0.02,
        batch_window: float = 0.01,
        name: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.site_id = site_id
        self.policy = policy or RetryPolicy()
        self.limits = Limits(per_endpoint=per_endpoint, per_scope=per_game, per_mode=concurrency)
        self.per_endpoint = per_endpoint
        self.timeout = timeout
        self.lease = lease
        self.poll = poll
        # Least time between two fan-outs woken by commits: under load one transaction then
        # takes the events of many commits instead of one each.
        self.batch_window = batch_window
        self.me = name or dispatcher_name()
        # Requests in flight per endpoint, per game and mode (`mode:game_id`), and per mode.
        self.inflight: Counter[str] = Counter()
        self.inflight_scopes: Counter[str] = Counter()
        self.inflight_modes: Counter[str] = Counter()
        self.sending: set[asyncio.Task[None]] = set()
        self.finished: list[Outcome] = []
        self.finished_signal = asyncio.Event()
        self.wake: asyncio.Event | None = None
        # Sends finished since the last lease round; a new round starts once a few slots are free.
        self.freed = 0
        # Whether due deliveries may be waiting (retries, or more than there was room for);
        # a round triggered by a new commit only fans out unless this is set.
        self.due = True
        self.sender = Sender(ctx, site_id=site_id, max_connections=concurrency, timeout=timeout)

    # Running

    async def run(self) -> None:
        """Dispatch until cancelled; then let sends under way finish briefly and record them."""
        self.wake = wake = self.ctx.db.outbox_signal()
        helpers = [
            asyncio.create_task(self._record_forever(), name="webhook-recorder"),
            asyncio.create_task(self._housekeep_forever(), name="webhook-housekeeping"),
        ]
        if self.ctx.db.is_postgres:
            helpers.append(asyncio.create_task(self._listen(wake), name="webhook-listener"))
        watch = self.ctx.db.commit_watch()
        loop = asyncio.get_running_loop()
        woken, next_check, last_pump = True, 0.0, -self.batch_window
        try:
            while True:
                if woken and (rest := last_pump + self.batch_window - loop.time()) > 0:
                    await asyncio.sleep(rest)
                wake.clear()
                try:
                    if woken:
                        last_pump = loop.time()
                        await self._pump()
                    elif loop.time() >= next_check:
                        next_check = loop.time() + DUE_CHECK
                        if await outbox.has_work(self.ctx):
                            self.due = True
                            await self._pump()
                    elif watch and watch.changed() and await outbox.has_new_events(self.ctx):
                        await self._pump()
                except Exception:
                    log.exception("dispatch failed")
                    await asyncio.sleep(1)
                try:
                    async with asyncio.timeout(self.poll):
                        await wake.wait()
                    woken = True
                except TimeoutError:
                    woken = False
        finally:
            await self._shutdown(helpers)
            self.ctx.db.drop_outbox_signal(wake)
            if watch:
                watch.close()

    async def drain(self) -> int:
        """Send everything due now and record the outcomes; returns the attempts made (tests, tools)."""
        attempts = 0
        while True:
            self.due = True
            jobs = await self._pump()
            if self.sending:
                await asyncio.gather(*list(self.sending), return_exceptions=True)
            await self._flush()
            attempts += len(jobs)
            if not jobs:
                return attempts

    async def aclose(self) -> None:
        await self.sender.aclose()

    # Leasing

    def _capacity(self) -> Capacity:
        return Capacity(self.limits, self.inflight, self.inflight_scopes, self.inflight_modes)

    async def _pump(self) -> list[Job]:
        self.freed = 0
        jobs: list[Job] = []
        while True:
            leased = await outbox.lease_work(
                self.ctx, me=self.me, lease=self.lease, capacity=self._capacity(), claim_due=self.due
            )
            self.due = leased.backlog
            self._start(leased.jobs)
            jobs += leased.jobs
            if leased.events < outbox.FAN_OUT_BATCH:
                return jobs

    def _start(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.inflight[job.endpoint.id] += 1
            self.inflight_scopes[scope_key(job.endpoint.game_id, job.endpoint.mode)] += 1
            self.inflight_modes[job.endpoint.mode] += 1
            task = asyncio.create_task(self._send(job))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    # Sending

    async def _send(self, job: Job) -> None:
        try:
            outcome = await self._attempt(job)
        except Exception:
            log.exception("webhook attempt crashed", delivery_id=job.delivery_id)
            now = self.ctx.clock()
            outcome = Outcome(
                job,
                now,
                0,
                None,
                None,
                "internal error",
                False,
                self.policy.next_attempt(job.attempt, job.delivery_created_at, now),
            )
        metrics.webhook_attempted(job.endpoint.mode, outcome.succeeded, outcome.latency_ms / 1000)
        # The slot is free once the request is over; the lease holds until the outcome is recorded.
        for counter, key in (
            (self.inflight, job.endpoint.id),
            (self.inflight_scopes, scope_key(job.endpoint.game_id, job.endpoint.mode)),
            (self.inflight_modes, job.endpoint.mode),
        ):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
        self.freed += 1
        if self.due and self.wake is not None and (self.freed >= max(1, self.per_endpoint // 4) or not self.inflight):
            self.wake.set()
        self.finished.append(outcome)
        self.finished_signal.set()

    async def _attempt(self, job: Job) -> Outcome:
        return await self.sender.attempt(job, self.policy)

    # Recording

    async def _flush(self) -> None:
        batch, self.finished = self.finished, []
        if not batch:
            return
        try:
            await outbox.record(self.ctx, me=self.me, outcomes=batch)
        except BaseException:
            self.finished[:0] = batch
            raise

    async def _record_forever(self) -> None:
        while True:
            await self.finished_signal.wait()
            await asyncio.sleep(RECORD_COALESCE)
            self.finished_signal.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("recording webhook attempts failed")
                await asyncio.sleep(1)
                self.finished_signal.set()

    async def housekeep(self) -> None:
        """Report and disable failing endpoints; feed replays their next deliveries."""
        await outbox.report_failing_endpoints(self.ctx)
        if await outbox.feed_replays(self.ctx):
            self.due = True
            if self.wake is not None:
                self.wake.set()

    async def _housekeep_forever(self) -> None:
        while True:
            try:
                await self.housekeep()
            except Exception:
                log.exception("webhook housekeeping failed")
            await asyncio.sleep(DUE_CHECK)

    async def _listen(self, wake: asyncio.Event) -> None:
        """Follow PostgreSQL notifications; reconnect when the connection drops."""
        while True:
            try:
                await self.ctx.db.listen_outbox(wake.set)
            except Exception as exc:  # polling carries on meanwhile
                log.warning("outbox notifications unavailable", error=str(exc))
            await asyncio.sleep(1)

    async def _shutdown(self, helpers: list[asyncio.Task[None]]) -> None:
        if self.sending:
            await asyncio.wait(list(self.sending), timeout=SHUTDOWN_GRACE)
        for task in [*self.sending, *helpers]:
            task.cancel()
        for task in [*self.sending, *helpers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._flush()
        except Exception:
            log.exception("recording webhook attempts at shutdown failed")
        await self.aclose()
