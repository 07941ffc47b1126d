"""The Idempotency-Key protocol: run a request once, answer its retries byte for byte.

The request's writes are held in one transaction (`Database.holding`) that commits only
with its stored answer: a crash between the two is impossible, so a retry after a crash
finds either nothing done or the answer, never a change without its answer. A use case
that hands work to a processor over the network commits what it wrote first
(`Database.checkpoint`), so the processor is only told about what exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from datetime import timedelta
from typing import Any

from ..domain.errors import DomainError, Reason
from ..domain.idempotency import replayable
from ..services import idempotency
from ..services.context import ServiceContext
from .respond import ASGIApp, Receive, Scope, Send, send_error

IDEMPOTENCY_LEASE = timedelta(seconds=60)
# Not replayed (the client may fix its request and retry): only successes are stored.
_STORED_STATUS = 200
_NOT_STORED_HEADERS = {b"x-request-id", b"content-length", b"date", b"server"}
# How often a waiter looks at the record again (owners in other processes cannot wake it).
_POLL = 0.05

Key = tuple[str, str]


def request_fingerprint(path: str, content_type: str, body: bytes) -> str:
    """What makes two requests "the same" for idempotency: same RPC, same encoding, same body."""
    return hashlib.sha256(b"\0".join([path.encode(), content_type.encode(), body])).hexdigest()


def valid_idempotency_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(0x20 <= ord(ch) <= 0x7E for ch in key)


class _Entry:
    __slots__ = ("event", "waiting")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiting = 0


class Waiters:
    """Requests of this process waiting for the request that holds their key to finish.

    An entry lives only while someone waits on it: the last waiter to leave (woken, timed
    out, or cancelled because its client went away) removes it.
    """

    def __init__(self) -> None:
        self._entries: dict[Key, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def wait(self, key: Key, timeout: float) -> None:
        """Return when the key's holder in this process finishes, or after `timeout` seconds."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.event.wait(), timeout=timeout)
        finally:
            entry.waiting -= 1
            if entry.waiting == 0 and self._entries.get(key) is entry:
                del self._entries[key]

    def finished(self, key: Key) -> None:
        """Wake everyone waiting on `key` now."""
        if (entry := self._entries.pop(key, None)) is not None:
            entry.event.set()


class IdempotentReplay:
    """Runs `app` for the first request with a key; answers the others from its stored answer."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext, *, wait: float, lease: timedelta) -> None:
        self.app = app
        self.ctx = ctx
        self.wait = wait
        self.lease = lease
        self.waiters = Waiters()

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, *, api_key_id: str, key: str, request_hash: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        owner = uuid.uuid4().hex
        while True:
            stored = await idempotency.claim(
                self.ctx, api_key_id=api_key_id, key=key, request_hash=request_hash, owner=owner, lease=self.lease
            )
            if stored is None:
                break
            if stored.request_hash != request_hash:
                await send_error(
                    send,
                    DomainError(
                        Reason.IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was used with a different request"
                    ),
                )
                return
            if replayable(stored.state):
                await replay(send, stored)
                return
            if loop.time() >= deadline:
                await send_error(send, _in_use())
                return
            await self.waiters.wait((api_key_id, key), min(_POLL, max(0.0, deadline - loop.time())))
        try:
            await self._run(scope, receive, send, api_key_id=api_key_id, key=key, owner=owner)
        finally:
            self.waiters.finished((api_key_id, key))

    async def _run(self, scope: Scope, receive: Receive, send: Send, *, api_key_id: str, key: str, owner: str) -> None:
        # The answer is held back until it is stored (or the key released), so a client
        # that retries the moment it hears back never finds the key still running; and it is
        # stored in the transaction that holds the request's writes.
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        settled = False

        async with self.ctx.db.holding() as held:

            async def settle(status: int | None, body: bytes) -> bool:
                """Commit the answer with the request's writes (True), or undo them and free the key."""
                nonlocal settled
                settled = True
                if status == _STORED_STATUS and start is not None:
                    headers = [
                        [k.decode("latin-1"), v.decode("latin-1")]
                        for k, v in start.get("headers", ())
                        if k.lower() not in _NOT_STORED_HEADERS
                    ]
                    try:
                        async with held.final() as uow:
                            await idempotency.finish(
                                uow,
                                api_key_id=api_key_id,
                                key=key,
                                owner=owner,
                                status=status,
                                headers=headers,
                                body=body,
                            )
                        return True
                    except idempotency.LostClaim:
                        return False
                # Not stored: nothing of it happened, and the client may fix it and retry.
                await held.rollback()
                await idempotency.release(self.ctx, api_key_id=api_key_id, key=key, owner=owner)
                return True

            async def hold(message: dict[str, Any]) -> None:
                nonlocal start
                if message["type"] == "http.response.start":
                    start = message
                    return
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                assert start is not None
                if not await settle(start["status"], body):
                    # Outlived its lease and a retry took the key over: this run's writes are undone.
                    await send_error(send, _in_use())
                    return
                # Waiters read the stored answer at once rather than at their next poll.
                self.waiters.finished((api_key_id, key))
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})

            try:
                await self.app(scope, receive, hold)
            finally:
                if not settled:
                    await settle(None, b"")


def _in_use() -> DomainError:
    return DomainError(Reason.IDEMPOTENCY_KEY_IN_USE, "a request with this Idempotency-Key is still being processed")


async def replay(send: Send, stored: idempotency.Stored) -> None:
    """Send the stored answer again, marked as a replay."""
    body = stored.response_body or b""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.response_headers or []]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": stored.response_status or 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
