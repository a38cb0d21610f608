"""Operations: health and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from drumbeat.api.deps import ContextDep
from drumbeat.engine.metrics import exposition as metrics_text
from drumbeat.schemas import examples

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    model_config = examples({"status": "ok", "database": "ok"})

    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


# A health report, not an error envelope: probes read `status` whatever the code.
@router.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "The database is unavailable", "content": {
                "application/json": {"example": {"status": "degraded", "database": "unavailable"}}}}})
def healthz(ctx: ContextDep):
    try:
        with ctx.db.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return {"status": "ok", "database": "ok"}


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: ContextDep) -> Response:
    """Process metrics (sends, claim latency, in-flight calls of an embedded worker) and the
    database gauges, in Prometheus text format (defined in engine/metrics.py)."""
    return Response(metrics_text(ctx), media_type=CONTENT_TYPE_LATEST)
