"""The Prometheus metrics every process records (docs/operations.md lists them).

With several worker processes, `toffeepay serve` points `PROMETHEUS_MULTIPROC_DIR` at a
directory of its own before any worker starts; prometheus-client then keeps each
process's values in files there, and the exporter adds them up.
No label carries a secret or a player's id: labels are services, methods, codes, modes,
payment methods and statuses.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from ..domain import events

RPC_REQUESTS = Counter(
    "toffeepay_rpc_requests",
    "Connect API requests answered, by service, method and Connect code (ok for success).",
    ["service", "method", "code"],
)
RPC_DURATION = Histogram(
    "toffeepay_rpc_duration_seconds",
    "Time to answer a Connect API request, from its first byte to the last byte of the answer.",
    ["service", "method"],
)
PAYMENTS = Counter(
    "toffeepay_payments",
    "Payments by the status they reached: processing when created, then succeeded or failed.",
    ["mode", "method", "status"],
)
WEBHOOK_DELIVERIES = Counter(
    "toffeepay_webhook_deliveries",
    "Webhook delivery attempts by outcome (succeeded: a 2xx answer; failed: anything else).",
    ["mode", "outcome"],
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "toffeepay_webhook_delivery_duration_seconds",
    "Time from sending a webhook to the end of the receiver's answer (or the failure).",
    ["mode"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")),
)

# The payment events and the status each one reports.
_PAYMENT_STATUS = {
    events.PAYMENT_CREATED: "processing",
    events.PAYMENT_SUCCEEDED: "succeeded",
    events.PAYMENT_FAILED: "failed",
}
UNKNOWN = "unknown"


def rpc_answered(service: str, method: str, code: str, seconds: float) -> None:
    RPC_REQUESTS.labels(service, method, code).inc()
    RPC_DURATION.labels(service, method).observe(seconds)


def events_committed(committed: Iterable[events.Event]) -> None:
    """Count what a committed transaction reported (called after the commit, never before)."""
    for event in committed:
        status = _PAYMENT_STATUS.get(event.type)
        if status is not None:
            PAYMENTS.labels(event.mode, str(event.data.get("method") or UNKNOWN), status).inc()


def webhook_attempted(mode: str, succeeded: bool, seconds: float) -> None:
    WEBHOOK_DELIVERIES.labels(mode, "succeeded" if succeeded else "failed").inc()
    WEBHOOK_DELIVERY_DURATION.labels(mode).observe(seconds)
