"""The FastAPI application factory.

``create_app(settings, store)`` wires the shared context (settings, store, clock), the
error mapping, the masked access log and one router per feature. The app is thin: every
handler validates input, runs one use case of a bounded context inside one unit of work
(:mod:`huitouke.service.uow`) and presents the result.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huitouke.i18n import t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.service.context import KeyCache, ServiceContext, system_clock
from huitouke.service.deps import get_ctx
from huitouke.service.error_handlers import install_error_handlers
from huitouke.service.limits import RequestGuard
from huitouke.service.masking import ReadKeyMasking, install_log_masking
from huitouke.service.uow import start_checkpointer, stop_checkpointer
from huitouke.service.webhook_door import WebhookDoor
from huitouke.service.webhook_door import applier as webhook_applier
from huitouke.settings import Settings, get_settings, load_settings
from huitouke.store.db import Store

__all__ = ["ROUTER_MODULES", "create_app", "route_table"]

access_log = logging.getLogger("huitouke.service.access")

#: Every router of the service, included in this order: the one list of what `huitouke
#: serve` answers. A module missing from an installation is an error, never a silent gap
#: (tests compare the built app's routes with docs/api.md and with every URL the product
#: prints).
ROUTER_MODULES = (
    "huitouke.service.routers.orders",
    "huitouke.service.routers.customers",
    "huitouke.service.routers.loyalty",
    "huitouke.service.routers.metrics",
    "huitouke.service.routers.admin",
    # one customer across platforms: persons, merges, unmerges, matches
    "huitouke.service.routers.identity",
    # stored journeys, runs, fulfilment events, results
    "huitouke.service.routers.journeys",
    # tracked links /r/{token}, package-insert QR pages and claims
    "huitouke.service.routers.measurement",
    # WeCom private domain: the customer-contact callback and the welcome survey (no key)
    "huitouke.service.routers.wecom",
    # the scheduler's jobs and run history
    "huitouke.service.routers.scheduler",
    # shop connectors: registry, sync, inbox and the platforms' signed webhooks
    "huitouke.service.routers.connectors",
    # the messaging context's public callbacks (unsubscribe page, inbound SMS, receipts)
    "huitouke.messaging.api",
    # the merchant console: /, /login, /logout and its pages (console users and sessions)
    "huitouke.service.console.web",
    # the console's Journeys pages (list, edit, preview, run, outbox, results)
    "huitouke.service.console.journeys",
    # the console's Data page (upload an export, its progress and summary, import history)
    "huitouke.service.console.data",
    # console: segments, customer filters and export; predictions (customer facts snapshot)
    "huitouke.service.console.segments",
    "huitouke.service.console.predictions",
    # the console's snapshot refresh (huitouke.app.snapshots)
    "huitouke.service.console.snapshots",
    # the console's loyalty section: liabilities, coupons in batch, corrections, program
    "huitouke.service.console.loyalty",
    # console settings (stored channel and contact-rule settings, API keys, audit log)
    "huitouke.service.console.settings_page",
    # console tags and profile attributes
    "huitouke.service.console.tags_page",
    # REST: stored settings and the audit log; tags and profile attributes
    "huitouke.service.routers.settings_api",
    "huitouke.service.routers.profiles",
    # the console's loyalty program editor (document and structured forms)
    "huitouke.service.console.loyalty_program",
    # console: shop connectors, the scheduler's jobs and history, identity merges, WeCom
    "huitouke.service.console.connectors_page",
    "huitouke.service.console.scheduler_page",
    "huitouke.service.console.identity_page",
    "huitouke.service.console.wecom_page",
    # the console's background tasks: progress of a snapshot refresh, coupons to a segment
    "huitouke.service.console.tasks_page",
)

DESCRIPTION = """
回头客 huitouke — orders in, loyalty out.

**Auth**: every `/v1` endpoint needs `Authorization: Bearer <key>`; keys come from
`huitouke apikey create --scope read|operator|admin`. Scopes are ordered
`read < operator < admin`: *read* may call GETs, *operator* also posts orders and runs
loyalty operations (redeem, issue, top-up…), *admin* also manages programs, keys and
settings. Without a key: 401; with too low a scope: 403.

**Errors** are `{"error": {"code", "message", "details"}}` with a stable `code`
(`coupon.already_redeemed`, `input.invalid`, …); validation errors are 422 and list each
bad field in `details.fields`. Messages follow `Accept-Language` (zh or en).

**Money** is a decimal string in responses (`"199.9000"`) and a decimal string or number
in requests. **Instants** are ISO 8601 with an offset.

**Privacy**: names, phone numbers and e-mail addresses are masked for *read* keys
(`138****5678`, `张*`) and always in logs.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("huitouke")
    except PackageNotFoundError:  # running from a source tree
        return "0"


class AccessLogMiddleware:
    """One masked log line per request: method, path, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s %d %.1fms",
                    (scope.get("client") or ("-",))[0],
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - start) * 1000,
                )


def _keep_sqlite_open(store: Store) -> Any:
    """Hold one idle connection to a SQLite store while the app runs.

    The store opens a connection per unit of work. When the *last* connection to a WAL
    database closes, SQLite checkpoints and resets the WAL, and the next writer must set it
    up again — two synchronous disk flushes per request. One connection kept open for the
    app's lifetime keeps the WAL in place (SQLite still checkpoints it every 1,000 pages).
    """
    if store.dialect != "sqlite":
        return None
    return store.engine.raw_connection()


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the API over ``store`` (default: ``Store(settings.database_url)``, migrated)."""
    settings = settings or get_settings()
    if store is None:
        store = Store(settings.database_url)
        if migrate:
            store.migrate()
    install_log_masking()
    ctx = ServiceContext(
        settings=settings,
        store=store,
        clock=clock or system_clock,
        keys=KeyCache(settings.api_key_cache_seconds),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the pool that runs sync endpoints (and so every unit of work)
        anyio.to_thread.current_default_thread_limiter().total_tokens = max(
            1, settings.service_threads
        )
        switch = sys.getswitchinterval()
        if settings.thread_switch_ms > 0:
            sys.setswitchinterval(settings.thread_switch_ms / 1000)
        keeper = _keep_sqlite_open(store)
        checkpointer = start_checkpointer(store, settings.sqlite_checkpoint_seconds)
        inbox = webhook_applier(ctx)
        if settings.webhook_apply != "scheduler":  # else the scheduler's process applies them
            await inbox.start()  # webhook deliveries acknowledged and not applied before
        try:
            yield
        finally:
            await inbox.stop()
            sys.setswitchinterval(switch)
            stop_checkpointer(store, checkpointer)
            if keeper is not None:
                keeper.close()

    app = FastAPI(
        lifespan=lifespan,
        title=t("service.title", "en"),
        version=_version(),
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # no OAuth2 flow here: keys are bearer tokens, so no Swagger redirect page
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    # outermost last: the access log sees the guard's 401/413 answers too
    # innermost: the shop platforms' webhooks answered ahead of the router (lean door)
    app.add_middleware(WebhookDoor, ctx=ctx)
    app.add_middleware(ReadKeyMasking)
    app.add_middleware(RequestGuard, ctx=ctx)
    app.add_middleware(AccessLogMiddleware)

    @app.get("/health", tags=["health"])
    def health(c: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
        """Liveness and store check (no key needed). 健康检查。"""
        with c.store.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "database": c.store.dialect}

    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    return app


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every ``(method, path)`` the app answers, sorted (HEAD, implied by GET, left out)."""
    from fastapi.routing import iter_route_contexts

    out: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD" and route.path:
                out.add((method, route.path))
    return sorted(out)


def app_from_env() -> FastAPI:
    """uvicorn factory for `huitouke serve`: settings from the environment; the CLI has
    already migrated the store, so workers do not race to migrate it."""
    return create_app(load_settings(), migrate=False)
