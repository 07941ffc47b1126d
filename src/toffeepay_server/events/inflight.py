"""The dispatcher's count of requests: per endpoint, per game and mode, per mode.

One count is of the requests in flight (`fits` says whether one more may start); another,
with larger limits, of the deliveries leased here (in flight or waiting for a slot).
"""

from __future__ import annotations

from collections import Counter

from ..services.outbox import Capacity, Job, Limits, scope_key


class InFlight:
    """Slots taken by sends under way; `capacity` is what the next lease may still take."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.endpoints: Counter[str] = Counter()
        # Keyed `mode:game_id`.
        self.scopes: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()

    def __bool__(self) -> bool:
        return bool(self.endpoints)

    def capacity(self) -> Capacity:
        return Capacity(self.limits, self.endpoints, self.scopes, self.modes)

    def _keys(self, job: Job) -> tuple[tuple[Counter[str], str], ...]:
        return (
            (self.endpoints, job.endpoint.id),
            (self.scopes, scope_key(job.endpoint.game_id, job.endpoint.mode)),
            (self.modes, job.endpoint.mode),
        )

    def fits(self, job: Job) -> bool:
        """Whether one more request to this job's endpoint is within every limit now."""
        endpoint = job.endpoint
        if self.endpoints[endpoint.id] >= self.limits.per_endpoint:
            return False
        return not self.limits.scope_full(
            self.scopes[scope_key(endpoint.game_id, endpoint.mode)], self.modes[endpoint.mode]
        )

    def take(self, job: Job) -> None:
        for counter, key in self._keys(job):
            counter[key] += 1

    def release(self, job: Job) -> None:
        """The request is over: its slots are free (the lease holds until the outcome is recorded)."""
        for counter, key in self._keys(job):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
