"""The FastAPI application: routers, error translation, request metrics.

``create_app(ctx)`` is all the service needs; it runs the app with uvicorn in its TaskGroup.
Errors are translated at this boundary into HTTP answers a client can act on: 404 for anything
absent or outside the key's scope, 409 for conflicts (a transition not allowed now, a stale
``expected_version``), 422 for invalid input (including values PostgreSQL refuses), 503 with
``Retry-After`` while the database is unavailable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from alerts import load_policy
from alerts.lifecycle import AlertNotFound, TransitionError, VersionConflict
from alerts.silences import SilenceError, SilenceNotFound
from api.context import ApiContext
from api.guard import FailureThrottle, Guard
from api.keys import KeyStore
from api.ratelimit import RateLimiter
from api.sessions import LiveSessions
from api.tickets import TicketBook
from api.routes import (
    alerting,
    dashboard,
    docs,
    gateway_credentials,
    live,
    ops,
    registry_entries,
    registry_import,
    riskmap,
    telemetry,
    webhook_hosts,
)
from api.routes.registry_scope import Forbidden, OutOfScope
from store.registry_file import RegistryFileError

log = logging.getLogger("yujing.api")

requests_total = Counter("yujing_api_requests_total", "HTTP requests answered", ["method", "status"])
request_seconds = Histogram("yujing_api_request_seconds", "HTTP request time", ["method"],
                            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))

DESCRIPTION = """预警 yujing: telemetry and early warning for provincial work-safety monitoring.

Every `/api` call needs an API key (`X-API-Key: yj_…` or `Authorization: Bearer yj_…`); the live
feeds take a one-use ticket instead (`POST /api/v1/live/ticket`, then `?ticket=`). A key has a scope — the province, a city or county, or one enterprise —
and sees nothing outside it: ids outside the scope answer 404, as if absent. Keys are created with
`yujing keys create --scope …`; each write is recorded with its key; requests are rate-limited per key.
"""


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _Metrics:
    """Pure ASGI middleware (does not buffer streaming responses)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            requests_total.labels(scope["method"], str(status["code"])).inc()
            request_seconds.labels(scope["method"]).observe(time.perf_counter() - started)


def create_app(ctx: ApiContext) -> FastAPI:
    # The OpenAPI document and the docs page are routes of api/routes/docs.py (local Swagger UI
    # assets, keyless only as the `keyless_ops` setting allows), not FastAPI's built-in ones.
    app = FastAPI(title="yujing 预警 API", version="1", description=DESCRIPTION,
                  openapi_url=None, docs_url=None, redoc_url=None)
    if ctx.alerts_policy is None:
        ctx = dataclasses.replace(ctx, alerts_policy=load_policy())
    app.state.ctx = ctx
    app.state.keys = KeyStore(ctx.pool)
    app.state.limiter = RateLimiter()
    app.state.tickets = TicketBook()
    app.state.import_slots = asyncio.Semaphore(1)  # registry files parsed at once (api.routes.registry_import)
    app.state.live_sessions = LiveSessions(ctx.pool)
    guard = ctx.settings.guard
    app.state.auth_throttle = FailureThrottle(guard.auth_failures_burst, guard.auth_failures_per_s)
    for r in (ops.router, registry_entries.router, registry_import.router, gateway_credentials.router, telemetry.router, alerting.router,
              riskmap.router, live.router, webhook_hosts.router, dashboard.router, docs.router):
        app.include_router(r)
    app.add_middleware(Guard, keys=lambda: app.state.keys, throttle=app.state.auth_throttle, settings=guard)
    app.add_middleware(_Metrics)  # outermost: counts what the guard refused too

    @app.exception_handler(OutOfScope)
    async def _out_of_scope(request: Request, exc: OutOfScope):
        return _error(404, str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return _error(403, str(exc))

    @app.exception_handler(AlertNotFound)
    @app.exception_handler(SilenceNotFound)
    async def _not_found(request: Request, exc: Exception):
        return _error(404, str(exc))

    @app.exception_handler(TransitionError)
    async def _conflict(request: Request, exc: TransitionError):
        return _error(409, str(exc))

    @app.exception_handler(VersionConflict)
    async def _version(request: Request, exc: VersionConflict):
        return _error(409, str(exc))

    @app.exception_handler(RegistryFileError)
    @app.exception_handler(SilenceError)
    async def _invalid(request: Request, exc: Exception):
        return _error(422, str(exc))

    @app.exception_handler(asyncpg.DataError)
    async def _bad_value(request: Request, exc: asyncpg.DataError):
        return _error(422, f"invalid value: {exc.__class__.__name__}: {str(exc)[:200]}")

    @app.exception_handler(asyncpg.IntegrityConstraintViolationError)
    async def _integrity(request: Request, exc: asyncpg.IntegrityConstraintViolationError):
        return _error(409, f"conflicts with stored data: {str(exc)[:200]}")

    @app.exception_handler(asyncpg.TooManyConnectionsError)
    @app.exception_handler(asyncpg.CannotConnectNowError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(asyncpg.QueryCanceledError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    async def _unavailable(request: Request, exc: Exception):
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return _error(503, "the database is unavailable or slow; retry later", {"Retry-After": "5"})

    return app
