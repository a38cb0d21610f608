"""Operations: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from drumbeat.api.deps import ContextDep
from drumbeat.services.context import Context
from drumbeat.store import stats

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(ctx: ContextDep):
    try:
        with ctx.db.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return {"status": "ok", "database": "ok"}


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
        with self.ctx.db.connect() as conn:
            for status, reason, n in stats.campaigns_by_status(conn):
                statuses.add_metric([status, reason or ""], n)
            for channel, reason, n in stats.holds_by_reason(conn):
                held.add_metric([channel, reason], n)
            for campaign_id, n in stats.due_leads(conn, self.ctx.clock()):
                queue.add_metric([campaign_id], n)
        yield from (statuses, held, queue)


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: ContextDep) -> Response:
    """Process metrics (sends, claim latency, in-flight calls of an embedded worker) and the
    database gauges, in Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(ctx))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
