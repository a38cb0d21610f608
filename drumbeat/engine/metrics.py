"""Prometheus metrics: every definition in one place; the engine only increments them.

Counted by the process that made the call (`WorkerMetrics`):

    drumbeat_sends_total{channel, outcome}      provider answers; outcome accepted | key | rate |
                                                transient | lead | campaign (DESIGN.md §3)
    drumbeat_claim_seconds                      histogram of the claim transaction (it also records
                                                the outcomes that finished since the last one)
    drumbeat_provider_calls_in_flight{channel}  provider calls started and not yet answered

Read from the database at scrape time, the same from every process (`DatabaseCollector`):

    drumbeat_campaigns{status, paused_reason}   campaigns by status (pauses by reason)
    drumbeat_holds{channel, reason}             channels held now
    drumbeat_due_leads{campaign_id}             leads due and not claimed, per sending campaign
    drumbeat_database_up                        1 when those could be read, else 0

`drumbeat serve` answers them at /metrics (api/ops.py), `drumbeat worker --metrics-port N`
on its own port (`serve_metrics`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_wsgi_server
from sqlalchemy.exc import SQLAlchemyError

from drumbeat.domain.channels import Channel
from drumbeat.domain.errors import ErrorClass, SendResult
from drumbeat.services.context import Context
from drumbeat.store import stats

log = structlog.get_logger()

OUTCOMES = ("accepted", *(c.value for c in ErrorClass))
# A claim takes milliseconds on a healthy database; the top buckets catch lock waits.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def outcome(result: SendResult) -> str:
    return "accepted" if result.accepted else ErrorClass(result.error_class).value


class WorkerMetrics:
    """The metrics one worker keeps. Each instance has its own registry (tests read one
    worker's figures); `process_metrics()` is the one a process exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sends = Counter("drumbeat_sends", "Provider answers to sends, by channel and outcome",
                             ["channel", "outcome"], registry=self.registry)
        self.claim_seconds = Histogram("drumbeat_claim_seconds", "Duration of the claim transaction",
                                       buckets=CLAIM_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("drumbeat_provider_calls_in_flight", "Provider calls awaiting an answer",
                               ["channel"], registry=self.registry)
        self._in_flight: dict = {}
        for channel in Channel:  # every series exists from the start: a rate over a missing series is empty
            self.in_flight.labels(channel.value)
            for name in OUTCOMES:
                self.sends.labels(channel.value, name)

    def answered_batch(self, counts: dict[tuple[str, str], int]) -> None:
        """(channel, outcome) -> answers: one increment per series, not per send."""
        for (channel, name), n in counts.items():
            self.sends.labels(channel, name).inc(n)

    def in_flight_of(self, channel: str):
        """The channel's in-flight gauge (looked up once: labels() takes a lock per call)."""
        child = self._in_flight.get(channel)
        if child is None:
            child = self._in_flight[channel] = self.in_flight.labels(channel)
        return child


_process: WorkerMetrics | None = None
_process_lock = threading.Lock()


def process_metrics() -> WorkerMetrics:
    """The process's worker metrics, in prometheus_client's default registry (created on
    first use, not at import)."""
    global _process
    with _process_lock:
        if _process is None:
            _process = WorkerMetrics(REGISTRY)
        return _process


class DatabaseCollector:
    """Gauges read from the database at scrape time: the same for every process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self):
        statuses = GaugeMetricFamily("drumbeat_campaigns", "Campaigns by status and pause reason",
                                     labels=["status", "paused_reason"])
        held = GaugeMetricFamily("drumbeat_holds", "Channels held now, by channel and reason",
                                 labels=["channel", "reason"])
        queue = GaugeMetricFamily("drumbeat_due_leads", "Leads due now and not claimed, per sending campaign",
                                  labels=["campaign_id"])
        try:
            with self.ctx.db.connect() as conn:
                for status, reason, n in stats.campaigns_by_status(conn):
                    statuses.add_metric([status, reason or ""], n)
                for channel, reason, n in stats.holds_by_reason(conn):
                    held.add_metric([channel, reason], n)
                for campaign_id, n in stats.due_leads(conn, self.ctx.clock()):
                    queue.add_metric([campaign_id], n)
        except SQLAlchemyError as exc:  # a scrape must still answer while the database is away
            log.warning("metrics: database unavailable", error=type(exc).__name__)
            yield GaugeMetricFamily("drumbeat_database_up", "Whether the database gauges could be read", value=0)
            return
        yield GaugeMetricFamily("drumbeat_database_up", "Whether the database gauges could be read", value=1)
        yield from (statuses, held, queue)


class Exposition:
    """Several collectors served as one (the process's metrics and the database gauges)."""

    def __init__(self, *collectors) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(ctx: Context, process: CollectorRegistry = REGISTRY) -> bytes:
    """The Prometheus text of a process's metrics and the database gauges."""
    return generate_latest(Exposition(process, DatabaseCollector(ctx)))


def serve_metrics(ctx: Context, port: int, host: str = "127.0.0.1", process: CollectorRegistry = REGISTRY):
    """Answer GET /metrics (any path) on host:port from a daemon thread; returns the server
    (`.server_address`, `.shutdown()`)."""
    server, _thread = start_wsgi_server(port, host, registry=Exposition(process, DatabaseCollector(ctx)))
    log.info("metrics served", host=host, port=server.server_address[1])
    return server
