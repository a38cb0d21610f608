"""Operations: health and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from drumbeat.api.deps import ContextDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(ctx: ContextDep):
    try:
        with ctx.db.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return {"status": "ok", "database": "ok"}
