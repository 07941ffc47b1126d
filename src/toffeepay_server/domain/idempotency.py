"""An Idempotency-Key record: one request under one key, and its lifecycle."""

from __future__ import annotations

from enum import StrEnum


class IdempotencyState(StrEnum):
    """Where the first request under a key stands."""

    RUNNING = "running"
    """Claimed by a request still being answered (a lease: a dead process's claim can be taken over)."""
    DONE = "done"
    """Answered with success: the stored answer is replayed byte for byte until the record expires."""


# A running record becomes done, or is released (deleted) when its answer is not stored.
TRANSITIONS: dict[IdempotencyState, frozenset[IdempotencyState]] = {
    IdempotencyState.RUNNING: frozenset({IdempotencyState.DONE}),
    IdempotencyState.DONE: frozenset(),
}


def replayable(state: str) -> bool:
    """Whether a stored record holds an answer to replay (it moved as far as it can)."""
    return not TRANSITIONS[IdempotencyState(state)]
