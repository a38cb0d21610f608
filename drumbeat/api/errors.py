"""The error envelope of API.md: {"error": {"code", "message", "details"}}; never a 500 by design."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from drumbeat.domain.exceptions import DomainError
from drumbeat.schemas import error_fields

log = structlog.get_logger()

STATUS_OF_CODE = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "validation_error": 422,
    "invalid_transition": 409,
    "resume_blocked": 409,
    "confirmation_required": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
}
# SQLSTATEs meaning "the database cannot do this now; try again later", whatever exception
# class the driver gives them: a read-only database or transaction (25006 is an
# InternalError in psycopg), disk full, out of memory, too many connections, shutting down.
UNAVAILABLE_SQLSTATES = frozenset({"25006", "53100", "53200", "53300", "57P01", "57P02", "57P03"})
CODE_OF_STATUS = {v: k for k, v in STATUS_OF_CODE.items() if k not in ("resume_blocked", "confirmation_required")}


class ApiError(Exception):
    def __init__(self, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


def error_response(code: str, message: str, details: dict | None = None, status: int | None = None,
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details or {}}},
                        status_code=status or STATUS_OF_CODE.get(code, 400), headers=headers)


PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method the path serves (RFC 9110), found by asking the routes whether they
    would take the request with each method. Starlette's own Allow names only the first
    route of the path: `OPTIONS /campaigns` said `POST` though `GET` is served too."""
    routes = request.app.router.routes
    return ", ".join(m for m in PROBED_METHODS
                     if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc.code, exc.message, exc.details)

    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError):
        wait = exc.details.get("retry_after_seconds") if exc.code == "rate_limited" else None
        return error_response(exc.code, exc.message, exc.details,
                              headers={"Retry-After": str(wait)} if wait is not None else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        fields = [field for e in exc.errors() for field in error_fields(e)]
        return error_response("validation_error", "the request is not valid", {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = CODE_OF_STATUS.get(exc.status_code, "not_found" if exc.status_code == 404 else "validation_error")
        if exc.status_code == 400:  # a body that cannot be parsed is invalid input like any other
            return error_response("validation_error", str(exc.detail),
                                  {"fields": [{"field": "body", "message": str(exc.detail)}]})
        if exc.status_code == 405:
            return error_response("method_not_allowed", "method not allowed", status=405,
                                  headers={**(exc.headers or {}), "Allow": _allowed_methods(request)})
        return error_response(code, str(exc.detail), status=exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError):
        # OperationalError: unreachable, connection lost, locked; SQLite's read-only file and
        # full disk too (SQLITE_READONLY, SQLITE_FULL are OperationalErrors in sqlite3).
        if (isinstance(exc, OperationalError) or exc.connection_invalidated
                or getattr(exc.orig, "sqlstate", None) in UNAVAILABLE_SQLSTATES):
            # The driver's code (SQLSTATE 53100, SQLITE_FULL) tells the operator what to fix.
            log.warning("database unavailable", error=type(exc.orig).__name__ if exc.orig else type(exc).__name__,
                        code=getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None))
            return error_response("unavailable", "the database is unavailable; try again shortly")
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        # A bug, not a contract: log it (without request bodies, which may hold secrets).
        log.error("unhandled error", error_type=type(exc).__name__)
        return error_response("internal_error", "unexpected error", status=500)
