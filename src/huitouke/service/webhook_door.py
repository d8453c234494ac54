"""The shop platforms' webhooks: acknowledged once stored, applied in the background.

``POST /v1/connectors/{name}/webhook`` is the busiest door of a connected shop (one
delivery per order event, from many platform senders at once), so it is served lean:

- :class:`WebhookDoor`, an ASGI middleware in front of the router, answers it without the
  router's route matching, dependency solving and response validation — the same checks
  and the same answers as the route in :mod:`huitouke.service.routers.connectors`, which
  stays for the API description and serves it when the door is not installed. The
  request guard in front (body limit) still applies.
- :func:`receive` verifies the signature over the raw body (401, nothing stored), stores
  the delivery in the inbox — concurrent deliveries share one unit of work
  (:class:`~huitouke.service.combine.GroupCommit`) — and answers 200 once that unit is
  **committed**: the acknowledgement the platform waits for (Shopify: 5 s).
- :class:`InboxApplier` then applies what was stored, in batches of whatever arrived
  meanwhile, in one unit of work per connector and batch, in a worker thread: through
  ``record_order_events``, marking each inbox row applied, ignored or failed with its
  reason. The rows are locked in that unit and applied only if still pending, so another
  applier (another worker, the scheduler's sweep, a retry) never applies one twice.
- With ``HUITOUKE_WEBHOOK_APPLY=scheduler`` the worker only stores and answers; the
  scheduler's process applies the deliveries as they arrive
  (:class:`huitouke.app.scheduler.inbox.InboxFollower`).
- What an applier did not get to — the process stopped after the acknowledgement — is
  pending in the inbox: the service applies the pending rows received before it started
  (:meth:`InboxApplier.start`), and the scheduler's ``connectors.inbox`` job those older
  than a minute (:func:`~huitouke.app.connectors.apply_pending`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from huitouke.app import connectors as uc
from huitouke.core.orders import SOURCE_PATTERN
from huitouke.errors import HuitoukeError
from huitouke.i18n import t
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.combine import GroupCommit
from huitouke.service.context import ServiceContext
from huitouke.service.lang import negotiate_lang
from huitouke.service.programs import loyalty_service

__all__ = ["InboxApplier", "WebhookDoor", "applier", "receive"]

log = logging.getLogger("huitouke.service.webhooks")

#: how long a worker trusts a connector's webhook secret and status it read
KEY_TTL = 5.0
#: the most deliveries one background unit of work applies
APPLY_MAX = 500
_PREFIX = "/v1/connectors/"
_SUFFIX = "/webhook"
_NAME_RE = re.compile(SOURCE_PATTERN)
#: the kinds whose pushes only name an order: the background fetches its state right away
#: (Douyin's wait for the next sync, a retry or the scheduler's sweep)
FETCHED_KINDS = frozenset({"wechat_shop"})


def _loyalty(ctx: ServiceContext) -> uc.LoyaltyFactory:
    def factory(conn: Connection) -> LoyaltyService | None:
        return loyalty_service(conn, ctx)

    return factory


# -- the connector's key (kind, status, secret), cached --------------------------------------
def forget_key(ctx: ServiceContext, name: str) -> None:
    """Drop the cached key of ``name`` (paused, resumed, removed)."""
    ctx.cache.pop(f"connector.key.{name}", None)


async def _key(ctx: ServiceContext, name: str) -> tuple[str, str, str]:
    """The connector's :func:`~huitouke.app.connectors.webhook_key`, read at most once per
    :data:`KEY_TTL` however many deliveries ask at once (one read, the others wait for it)."""
    cache_key = f"connector.key.{name}"
    cached = ctx.cache.get(cache_key)
    if cached is not None and cached[0] > time.monotonic():
        key: tuple[str, str, str] = cached[1]
        return key
    flights: dict[str, asyncio.Future[tuple[str, str, str]]] = ctx.cache.setdefault(
        "connector.key.flights", {}
    )
    flight = flights.get(name)
    if flight is not None:
        return await asyncio.shield(flight)
    flight = flights[name] = asyncio.get_running_loop().create_future()
    try:
        key = await run_in_threadpool(uc.webhook_key, ctx.store, ctx.settings, name)
    except BaseException as exc:
        flight.set_exception(exc)
        flight.exception()  # retrieved: a lone caller's error is not logged as unawaited
        raise
    else:
        ctx.cache[cache_key] = (time.monotonic() + KEY_TTL, key)
        flight.set_result(key)
        return key
    finally:
        flights.pop(name, None)


# -- storing -----------------------------------------------------------------------------------
def _store_group(ctx: ServiceContext) -> GroupCommit[uc.Delivery, uc.Receipt]:
    """This process's group commit of webhook deliveries into the inbox (every connector:
    the rows name theirs)."""
    group = ctx.cache.get("connector.store_group")
    if group is None:
        group = ctx.cache["connector.store_group"] = GroupCommit(
            lambda ds: uc.store_deliveries(ctx.store, ds),
            lambda d: uc.store_deliveries(ctx.store, [d])[0],
            ctx.settings.orders_group_commit_max,
        )
    return group


async def receive(
    ctx: ServiceContext,
    name: str,
    headers: dict[str, str],
    body: bytes,
    query: dict[str, str] | None = None,
) -> dict[str, Any] | str:
    """One delivery (``headers`` with lower-case names; ``query``: the URL's parameters,
    which carry WeChat's signature): verified, stored and committed, handed to the
    background applier; the answer's ``status`` is the inbox row's now (``pending`` until
    applied; ``failed``/``ignored`` when decided at receipt; ``replayed`` for a repeat). A
    WeChat 小店 push is answered with the text ``success`` its platform expects."""
    key = await _key(ctx, name)
    delivery = uc.accept_delivery(name, key, headers, body, ctx.clock(), query)
    receipt = await _store_group(ctx).submit(delivery)
    status = receipt.status if receipt.stored else "replayed"
    # a refund's order is fetched from the platform, by the sweep, not while it waits
    refund = delivery.row["topic"] == "refunds/create"
    # (HUITOUKE_WEBHOOK_APPLY=scheduler: the scheduler's process applies it, not this one)
    mine = ctx.settings.webhook_apply != "scheduler"
    if (
        mine
        and key[1] == "active"
        and receipt.stored
        and receipt.status == "pending"
        and not refund
    ):
        applier(ctx).submit(name, key[0], receipt, delivery)
    if key[0] == "wechat_shop":
        return "success"
    out: dict[str, Any] = {"inbox_id": receipt.inbox_id, "replayed": not receipt.stored}
    out["status"] = status
    if key[0] in ("youzan", "douyin"):  # the acknowledgement a Youzan or Douyin push expects
        out.update(code=0, msg="success")
    return out


# -- applying ----------------------------------------------------------------------------------
_Work = tuple[str, str, uc.Receipt, uc.Delivery]


class InboxApplier:
    """Applies the deliveries this process stored, in the background (see the module
    docstring). One per service context; :meth:`submit` is called on the event loop."""

    def __init__(self, ctx: ServiceContext, *, max_items: int = APPLY_MAX) -> None:
        self.ctx = ctx
        self.max_items = max_items
        self._queue: list[_Work] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._swept = threading.Event()
        self._swept.set()
        self.started_at: datetime | None = None
        #: units run and deliveries handed to them (diagnostics, tests)
        self.units = 0
        self.items = 0

    def submit(self, name: str, kind: str, receipt: uc.Receipt, delivery: uc.Delivery) -> None:
        self._queue.append((name, kind, receipt, delivery))
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_items]
                del self._queue[: self.max_items]
                await run_in_threadpool(self._apply, batch)
        finally:
            if not self._queue:
                self._idle.set()

    def _apply(self, batch: Sequence[_Work]) -> None:
        by_connector: dict[tuple[str, str], list[tuple[uc.Receipt, uc.Delivery]]] = {}
        for name, kind, receipt, delivery in batch:
            by_connector.setdefault((name, kind), []).append((receipt, delivery))
        for (name, kind), items in by_connector.items():
            if kind in FETCHED_KINDS:
                self._fetch(name, [receipt.inbox_id for receipt, _ in items])
            else:
                self._apply_some(name, kind, items)

    def _fetch(self, name: str, inbox_ids: list[int]) -> None:
        """Pushes that name an order whose state is asked of the platform (WeChat 小店):
        fetched and applied through the inbox, as a retry would; on an error they stay
        pending for the sweep."""
        self.units += 1
        try:
            uc.apply_inbox(
                self.ctx.store,
                self.ctx.settings,
                name,
                ids=inbox_ids,
                loyalty=_loyalty(self.ctx),
                now=self.ctx.clock(),
            )
            self.items += len(inbox_ids)
        except Exception:
            log.exception("webhook deliveries of %s left pending for the sweep", name)

    def _apply_some(
        self, name: str, kind: str, items: Sequence[tuple[uc.Receipt, uc.Delivery]]
    ) -> None:
        """One unit of work; if it fails (not a conflict: those fail their delivery alone,
        inside), it stored nothing, and the halves are tried apart, down to the one
        delivery at fault — left pending for the sweep when the store is at fault, marked
        failed with the error when the delivery is."""
        self.units += 1
        try:
            uc.apply_received(
                self.ctx.store,
                self.ctx.settings,
                name,
                kind,
                items,
                loyalty=_loyalty(self.ctx),
                now=self.ctx.clock(),
            )
            self.items += len(items)
        except HuitoukeError as exc:
            if len(items) > 1:
                mid = len(items) // 2
                self._apply_some(name, kind, items[:mid])
                self._apply_some(name, kind, items[mid:])
                return
            receipt = items[0][0]
            if exc.http_status >= 500:  # the store, not the delivery: the sweep retries it
                log.warning("webhook %s/%s left pending: %s", name, receipt.inbox_id, exc)
                return
            uc.mark_failed(self.ctx.store, receipt.inbox_id, exc.message, self.ctx.clock())
        except Exception:
            log.exception("webhook deliveries of %s left pending for the sweep", name)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block (another thread than the event loop's) until the sweep at start is done
        and everything submitted was applied (or left pending after an error); False on
        timeout."""
        return self._swept.wait(timeout) and self._idle.wait(timeout)

    async def start(self) -> None:
        """At the service's start: apply, in the background, the pending deliveries received
        before it — what a stopped process acknowledged and did not apply."""
        self.started_at = self.ctx.clock()
        before = self.started_at
        self._swept.clear()
        self._sweeper = asyncio.get_running_loop().create_task(
            run_in_threadpool(self._sweep, before)
        )

    def _sweep(self, before: datetime) -> None:
        try:
            done = uc.apply_pending(
                self.ctx.store,
                self.ctx.settings,
                received_before=before + timedelta(microseconds=1),
                loyalty=_loyalty(self.ctx),
                now=self.ctx.clock(),
            )
            if done:
                log.info("webhook deliveries pending at start applied: %s", done)
        except Exception:
            log.exception("the pending webhook deliveries were not applied at start")
        finally:
            self._swept.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the queued deliveries be applied (what is not, stays pending in the inbox)."""
        tasks = [x for x in (self._task, getattr(self, "_sweeper", None)) if x is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


def applier(ctx: ServiceContext) -> InboxApplier:
    """The service context's applier."""
    found = ctx.cache.get("connector.applier")
    if not isinstance(found, InboxApplier):
        found = ctx.cache["connector.applier"] = InboxApplier(ctx)
    return found


# -- the lean door -----------------------------------------------------------------------------
def _webhook_name(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    name = path[len(_PREFIX) : -len(_SUFFIX)]
    return name if _NAME_RE.match(name) else None


class WebhookDoor:
    """Serves ``POST /v1/connectors/{name}/webhook`` ahead of the router (see the module
    docstring); every other request goes on to ``app``."""

    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        name = _webhook_name(scope)
        if name is None:
            await self.app(scope, receive_, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive_()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        extra: list[tuple[bytes, bytes]] = []
        try:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            body = b"".join(chunks)
            out: dict[str, Any] | str = await receive(self.ctx, name, headers, body, query)
            status = 200
        except HuitoukeError as exc:
            lang = negotiate_lang(headers.get("accept-language"), self.ctx.settings.lang)
            status, out = exc.http_status, {"error": exc.to_dict(lang)}
            if status == 503:
                extra.append((b"retry-after", b"1"))
            if status >= 500:
                log.error("POST %s failed: [%s] %s", scope["path"], exc.code, exc)
        except Exception:
            log.exception("POST %s: unhandled error", scope["path"])
            lang = negotiate_lang(headers.get("accept-language"), self.ctx.settings.lang)
            message_ = t("service.internal", lang)
            status = 500
            out = {"error": {"code": "internal", "message": message_, "details": {}}}
        if isinstance(out, str):  # a platform that expects a plain-text acknowledgement
            data, ctype = out.encode("utf-8"), b"text/plain; charset=utf-8"
        else:
            data = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            ctype = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", str(len(data)).encode("ascii")),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
