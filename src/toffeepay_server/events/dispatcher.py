"""The webhook dispatcher: outbox events become signed POSTs, retried until they land.

One loop fans new events out to deliveries and leases due ones; a leased delivery is sent in
its own task as soon as the limits of `outbox.Limits` allow (per endpoint, per game and
mode, per mode, with room kept for games that hold little), so slow or dead endpoints only
ever hold their own game's slots and sandbox never takes live's. A dispatcher leases up to
`LEASE_AHEAD` times those limits, so when a request finishes the next one to that endpoint
starts at once, without waiting for a lease round; finished attempts are recorded in
batches. Leases (claimed_by / claimed_until) let any number of
dispatchers share the outbox without two sending the same attempt.

The parts: `wakeup` says when to look at the outbox again (a commit, a NOTIFY, another
process's commit, the timer), `sender` sends one attempt, `inflight` counts the slots
taken; this module leases, starts sends and records what came of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections import deque
from datetime import datetime, timedelta

import structlog

from ..observability import metrics
from ..services import outbox
from ..services.context import ServiceContext
from ..services.outbox import Job, Limits, Outcome
from .inflight import InFlight
from .retry import RetryPolicy
from .sender import SEND_TIMEOUT, Sender
from .wakeup import DUE_CHECK, Wake, WakeUp

log = structlog.get_logger("toffeepay.dispatcher")

LEASE = timedelta(seconds=60)
SHUTDOWN_GRACE = 5.0
# Finished attempts are recorded together if they finish within this long of the first of
# them, or as soon as this many are waiting: one transaction per batch.
RECORD_COALESCE = 0.02
RECORD_BATCH = 256
# Deliveries a dispatcher may hold leased, as a multiple of its in-flight limits: those over
# the limits wait here for a slot (their lease covers the wait; should the process die, the
# lease expires and any dispatcher sends them). On PostgreSQL a lease round is one round trip
# after another and a commit: enough are held that the sends of a fast endpoint go on while
# the next round is under way. On SQLite a round takes a fraction of a millisecond on the
# event loop, but it may start only at the end of the commit batch window and then waits for
# its commit: with three endpoint-loads still waiting when a round is asked for, a fast
# endpoint's sends do not run dry meanwhile.
LEASE_AHEAD = 6
LEASE_AHEAD_POSTGRESQL = 8
# A lease round starts once this many endpoints' worth of slots has been freed (or nothing is
# left waiting); on PostgreSQL at once, not held back by the commit batch window.
REFILL_AFTER = 2
REFILL_AFTER_POSTGRESQL = 3
# A waiting delivery is sent only while its lease still covers the send's timeout and this
# margin; later it is given back (any dispatcher sends it), so a lease never runs out while
# its attempt is under way, however long a slow endpoint keeps the deliveries waiting.
LEASE_MARGIN = timedelta(seconds=5)


def dispatcher_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


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
        self.inflight = InFlight(self.limits)
        postgres = ctx.db.is_postgres
        # Leased here: in flight, or waiting (per endpoint, in lease order) for a slot.
        self.held = InFlight(self.limits.times(LEASE_AHEAD_POSTGRESQL if postgres else LEASE_AHEAD))
        # Each with the time after which it may no longer be sent (its lease would run out).
        self.waiting: dict[str, deque[tuple[datetime, Job]]] = {}
        self.waiting_count = 0
        self.sending: set[asyncio.Task[None]] = set()
        self.finished: list[Outcome] = []
        self.finished_signal = asyncio.Event()
        self.record_now = asyncio.Event()
        self.wakeup: WakeUp | None = None
        # Sends finished since the last lease round; a new round starts once a few slots are free.
        self.freed = 0
        self.refill_after = per_endpoint * (REFILL_AFTER_POSTGRESQL if postgres else REFILL_AFTER)
        self.refill_at_once = postgres
        self.send_before = lease - timedelta(seconds=timeout) - LEASE_MARGIN
        # Leases given back in the background (waiting deliveries whose lease ran short).
        self.giving_back: set[asyncio.Task[None]] = set()
        # Whether due deliveries may be waiting (retries, or more than there was room for);
        # a round triggered by a new commit only fans out unless this is set.
        self.due = True
        self.sender = Sender(ctx, site_id=site_id, max_connections=concurrency, timeout=timeout)

    # Running

    async def run(self) -> None:
        """Dispatch until cancelled; then let sends under way finish briefly and record them."""
        self.wakeup = wakeup = WakeUp.of(self.ctx, poll=self.poll, batch_window=self.batch_window)
        wakeup.start()
        helpers = [
            asyncio.create_task(self._record_forever(), name="webhook-recorder"),
            asyncio.create_task(self._housekeep_forever(), name="webhook-housekeeping"),
        ]
        try:
            while True:
                try:
                    await self._look(await wakeup.next())
                except Exception:  # a failed round (or a failed look at the commit watch) is retried
                    log.exception("dispatch failed")
                    await asyncio.sleep(1)
        finally:
            await self._shutdown(helpers)
            await wakeup.close()

    async def _look(self, reason: Wake) -> None:
        """One round for one wake-up: a commit always pumps; the others only when they find work."""
        if reason is Wake.COMMIT:
            await self._pump()
        elif reason is Wake.DUE:
            if await outbox.has_work(self.ctx):
                self.due = True
                await self._pump()
        elif await outbox.has_new_events(self.ctx):
            await self._pump()

    async def drain(self) -> int:
        """Send everything due now and record the outcomes; returns the attempts made (tests, tools)."""
        attempts = 0
        while True:
            self.due = True
            jobs = await self._pump()
            while self.sending or self.giving_back:  # waiting jobs start as sends finish
                await asyncio.gather(*self.sending, *self.giving_back, return_exceptions=True)
            await self._flush()
            attempts += len(jobs)
            if not jobs:
                return attempts

    async def aclose(self) -> None:
        await self.sender.aclose()

    def _wake(self) -> None:
        """Start a lease round (on PostgreSQL at once, not held back like a commit's)."""
        if self.wakeup is not None:
            self.wakeup.set(at_once=self.refill_at_once)

    # Leasing

    async def _pump(self) -> list[Job]:
        self.freed = 0
        jobs: list[Job] = []
        while True:
            # Taken before the round: no earlier than the leases it takes run out.
            send_before = self.ctx.clock() + self.send_before
            leased = await outbox.lease_work(
                self.ctx, me=self.me, lease=self.lease, capacity=self.held.capacity(), claim_due=self.due
            )
            self.due = leased.backlog
            self._start(leased.jobs, send_before)
            jobs += leased.jobs
            if leased.events < outbox.FAN_OUT_BATCH:
                return jobs

    def _start(self, jobs: list[Job], send_before: datetime) -> None:
        """Hold newly leased jobs and send those there is room for now."""
        for job in jobs:
            self.held.take(job)
            queue = self.waiting.get(job.endpoint.id)
            if queue is None:
                queue = self.waiting[job.endpoint.id] = deque()
            queue.append((send_before, job))
        self.waiting_count += len(jobs)
        self._start_waiting()

    def _start_waiting(self, endpoint_id: str | None = None) -> None:
        """Send waiting jobs that fit the limits now; `endpoint_id`'s first (a slot of it was freed).

        When that endpoint takes the freed slot back, every count is as it was before the
        release, so no other waiting job can fit now and the others need no look.
        """
        if not self.waiting_count:
            return
        if (
            endpoint_id is not None
            and (queue := self.waiting.get(endpoint_id))
            and self._start_from(endpoint_id, queue)
        ):
            return
        for waiting_id, queue in list(self.waiting.items()):
            self._start_from(waiting_id, queue)

    def _start_from(self, endpoint_id: str, queue: deque[tuple[datetime, Job]]) -> bool:
        started = 0
        now: datetime | None = None
        late: list[Job] = []
        while queue and self.inflight.fits(queue[0][1]):
            send_before, job = queue.popleft()
            now = now or self.ctx.clock()
            if now > send_before:
                self.held.release(job)
                late.append(job)
                continue
            self.inflight.take(job)
            task = asyncio.create_task(self._send(job))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
            started += 1
        if not queue:
            del self.waiting[endpoint_id]
        self.waiting_count -= started + len(late)
        if late:
            self._give_back(late)
        return started > 0

    def _give_back(self, jobs: list[Job]) -> None:
        """End the leases of waiting jobs that may no longer be sent: due again for anyone."""
        task = asyncio.create_task(self._release([job.delivery_id for job in jobs]))
        self.giving_back.add(task)
        task.add_done_callback(self.giving_back.discard)

    async def _release(self, ids: list[str]) -> None:
        try:
            await outbox.release(self.ctx, me=self.me, delivery_ids=ids)
        except Exception:  # the leases run out instead
            log.exception("giving back webhook leases failed")
        self.due = True
        self._wake()

    # Sending

    async def _send(self, job: Job) -> None:
        try:
            outcome = await self._attempt(job)
        except Exception:
            log.exception("webhook attempt crashed", delivery_id=job.delivery_id)
            outcome = self._crashed(job)
        metrics.webhook_attempted(job.endpoint.mode, outcome.succeeded, outcome.latency_ms / 1000)
        self._finished(job, outcome)

    def _crashed(self, job: Job) -> Outcome:
        now = self.ctx.clock()
        return Outcome(
            job=job,
            attempted_at=now,
            succeeded=False,
            error="internal error",
            next_attempt_at=self.policy.next_attempt(job.attempt, job.delivery_created_at, now),
        )

    async def _attempt(self, job: Job) -> Outcome:
        return await self.sender.attempt(job, self.policy)

    # Recording

    def _finished(self, job: Job, outcome: Outcome) -> None:
        """Free the slots of a finished send for a waiting job, queue its outcome, and start a
        lease round once enough are free (or nothing is left waiting)."""
        self.inflight.release(job)
        self.held.release(job)
        self._start_waiting(job.endpoint.id)
        self.freed += 1
        if self.due and (self.freed >= self.refill_after or not self.waiting_count):
            self._wake()
        self.finished.append(outcome)
        self.finished_signal.set()
        if len(self.finished) >= RECORD_BATCH:
            self.record_now.set()

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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECORD_COALESCE):
                    await self.record_now.wait()
            self.finished_signal.clear()
            self.record_now.clear()
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
            self._wake()

    async def _housekeep_forever(self) -> None:
        while True:
            try:
                await self.housekeep()
            except Exception:
                log.exception("webhook housekeeping failed")
            await asyncio.sleep(DUE_CHECK)

    async def _shutdown(self, helpers: list[asyncio.Task[None]]) -> None:
        if self.sending:
            await asyncio.wait(list(self.sending), timeout=SHUTDOWN_GRACE)
        if self.giving_back:
            await asyncio.wait(list(self.giving_back), timeout=SHUTDOWN_GRACE)
        for task in [*self.sending, *helpers]:
            task.cancel()
        for task in [*self.sending, *helpers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._flush()
        except Exception:
            log.exception("recording webhook attempts at shutdown failed")
        await self._release_waiting()
        await self.aclose()

    async def _release_waiting(self) -> None:
        """Give back the leases of jobs that never started, so any dispatcher sends them now
        rather than once the lease runs out."""
        ids = [job.delivery_id for queue in self.waiting.values() for _, job in queue]
        self.waiting.clear()
        self.waiting_count = 0
        if not ids:
            return
        try:
            await outbox.release(self.ctx, me=self.me, delivery_ids=ids)
        except Exception:
            log.exception("giving back webhook leases at shutdown failed")
