"""`GET /metrics` on its own address (`TOFFEEPAY_METRICS_ADDRESS`), never the public port.

The exporter runs in the process that supervises the workers: it adds up the counters and
histograms every worker wrote (prometheus-client's multiprocess mode) and reads the gauges
that describe the installation (outbox backlog, disabled endpoints) from the database at
each scrape, so every worker count reports them once.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..config import Settings, parse_address
from ..domain.keys import Mode
from ..services import operations
from ..services.context import ServiceContext

log = structlog.get_logger("toffeepay.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_TIMEOUT = 5.0
MODES = [mode.value for mode in Mode]


class DatabaseCollector(Collector):
    """The gauges read from the database, on an event loop of its own (scrapes come on threads)."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="toffeepay-metrics-db", daemon=True).start()
        self.ctx = ServiceContext.from_settings(settings, pool_size=1)

    def collect(self) -> Iterator[Metric]:
        future = asyncio.run_coroutine_threadsafe(operations.figures(self.ctx), self.loop)
        try:
            figures = future.result(SCRAPE_TIMEOUT)
        except (FutureTimeout, Exception) as exc:
            future.cancel()
            log.warning("metrics could not read the database", error=type(exc).__name__)
            return
        now = datetime.now(UTC)
        pending = GaugeMetricFamily(
            "toffeepay_outbox_pending_deliveries",
            "Webhook deliveries not yet made or still being retried.",
            labels=["mode"],
        )
        oldest = GaugeMetricFamily(
            "toffeepay_outbox_oldest_pending_seconds",
            "Age of the oldest webhook delivery still to make (0 when none).",
            labels=["mode"],
        )
        disabled = GaugeMetricFamily(
            "toffeepay_endpoints_disabled", "Webhook endpoints that are switched off.", labels=["mode"]
        )
        backlog = {b.mode: b for b in figures.backlog}
        for mode in MODES:
            found = backlog.get(mode)
            pending.add_metric([mode], found.pending if found else 0)
            age = (now - found.oldest).total_seconds() if found and found.oldest else 0.0
            oldest.add_metric([mode], max(0.0, age))
            disabled.add_metric([mode], figures.disabled_endpoints.get(mode, 0))
        yield pending
        yield oldest
        yield disabled


def start(address: str, settings: Settings) -> Any:
    """Serve /metrics on `address` in a background thread; returns the HTTP server (to shut down)."""
    host, port = parse_address(address)
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry.register(DatabaseCollector(settings))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
