"""Shop connectors' use cases: every door (CLI, REST, the scheduler) calls these.

- :func:`add_connector`, :func:`list_connectors`, :func:`show_connector`,
  :func:`set_paused`, :func:`remove_connector`: the registry. Credentials are sealed with
  :class:`~huitouke.core.secretbox.SecretBox` (context ``connector:<name>:<field>``) and
  shown only as ``"set"``.
- :func:`sync`: pull the orders updated since the connector's high-water mark (less its
  overlap window), page by page; each page's orders and the mark move in one unit of work
  (:mod:`huitouke.connectors.pull` says why that leaves no gap and no double). It first
  applies the inbox's pending deliveries, so a scheduled sync is also the inbox's
  background applier.
- :func:`receive_webhook`: a delivery verified by its platform signature is stored raw in
  the inbox and committed (what the platform's acknowledgement waits for), then
  :func:`apply_inbox` records it through :func:`~huitouke.app.orders.record_order_events`
  in a second unit of work. Deliveries of ``refunds/create`` name an order whose new state
  must be fetched from the platform; they are applied by the next sync or
  ``connectors retry`` rather than while the platform waits.
- :func:`inbox`, :func:`retry`: see and apply again what failed.

Orders are recorded under ``source = <connector name>``.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
from sqlalchemy import Connection

from huitouke.app.orders import (
    OrderEventIn,
    OrderTable,
    key_writer,
    order_event,
    record_order_events,
    stored_loyalty,
)
from huitouke.connectors import (
    douyin,
    jd,
    pinduoduo,
    repo,
    shopify,
    shopify_bulk,
    taobao,
    wechat_shop,
    woocommerce,
    youzan,
)
from huitouke.connectors.douyin_pull import DouyinPuller, DouyinToken
from huitouke.connectors.http import JsonClient
from huitouke.connectors.jd_pull import JdPuller
from huitouke.connectors.model import (
    KINDS,
    MappedOrder,
    PlatformError,
    Skip,
    Unmappable,
    bad_signature,
    not_found,
)
from huitouke.connectors.pinduoduo_pull import PinduoduoPuller
from huitouke.connectors.pull import (
    Page,
    ShopifyPuller,
    WooPuller,
    basic_auth,
    bulk_line_pages,
    bulk_node,
)
from huitouke.connectors.signatures import verify
from huitouke.connectors.taobao_pull import TaobaoPuller
from huitouke.connectors.values import instant
from huitouke.connectors.wechat_shop_pull import WeChatShopPuller
from huitouke.connectors.youzan_pull import YouzanPuller
from huitouke.core.orders import ORDERS_SCHEMA, is_source_name
from huitouke.core.secretbox import SecretBox
from huitouke.errors import ConflictError, HuitoukeError, InputError
from huitouke.i18n import t
from huitouke.identity.service import Contacts, KeyWriter, write_keys
from huitouke.loyalty.service import LoyaltyService
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.orders_repo import (
    STORE_LINES_SCHEMA,
    lines_table,
    money_scaled,
    orders_table,
)
from huitouke.store.uow import run_read, run_write

__all__ = [
    "ConnectorIn",
    "Delivery",
    "LoyaltyFactory",
    "Receipt",
    "SyncResult",
    "accept_delivery",
    "add_connector",
    "apply_arrivals",
    "apply_inbox",
    "apply_pending",
    "apply_received",
    "inbox",
    "list_connectors",
    "mark_failed",
    "receive_webhook",
    "remove_connector",
    "retry",
    "set_paused",
    "show_connector",
    "store_deliveries",
    "sync",
    "verify_webhook_url",
    "webhook_key",
]

#: the loyalty program to apply in a unit of work (the doors' choice, as for their orders)
LoyaltyFactory = Callable[[Connection], LoyaltyService | None]
#: credentials each kind needs, besides the webhook secret every kind has
_NEEDS = {"shopify": ("access_token",), "woocommerce": ("consumer_key", "consumer_secret")}
#: Youzan: the access token, and the app's client_id as ``consumer_key`` (its client_secret,
#: which signs the pushes, is the webhook secret)
_NEEDS["youzan"] = ("access_token", "consumer_key")
#: Taobao TOP: the session key as ``access_token``, the app_key as ``consumer_key``, and the
#: app secret (which signs the requests) as the webhook secret
_NEEDS["taobao"] = ("access_token", "consumer_key")
#: Douyin: the shop's access token, the app_key as ``consumer_key``, the app_secret (it signs
#: the requests and the pushes) as the webhook secret; Pinduoduo: the same with client_id
#: and client_secret
_NEEDS["douyin"] = _NEEDS["pinduoduo"] = ("access_token", "consumer_key")
#: WeChat 小店: the AppID as ``consumer_key`` and the AppSecret as ``consumer_secret`` (they
#: ask for the access token); the push token and EncodingAESKey, ``TOKEN:KEY``, as the
#: webhook secret
_NEEDS["wechat_shop"] = ("consumer_key", "consumer_secret")
#: Douyin may also keep the shop's ``refresh_token``: the puller renews the access token
#: with it and stores the new pair (and its expiry, ``access_token_expires_at``) sealed
#: JD JOS: the shop's access token, the app_key as ``consumer_key``, and the app_secret
#: (which signs the requests) as the webhook secret
_NEEDS["jd"] = ("access_token", "consumer_key")
_SECRET_FIELDS: tuple[str, ...] = ("access_token", "consumer_key", "consumer_secret")
_SECRET_FIELDS += ("webhook_secret", "refresh_token")
#: a refreshed token's expiry, sealed beside it (not a credential a door takes)
_EXPIRES = "access_token_expires_at"
#: pages fetched ahead of the one being recorded
_AHEAD = 16
_DONE = object()
#: a bulk operation's file is read, mapped and recorded in blocks of about this many bytes
#: (some 15,000 orders of one line item), one unit of work each
_BULK_BLOCK_BYTES = 8 << 20
#: blocks read and mapped ahead of the one being recorded (a few suffice: reading is
#: faster than recording; each holds its bytes and tables)
_BULK_AHEAD = 3
_TS = pa.timestamp("us", tz="UTC")
#: pulled pages from this many orders are recorded through the bulk (table) path
_BULK_FROM = 50
#: an unparsable delivery's update time: repeats of the same bytes are one inbox row
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _stored_loyalty(settings: Settings) -> LoyaltyFactory:
    return lambda conn: stored_loyalty(conn, settings.timezone)


def _box(settings: Settings) -> SecretBox:
    return SecretBox.from_text(settings.encryption_keys.get_secret_value())


def _context(name: str, field_: str) -> str:
    return f"connector:{name}:{field_}"


def _input(key: str, field_: str, **params: Any) -> InputError:
    return InputError(
        t(key, "en", **params),
        code="connector.invalid",
        message_zh=t(key, "zh", **params),
        details={"field": field_, **{k: str(v) for k, v in params.items()}},
    )


# -- the registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectorIn:
    kind: str
    name: str
    api_base_url: str
    webhook_secret: str
    shop: str | None = None
    access_token: str | None = None
    consumer_key: str | None = None
    consumer_secret: str | None = None
    overlap_seconds: int = 300
    page_size: int = 100
    #: Douyin: the shop's refresh token (renews the access token when it expires)
    refresh_token: str | None = None
    #: Douyin without a token: the authorisation code the merchant's authorisation of the
    #: app returned (used once, never stored), or ``authorise_self`` — the merchant's own
    #: self-use app, for the shop id in ``shop``; the first token pair is asked with
    #: ``token.create`` when the connector is added
    auth_code: str | None = None
    authorise_self: bool = False


def _check(spec: ConnectorIn) -> None:
    if spec.kind not in KINDS:
        raise _input("connectors.bad_kind", "kind", kind=spec.kind, kinds=", ".join(KINDS))
    if not is_source_name(spec.name):
        raise _input("connectors.bad_name", "name", name=spec.name)
    url = urlparse(spec.api_base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise _input("connectors.bad_url", "api_base_url", url=spec.api_base_url)
    creates = spec.kind == "douyin" and not spec.access_token
    if creates and spec.authorise_self and not spec.shop:
        raise _input("connectors.missing_credential", "shop", kind=spec.kind, field="shop")
    if spec.kind != "douyin" and (spec.auth_code or spec.authorise_self):
        raise _input("connectors.douyin_only", "auth_code", kind=spec.kind)
    for f in ("webhook_secret", *_NEEDS[spec.kind]):
        if f == "access_token" and creates and (spec.auth_code or spec.authorise_self):
            continue  # asked of the platform (token.create) when added
        if not getattr(spec, f):
            raise _input("connectors.missing_credential", f, kind=spec.kind, field=f)
    if spec.kind == "wechat_shop" and not wechat_shop.valid_webhook_secret(spec.webhook_secret):
        raise _input("connectors.bad_wechat_secret", "webhook_secret")
    if not 0 <= spec.overlap_seconds <= 86_400:
        raise InputError(
            "overlap_seconds: between 0 and 86400",
            code="connector.invalid",
            message_zh="overlap_seconds:须在 0 到 86400 之间",
            details={"field": "overlap_seconds"},
        )
    if not 1 <= spec.page_size <= 250:
        raise InputError(
            "page_size: between 1 and 250",
            code="connector.invalid",
            message_zh="page_size:须在 1 到 250 之间",
            details={"field": "page_size"},
        )


def present(row: Mapping[str, Any]) -> dict[str, Any]:
    """A connector as the doors show it: credentials only as ``"set"``."""

    def iso(v: Any) -> str | None:
        return v.isoformat() if isinstance(v, datetime) else None

    return {
        "name": row["name"],
        "kind": row["kind"],
        "api_base_url": row["api_base_url"],
        "shop": row.get("shop"),
        "status": row["status"],
        "credentials": {k: "set" for k in sorted(row.get("credentials") or {}) if k != _EXPIRES},
        "overlap_seconds": row["overlap_seconds"],
        "page_size": row["page_size"],
        "webhook_path": f"/v1/connectors/{row['name']}/webhook",
        "watermark": iso(row.get("watermark")),
        "pulled": row.get("pulled") or 0,
        "sync_started_at": iso(row.get("sync_started_at")),
        "sync_finished_at": iso(row.get("sync_finished_at")),
        "last_error": row.get("last_error"),
        "created_at": iso(row.get("created_at")),
    }


def add_connector(
    store: Store, settings: Settings, spec: ConnectorIn, *, now: datetime | None = None
) -> dict[str, Any]:
    """Register a connector; its credentials sealed. ``connector.exists`` (409) when the
    name is taken."""
    _check(spec)
    at = now or _now()
    expires: datetime | None = None
    if spec.kind == "douyin" and not spec.access_token:
        if run_read(store, lambda conn: repo.get_connector(conn, spec.name)) is not None:
            raise _exists(spec.name)  # before a one-use code is spent
        token = _douyin_first_token(spec, at)
        spec = replace(spec, access_token=token.access_token, refresh_token=token.refresh_token)
        expires = token.expires_at
    box = _box(settings)
    sealed = {
        f: box.seal(str(getattr(spec, f)), context=_context(spec.name, f))
        for f in _SECRET_FIELDS
        if getattr(spec, f)
    }
    if expires is not None:
        sealed[_EXPIRES] = box.seal(expires.isoformat(), context=_context(spec.name, _EXPIRES))
    row = {
        "name": spec.name,
        "kind": spec.kind,
        "api_base_url": spec.api_base_url.rstrip("/"),
        "shop": spec.shop,
        "credentials": sealed,
        "status": "active",
        "overlap_seconds": spec.overlap_seconds,
        "page_size": spec.page_size,
        "created_at": at,
        "updated_at": at,
    }
    if not run_write(store, lambda conn: repo.add_connector(conn, row)):
        raise _exists(spec.name)
    return show_connector(store, spec.name)


def _exists(name: str) -> ConflictError:
    return ConflictError(
        t("connectors.exists", "en", name=name),
        code="connector.exists",
        message_zh=t("connectors.exists", "zh", name=name),
        details={"connector": name},
    )


def _douyin_first_token(spec: ConnectorIn, at: datetime) -> DouyinToken:
    """The shop's first token pair from Douyin's ``token.create`` (an authorisation code, or
    the shop id of the merchant's own app), before the connector is stored."""
    client = JsonClient(spec.kind, spec.api_base_url.rstrip("/"), {})
    puller = DouyinPuller(
        client,
        str(spec.consumer_key),
        spec.webhook_secret,
        "",
        page_size=spec.page_size,
        now=lambda: at,
    )
    return puller.create_token(code=spec.auth_code, shop_id=None if spec.auth_code else spec.shop)


def list_connectors(store: Store) -> list[dict[str, Any]]:
    return [present(r) for r in run_read(store, repo.list_connectors)]


def show_connector(store: Store, name: str) -> dict[str, Any]:
    for r in run_read(store, repo.list_connectors):
        if r["name"] == name:
            return present(r)
    raise not_found(name)


def set_paused(
    store: Store, name: str, paused: bool, *, now: datetime | None = None
) -> dict[str, Any]:
    status = "paused" if paused else "active"
    if not run_write(
        store, lambda conn: repo.set_connector_status(conn, name, status, now or _now())
    ):
        raise not_found(name)
    return show_connector(store, name)


def remove_connector(store: Store, name: str) -> None:
    if not run_write(store, lambda conn: repo.delete_connector(conn, name)):
        raise not_found(name)


def _connector(store: Store, name: str) -> dict[str, Any]:
    row = run_read(store, lambda conn: repo.get_connector(conn, name))
    if row is None:
        raise not_found(name)
    return row


def _secret(settings: Settings, row: Mapping[str, Any], field_: str) -> str:
    sealed = (row.get("credentials") or {}).get(field_)
    if not sealed:
        raise _input("connectors.missing_credential", field_, kind=row["kind"], field=field_)
    return _box(settings).open(sealed, context=_context(row["name"], field_))


def _optional_secret(settings: Settings, row: Mapping[str, Any], field_: str) -> str | None:
    if not (row.get("credentials") or {}).get(field_):
        return None
    return _secret(settings, row, field_)


@dataclass
class _SealedTokens:
    """A Douyin connector's token as its credentials keep it: read again before a refresh
    (another process may have refreshed), a new pair sealed and stored at once."""

    store: Store
    settings: Settings
    name: str
    clock: Callable[[], datetime] = _now

    def load(self) -> DouyinToken | None:
        row = run_read(self.store, lambda conn: repo.get_connector(conn, self.name))
        if row is None:
            return None
        return _stored_token(self.settings, row)

    def save(self, token: DouyinToken) -> None:
        box = _box(self.settings)
        values = {"access_token": token.access_token, "refresh_token": token.refresh_token}
        values[_EXPIRES] = token.expires_at.isoformat() if token.expires_at else None

        def write(conn: Connection) -> bool:
            row = repo.get_connector(conn, self.name, lock=True)
            if row is None:
                return False
            sealed = dict(row.get("credentials") or {})
            for f, v in values.items():
                if v:
                    sealed[f] = box.seal(v, context=_context(self.name, f))
                else:
                    sealed.pop(f, None)
            return repo.set_credentials(conn, self.name, sealed, self.clock())

        if not run_write(self.store, write):
            raise not_found(self.name)


def _stored_token(settings: Settings, row: Mapping[str, Any]) -> DouyinToken:
    at = _optional_secret(settings, row, _EXPIRES)
    return DouyinToken(
        _secret(settings, row, "access_token"),
        _optional_secret(settings, row, "refresh_token"),
        datetime.fromisoformat(at) if at else None,
    )


def _client(
    settings: Settings, row: Mapping[str, Any], sleep: Callable[[float], None] | None
) -> JsonClient:
    if row["kind"] == "shopify":
        headers = {"X-Shopify-Access-Token": _secret(settings, row, "access_token")}
    elif row["kind"] in ("youzan", "taobao", "douyin", "pinduoduo", "wechat_shop", "jd"):
        headers = {}  # the token travels in the query string or the signed body
    else:
        headers = {
            "Authorization": basic_auth(
                _secret(settings, row, "consumer_key"), _secret(settings, row, "consumer_secret")
            )
        }
    client = JsonClient(row["kind"], row["api_base_url"], headers)
    if sleep is not None:
        client.sleep = sleep
    return client


#: what a sync pages through
Puller = (
    ShopifyPuller
    | WooPuller
    | YouzanPuller
    | TaobaoPuller
    | DouyinPuller
    | PinduoduoPuller
    | WeChatShopPuller
    | JdPuller
)


def _puller(
    client: JsonClient,
    row: Mapping[str, Any],
    settings: Settings | None = None,
    clock: Callable[[], datetime] = _now,
) -> Puller:
    if row["kind"] == "wechat_shop" and settings is not None:
        return WeChatShopPuller(
            client,
            _secret(settings, row, "consumer_key"),
            _secret(settings, row, "consumer_secret"),
            page_size=row["page_size"],
            now=clock,
        )
    if row["kind"] == "jd" and settings is not None:
        return JdPuller(
            client,
            _secret(settings, row, "consumer_key"),
            _secret(settings, row, "webhook_secret"),
            _secret(settings, row, "access_token"),
            page_size=row["page_size"],
            now=clock,
        )
    if row["kind"] == "shopify":
        return ShopifyPuller(client, page_size=row["page_size"])
    return WooPuller(client, page_size=row["page_size"])


def _market_puller(
    settings: Settings,
    row: Mapping[str, Any],
    client: JsonClient,
    clock: Callable[[], datetime] = _now,
    store: Store | None = None,
) -> DouyinPuller | PinduoduoPuller:
    """A Douyin or Pinduoduo connector's puller: app key, app secret, access token (Douyin:
    with its refresh token and expiry, a refreshed pair stored in ``store``)."""
    if row["kind"] == "douyin":
        token = _stored_token(settings, row)
        return DouyinPuller(
            client,
            _secret(settings, row, "consumer_key"),
            _secret(settings, row, "webhook_secret"),
            token.access_token,
            page_size=row["page_size"],
            now=clock,
            refresh_token=token.refresh_token,
            expires_at=token.expires_at,
            tokens=None if store is None else _SealedTokens(store, settings, row["name"], clock),
        )
    return PinduoduoPuller(
        client,
        _secret(settings, row, "consumer_key"),
        _secret(settings, row, "webhook_secret"),
        _secret(settings, row, "access_token"),
        page_size=row["page_size"],
        now=clock,
    )


def _map(kind: str, raw: Mapping[str, Any], *, pulled: bool) -> MappedOrder:
    if kind == "douyin":  # a shop order (pulled, or fetched for a push message)
        if not isinstance(raw, Mapping) or "order_id" not in raw:
            raise Unmappable("the push message's order has not been fetched")
        return douyin.from_order(raw)
    if kind == "pinduoduo":
        return pinduoduo.from_order(raw)
    if kind == "wechat_shop":  # an order of /channels/ec/order/get (pushes are fetched)
        return wechat_shop.from_order(raw)
    if kind == "jd":
        return jd.from_order(raw)
    if kind == "taobao":
        return taobao.from_trade(raw)
    if kind == "youzan":  # a pulled trade, or a push message carrying one
        trade = raw if "order_info" in raw else youzan.push_trade(raw)
        if trade is None:
            raise Unmappable("the push message carries no trade")
        return youzan.from_trade(trade)
    if kind == "shopify":
        return shopify.from_graphql(raw) if pulled else shopify.from_webhook(raw)
    return woocommerce.from_rest(raw)


# -- recording ---------------------------------------------------------------------------
@dataclass
class _Item:
    """One platform order on its way to the orders: its inbox row (if any), its mapping
    or why it has none."""

    object_id: str
    updated_at: datetime
    inbox_id: int | None = None
    mapped: MappedOrder | None = None
    event: OrderEventIn | None = None
    status: str = "pending"
    reason: str | None = None
    raw: Any = None
    #: an inbox item: the row's status when it was read; a row found in another status in
    #: the unit of work (another applier got there first) is left as it is (``taken``)
    expect: str | None = None


def _prepare(item: _Item, kind: str, name: str, currency: str, *, pulled: bool) -> None:
    try:
        item.mapped = _map(kind, item.raw, pulled=pulled)
        item.event = order_event(item.mapped.event(name), currency=currency)
    except Skip as exc:
        item.status, item.reason = "ignored", exc.reason
    except HuitoukeError as exc:
        item.status, item.reason = "failed", exc.message


def _record(
    store: Store,
    name: str,
    items: list[_Item],
    loyalty: LoyaltyFactory,
    *,
    now: datetime,
    page: Page | None = None,
    keys: KeyWriter | None = None,
) -> None:
    """Record the mapped items in one unit of work, with the page's cursor move when they
    were pulled. An inbox item older than a delivery of the same object already applied
    changes nothing (marked applied, with that reason). An item whose event conflicts with
    the recorded order is marked failed and the rest recorded without it. Pulled items that
    failed go to the inbox as failed, visible and retryable."""
    before = [(i.status, i.reason) for i in items]
    recorded: list[_Item] = []  # what the last attempt handed to record_order_events
    inboxed_any = any(i.inbox_id is not None for i in items)
    bulk = [page is not None and not inboxed_any and len(items) >= _BULK_FROM]
    while True:

        def unit(conn: Connection) -> None:
            # the inbox rows, locked: what another applier (another worker's, the
            # scheduler's sweep, a retry) applied meanwhile is not applied twice
            rows = [i for i in items if i.inbox_id is not None and i.expect is not None]
            if rows:
                current = repo.inbox_lock(conn, [i.inbox_id for i in rows if i.inbox_id])
                for i in rows:
                    if current.get(i.inbox_id or 0) != i.expect:
                        i.status = "taken"
            inboxed = [i for i in items if i.inbox_id is not None and i.status == "pending"]
            newer = repo.latest_applied(conn, name, [i.object_id for i in inboxed])
            for i in inboxed:
                seen = newer.get(i.object_id)
                if seen is not None and seen > i.updated_at:
                    i.status = "applied"
                    i.reason = f"older than the delivery of {seen.isoformat()} already applied"
            live = sorted(
                (i for i in items if i.status == "pending" and i.event is not None),
                key=lambda i: i.updated_at,
            )
            recorded[:] = live
            events = [i.event for i in live if i.event is not None]
            if events and bulk[0]:
                # a pulled page: the bulk path (COPY and one upsert on PostgreSQL); a
                # conflict there names no event, so the page is then recorded event by
                # event, which names it
                record_order_events(conn, _table(events), loyalty=loyalty(conn), keys=keys)
            elif events:
                record_order_events(conn, events, loyalty=loyalty(conn), keys=keys)
            for i in live:
                i.status = "applied"
            marks = [
                (i.inbox_id, i.status, i.reason)
                for i in items
                if i.inbox_id is not None and i.status != "taken"
            ]
            repo.inbox_mark(conn, marks, now)
            failed = [i for i in items if i.inbox_id is None and i.status == "failed"]
            if failed:
                repo.inbox_add(conn, [_inbox_row(name, i, "pull", now) for i in failed])
            if page is not None:
                pulled = sum(1 for i in items if i.inbox_id is None and i.status == "applied")
                repo.move_cursor(conn, name, page.latest, pulled)

        try:
            run_write(store, unit)
            return
        except ConflictError as exc:
            index = exc.details.get("index")
            for i, (status, reason) in zip(items, before, strict=True):
                i.status, i.reason = status, reason
            if bulk[0]:
                bulk[0] = False
                continue
            if not isinstance(index, int) or not 0 <= index < len(recorded):
                raise
            recorded[index].status, recorded[index].reason = "failed", exc.message
            before = [(i.status, i.reason) for i in items]


def _table(events: Sequence[OrderEventIn]) -> OrderTable:
    """Order events as the canonical tables of the bulk path, built column by column (the
    events are validated already; the tables' own checks still run)."""

    def column(rows: Sequence[Mapping[str, Any]], f: pa.Field) -> pa.Array:
        if pa.types.is_decimal(f.type):  # at the column's scale: Arrow's fast path
            return pa.array([money_scaled(r.get(f.name)) for r in rows], type=f.type)
        return pa.array([r.get(f.name) for r in rows], type=f.type)

    def columns(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
        return pa.table({f.name: column(rows, f) for f in schema}, schema=schema)

    orders = orders_table(columns([e.order for e in events], ORDERS_SCHEMA))
    contacts = [e.contacts for e in events if e.contacts is not None]
    if not any(e.lines is not None for e in events):
        return OrderTable(orders=orders, contacts=contacts)
    lines = [ln for e in events for ln in e.lines or ()]
    return OrderTable(
        orders=orders, lines=lines_table(columns(lines, STORE_LINES_SCHEMA)), contacts=contacts
    )


def _inbox_row(
    name: str, item: _Item, topic: str, now: datetime, body: str | None = None
) -> dict[str, Any]:
    """The inbox row of ``item``; ``body``: the text as received (a webhook's body), else
    the item's parsed body written as JSON (a pulled order)."""
    return {
        "connector": name,
        "object_id": item.object_id,
        "updated_at": item.updated_at,
        "topic": topic,
        "body": json.dumps(item.raw, default=str, ensure_ascii=False) if body is None else body,
        "received_at": now,
        "status": item.status,
        "reason": item.reason,
    }


# -- pull --------------------------------------------------------------------------------
@dataclass
class SyncResult:
    connector: str
    pages: int = 0
    pulled: int = 0
    ignored: int = 0
    failed: int = 0
    inbox_applied: int = 0
    since: datetime | None = None
    watermark: datetime | None = None
    waits: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "pages": self.pages,
            "pulled": self.pulled,
            "ignored": self.ignored,
            "failed": self.failed,
            "inbox_applied": self.inbox_applied,
            "since": None if self.since is None else self.since.isoformat(),
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "waited_seconds": round(sum(self.waits), 3),
        }


def _paused(name: str) -> ConflictError:
    return ConflictError(
        t("connectors.paused", "en", name=name),
        code="connector.paused",
        message_zh=t("connectors.paused", "zh", name=name),
        details={"connector": name},
    )


def sync(
    store: Store,
    settings: Settings,
    name: str,
    *,
    loyalty: LoyaltyFactory | None = None,
    clock: Callable[[], datetime] = _now,
    sleep: Callable[[float], None] | None = None,
    progress: Callable[[SyncResult], None] | None = None,
    pages_per_unit: int = 8,
    bulk: bool = False,
) -> SyncResult:
    """Pull the connector's orders updated since its mark less its overlap window, page by
    page; the inbox's pending deliveries are applied first. A unit of work records up to
    ``pages_per_unit`` pages with the mark, while a thread fetches and maps the next pages.
    ``bulk`` (Shopify): through a bulk operation (backfill), the mark moved once the whole
    file is recorded. ``progress`` is called after each committed unit (the scheduler's and the CLI's
    progress; an exception there stops the sync after that unit, as a crash would)."""
    row = _connector(store, name)
    if row["status"] != "active":
        raise _paused(name)
    loyalty = loyalty or _stored_loyalty(settings)
    client = _client(settings, row, sleep)
    result = SyncResult(name, waits=client.waits)
    result.inbox_applied = apply_inbox(
        store, settings, name, loyalty=loyalty, now=clock(), client=client
    )["applied"]
    if row["kind"] == "douyin":  # the inbox's fetches may have refreshed the token
        row = _connector(store, name)
    puller: Puller = (
        YouzanPuller(
            client,
            _secret(settings, row, "access_token"),
            page_size=row["page_size"],
            now=clock,
        )
        if row["kind"] == "youzan"
        else TaobaoPuller(
            client,
            _secret(settings, row, "consumer_key"),
            _secret(settings, row, "webhook_secret"),
            _secret(settings, row, "access_token"),
            page_size=row["page_size"],
            now=clock,
        )
        if row["kind"] == "taobao"
        else _market_puller(settings, row, client, clock, store)
        if row["kind"] in ("douyin", "pinduoduo")
        else _puller(client, row, settings, clock)
    )
    mark = run_read(store, lambda conn: repo.cursor(conn, name))["watermark"]
    result.since = None if mark is None else mark - timedelta(seconds=row["overlap_seconds"])
    run_write(store, lambda conn: repo.sync_started(conn, name, clock()))
    error: str | None = None
    if bulk and not isinstance(puller, ShopifyPuller):
        raise InputError(
            "--bulk: only Shopify connectors have bulk operations",
            code="connector.invalid",
            message_zh="--bulk:只有 Shopify 连接器支持批量操作",
            details={"field": "bulk"},
        )
    try:
        if bulk and isinstance(puller, ShopifyPuller):
            _pull_bulk(store, settings, name, puller, result, loyalty, clock, progress)
        else:
            _pull_pages(
                store, settings, name, row["kind"], puller.pages(result.since), result,
                loyalty, clock, progress, pages_per_unit,
            )  # fmt: skip
    except HuitoukeError as exc:
        error = f"{exc.code}: {exc.message}"
        raise
    finally:
        run_write(store, lambda conn: repo.sync_ended(conn, name, clock(), error))
    return result


def _pull_pages(
    store: Store,
    settings: Settings,
    name: str,
    kind: str,
    pages: Iterator[Page],
    result: SyncResult,
    loyalty: LoyaltyFactory,
    clock: Callable[[], datetime],
    progress: Callable[[SyncResult], None] | None,
    pages_per_unit: int,
) -> None:
    fetched = _prefetch(pages, kind, name, settings.currency)
    try:
        while True:
            # a unit of work records up to ``pages_per_unit`` pages (fetched and mapped
            # meanwhile by the prefetch thread) and moves the mark to their latest time
            chunk: list[tuple[Page, list[_Item]]] = []
            for got in fetched:
                chunk.append(got)
                if len(chunk) >= pages_per_unit:
                    break
            if not chunk:
                break
            items = [i for _, page_items in chunk for i in page_items]
            times = [p.latest for p, _ in chunk if p.latest is not None]
            unit_page = Page([], max(times) if times else None)
            _record(
                store, name, items, loyalty, now=clock(), page=unit_page,
                keys=key_writer(settings),
            )  # fmt: skip
            result.pages += len(chunk)
            _count(result, items)
            _moved(result, unit_page.latest)
            if progress is not None:
                progress(result)
    finally:
        fetched.close()


def _count(result: SyncResult, items: Sequence[_Item]) -> None:
    result.pulled += sum(1 for i in items if i.status == "applied")
    result.ignored += sum(1 for i in items if i.status == "ignored")
    result.failed += sum(1 for i in items if i.status == "failed")


def _moved(result: SyncResult, latest: datetime | None) -> None:
    if latest is not None and (result.watermark is None or latest > result.watermark):
        result.watermark = latest


def _prefetch(
    source: Iterator[Page], kind: str, name: str, currency: str
) -> Generator[tuple[Page, list[_Item]], None, None]:
    """The pages of ``source``, each with its orders mapped, fetched by a thread while the
    caller records the ones before (at most a few pages ahead); an error of the platform
    comes out where its page would have."""

    def mapped() -> Iterator[tuple[Page, list[_Item]]]:
        for page in source:
            items = []
            for raw in page.orders:
                item = _pulled_item(raw, kind)
                if item.status == "pending":
                    _prepare(item, kind, name, currency, pulled=True)
                items.append(item)
            yield page, items

    return _ahead(mapped(), f"connector-{name}-pull")


def _ahead(
    source: Iterator[Any], thread_name: str, ahead: int = _AHEAD
) -> Generator[Any, None, None]:
    """What ``source`` yields, produced by a thread at most ``ahead`` items ahead of the
    caller; an exception in ``source`` comes out where its item would have."""
    q: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for got in source:
                while not stop.is_set():
                    try:
                        q.put(got, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the caller, raised there
            q.put(exc)

    thread = threading.Thread(target=produce, name=thread_name, daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join(timeout=5)


# -- bulk operation: the file read by columns ------------------------------------------------
@dataclass
class _BulkBlock:
    """A block of a bulk operation's file, mapped: by columns (``block``) with the orders
    left to the per-order mapping in ``items`` (their lines in the block: ``rows``), or —
    ``block`` ``None`` — every order of it in ``items``."""

    data: bytes
    block: shopify_bulk.Block | None
    items: list[_Item]
    rows: list[int]
    latest: datetime | None
    #: (by columns) the block's orders as one table (:func:`_bulk_table`), and per buyer
    #: the latest contact of each kind they give (what ``write_keys`` would write)
    table: OrderTable | None = None
    buyers: dict[str, dict[str, str]] = field(default_factory=dict)


def _bulk_blocks(
    puller: ShopifyPuller, since: datetime | None, name: str, currency: str, size: int
) -> Iterator[_BulkBlock]:
    url = puller.bulk_url(since)
    if url is None:
        return
    for data in shopify_bulk.blocks(puller.client.get_chunks(url, min(size, 1 << 20)), size):
        yield _bulk_block(data, name, currency)


def _mapped_item(raw: Any, name: str, currency: str) -> _Item:
    item = _pulled_item(raw, "shopify")
    if item.status == "pending":
        _prepare(item, "shopify", name, currency, pulled=True)
    return item


def _bulk_reference(data: bytes, name: str, currency: str) -> _BulkBlock:
    """A block mapped order by order (what the columns leave whole)."""
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    items: list[_Item] = []
    latest: datetime | None = None
    for page in bulk_line_pages(lines, len(lines) + 1):
        items += [_mapped_item(raw, name, currency) for raw in page.orders]
        latest = page.latest if page.latest is not None else latest
    return _BulkBlock(data, None, items, [], latest)


def _bulk_block(data: bytes, name: str, currency: str) -> _BulkBlock:
    block = shopify_bulk.read_block(data, name)
    if block is None:
        return _bulk_reference(data, name, currency)
    items, rows, latest = [], [], block.latest
    for row, item_rows in block.slow:
        raw = bulk_node(block.lines_raw[row], [block.lines_raw[k] for k in item_rows])
        # as the per-order reading of the file: an order without its update time stops it
        at = instant(raw.get("updatedAt"), "updatedAt")
        latest = at if latest is None or at > latest else latest
        items.append(_mapped_item(raw, name, currency))
        rows.append(row)
    bb = _BulkBlock(data, block, items, rows, latest)
    bb.table, bb.buyers = _bulk_table(bb)
    return bb


def _bulk_table(bb: _BulkBlock) -> tuple[OrderTable, dict[str, dict[str, str]]]:
    """The block's orders as one table, the columns' and the per-order mapping's together,
    in the order the per-order path records them (by update time, then file order), with
    the buyers' phones, e-mails and names as its ``customers`` (what the per-order path's
    contacts give); and per buyer the latest contact of each kind."""
    assert bb.block is not None
    orders, lines = [bb.block.orders], [bb.block.lines]
    contacts = list(bb.block.contacts)
    live = [(i, r) for i, r in zip(bb.items, bb.rows, strict=True) if i.status == "pending"]
    live = [(i, r) for i, r in live if i.event is not None]
    if live:
        tb = _table([i.event for i, _ in live if i.event is not None])
        at = pa.array([i.updated_at for i, _ in live], _TS)
        rows = pa.array([r for _, r in live], pa.int64())
        orders.append(tb.orders.append_column("_at", at).append_column("_row", rows))
        if tb.lines is not None:
            per = [len((i.event.lines if i.event else None) or ()) for i, _ in live]
            idx = pa.array([k for k, n in enumerate(per) for _ in range(n)], pa.int64())
            lines.append(
                tb.lines.append_column("_at", at.take(idx)).append_column("_row", rows.take(idx))
            )
        contacts += [
            (i.updated_at, r, i.event.contacts)
            for i, r in live
            if i.event is not None and i.event.contacts is not None
        ]
    by = [("_at", "ascending"), ("_row", "ascending")]
    o = pa.concat_tables(orders).sort_by(by)
    ln = pa.concat_tables(lines).sort_by([*by, ("line_no", "ascending")])
    contacts.sort(key=lambda c: (c[0], c[1]))
    given = [c for _, _, c in contacts if c.phone or c.email or c.name]
    customers = pa.table(
        {
            "customer_id": pa.array([c.customer_id for c in given], pa.string()),
            "phone": pa.array([c.phone for c in given], pa.string()),
            "email": pa.array([c.email for c in given], pa.string()),
            "name": pa.array([c.name for c in given], pa.string()),
        }
    )
    buyers: dict[str, dict[str, str]] = {}
    for _, _, c in contacts:
        kinds = {str(k): v for k, v in c.given().items()}
        if kinds:
            buyers.setdefault(c.customer_id, {}).update(kinds)
    table = OrderTable(
        orders=o.drop_columns(["_at", "_row"]),
        lines=ln.drop_columns(["_at", "_row"]),
        customers=customers if customers.num_rows else None,
    )
    return table, buyers


def _record_bulk(
    store: Store,
    name: str,
    bb: _BulkBlock,
    loyalty: LoyaltyFactory,
    *,
    now: datetime,
    currency: str,
    keys: KeyWriter,
    written: dict[str, dict[str, str]],
) -> tuple[int, list[_Item]]:
    """Record a block in one unit of work (the mark stays: it moves once the whole file is
    recorded); answers the orders recorded and the items of the per-order mapping. A
    conflict with a recorded order: the block is recorded order by order instead, which
    keeps that order in the inbox as failed and records the rest."""
    if bb.block is None:
        _record(store, name, bb.items, loyalty, now=now, page=Page([], None), keys=keys)
        return sum(1 for i in bb.items if i.status == "applied"), bb.items
    if bb.table is None:
        bb.table, bb.buyers = _bulk_table(bb)
    table = bb.table
    failed = [i for i in bb.items if i.status == "failed"]
    pulled = table.orders.num_rows
    contacts = _new_contacts(bb.buyers, written)

    def unit(conn: Connection) -> None:
        record_order_events(conn, table, loyalty=loyalty(conn), keys=None)
        if contacts:
            write_keys(conn, contacts, keys, now=datetime.now(UTC))
        if failed:
            repo.inbox_add(conn, [_inbox_row(name, i, "pull", now) for i in failed])
        repo.move_cursor(conn, name, None, pulled)

    try:
        run_write(store, unit)
        for c in contacts:
            written.setdefault(c.customer_id, {}).update({str(k): v for k, v in c.given().items()})
    except ConflictError:
        ref = _bulk_reference(bb.data, name, currency)
        _record(store, name, ref.items, loyalty, now=now, page=Page([], None), keys=keys)
        return sum(1 for i in ref.items if i.status == "applied"), ref.items
    for i in bb.items:
        if i.status == "pending" and i.event is not None:
            i.status = "applied"
    return pulled, bb.items


def _new_contacts(
    buyers: Mapping[str, Mapping[str, str]], written: Mapping[str, Mapping[str, str]]
) -> list[Contacts]:
    """Per buyer, the contacts of ``buyers`` (the latest of each kind, as
    :func:`~huitouke.identity.service.write_keys` reads them) that differ from the ones
    ``written`` already: writing those again would change nothing."""
    out = []
    for cid, given in buyers.items():
        before = written.get(cid) or {}
        changed = {k: v for k, v in given.items() if before.get(k) != v}
        if changed:
            out.append(Contacts(cid, **changed))
    return out


def _pull_bulk(
    store: Store,
    settings: Settings,
    name: str,
    puller: ShopifyPuller,
    result: SyncResult,
    loyalty: LoyaltyFactory,
    clock: Callable[[], datetime],
    progress: Callable[[SyncResult], None] | None,
) -> None:
    """A bulk operation's file, read and mapped in blocks by a thread (Arrow's reader and
    compute kernels leave the interpreter to the recording meanwhile), each block recorded
    in one unit of work; the mark moves to the latest update time once all are."""
    keys = key_writer(settings)
    written: dict[str, dict[str, str]] = {}  # matching keys written by this sync, per buyer
    fetched = _ahead(
        _bulk_blocks(puller, result.since, name, settings.currency, _BULK_BLOCK_BYTES),
        f"connector-{name}-bulk",
        _BULK_AHEAD,
    )
    latest: datetime | None = None
    try:
        for bb in fetched:
            pulled, items = _record_bulk(
                store, name, bb, loyalty, now=clock(), currency=settings.currency, keys=keys,
                written=written,
            )  # fmt: skip
            result.pages += 1
            result.pulled += pulled
            result.ignored += sum(1 for i in items if i.status == "ignored")
            result.failed += sum(1 for i in items if i.status == "failed")
            if bb.block is not None:
                result.ignored += len(bb.block.ignored)
            if bb.latest is not None and (latest is None or bb.latest > latest):
                latest = bb.latest
            if progress is not None:
                progress(result)
    finally:
        fetched.close()
    run_write(store, lambda conn: repo.move_cursor(conn, name, latest, 0))
    _moved(result, latest)
    if progress is not None:
        progress(result)


def _pulled_item(raw: Any, kind: str) -> _Item:
    """A pulled order before mapping: its object id and update time (or why it has none)."""
    try:
        if not isinstance(raw, Mapping):
            raise Unmappable("not a JSON object")
        if kind == "shopify":
            from huitouke.connectors.values import gid_number, instant

            oid, at = gid_number(raw.get("id")), instant(raw.get("updatedAt"), "updatedAt")
        elif kind in ("youzan", "taobao", "wechat_shop", "jd"):
            platform = {"youzan": youzan, "taobao": taobao, "wechat_shop": wechat_shop, "jd": jd}
            object_id, at = platform[kind].identity(raw)
            return _Item(object_id, at, raw=raw)
        elif kind in ("douyin", "pinduoduo"):
            object_id, at = (douyin if kind == "douyin" else pinduoduo).identity(raw)
            return _Item(object_id, at, raw=raw)
        else:
            oid = str(raw.get("id"))
            at = woocommerce.gmt(raw.get("date_modified_gmt"), "date_modified_gmt")
        return _Item(f"order:{oid}", at, raw=raw)
    except Unmappable as exc:
        digest = hashlib.sha256(json.dumps(raw, default=str).encode()).hexdigest()[:32]
        return _Item(f"unparsed:{digest}", _EPOCH, raw=raw, status="failed", reason=exc.message)


# -- webhooks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Receipt:
    """A delivery in the inbox: its row, whether this request stored it (False: a repeat),
    and its status after the request's apply."""

    inbox_id: int
    stored: bool
    status: str
    reason: str | None


def webhook_key(store: Store, settings: Settings, name: str) -> tuple[str, str, str]:
    """``(kind, status, webhook secret)`` of a connector (the webhook door caches it)."""
    row = _connector(store, name)
    secret = _secret(settings, row, "webhook_secret")
    if row["kind"] == "youzan":  # Event-Sign covers client_id + body + client_secret
        secret = youzan.push_secret(_secret(settings, row, "consumer_key"), secret)
    if row["kind"] == "douyin":  # event-sign covers app_key + body + app_secret
        secret = douyin.push_secret(_secret(settings, row, "consumer_key"), secret)
    if row["kind"] == "wechat_shop":  # the AppID is the receive id of the encrypted pushes
        secret = wechat_shop.push_secret(_secret(settings, row, "consumer_key"), secret)
    return row["kind"], row["status"], secret


def verify_webhook_url(
    store: Store, settings: Settings, name: str, query: Mapping[str, str]
) -> str:
    """WeChat's URL check of a push URL (a GET with ``signature``, ``timestamp``, ``nonce``,
    ``echostr``): the ``echostr`` to answer; ``connector.bad_signature`` (401) for a bad
    signature or a kind without such a check."""
    kind, _status, secret = webhook_key(store, settings, name)
    echo = wechat_shop.verify_url(secret, query) if kind == "wechat_shop" else None
    if echo is None:
        raise bad_signature(name)
    return echo


def _delivery_item(kind: str, topic: str, body: bytes) -> _Item:
    """A verified delivery's inbox identity: object, update time, parsed body."""
    try:
        raw = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        digest = hashlib.sha256(body).hexdigest()[:32]
        item = _Item(f"unparsed:{digest}", _EPOCH, status="failed")
        item.reason = t("connectors.bad_body", "en", detail=str(exc)[:200])
        item.raw = body.decode("utf-8", "replace")
        return item
    return _identify(kind, topic, raw)


def _identify(kind: str, topic: str, raw: Any) -> _Item:
    from huitouke.connectors.values import gid_number, instant

    try:
        if kind == "douyin":  # an array of messages
            return _douyin_identify(raw)
        if not isinstance(raw, Mapping):
            raise Unmappable("the body is not a JSON object")
        if kind == "youzan":
            return _youzan_identify(topic, raw)
        if kind in ("taobao", "pinduoduo"):  # pulled only (no signed HTTP push)
            object_id, at = (taobao if kind == "taobao" else pinduoduo).identity(raw)
            return _Item(object_id, at, raw=raw)
        if kind == "jd":  # pulled only (JD pushes over its own message service)
            object_id, at = jd.identity(raw)
            return _Item(object_id, at, raw=raw)
        if kind == "wechat_shop":
            return _wechat_identify(topic, raw)
        if kind == "shopify" and topic == "refunds/create":
            at = instant(raw.get("created_at") or raw.get("processed_at"), "created_at")
            return _Item(f"refund:{gid_number(raw.get('id'))}", at, raw=raw)
        if kind == "shopify":
            at = instant(raw.get("updated_at"), "updated_at")
        else:
            at = woocommerce.gmt(raw.get("date_modified_gmt"), "date_modified_gmt")
        if raw.get("id") in (None, ""):
            raise Unmappable("no id")
        item = _Item(f"order:{gid_number(raw['id'])}", at, raw=raw)
        topics = shopify.WEBHOOK_TOPICS if kind == "shopify" else woocommerce.WEBHOOK_TOPICS
        if topic not in topics:
            item.status, item.reason = "ignored", f"topic {topic or '(none)'} is not handled"
        return item
    except Unmappable as exc:
        digest = hashlib.sha256(json.dumps(raw, default=str).encode()).hexdigest()[:32]
        return _Item(f"unparsed:{digest}", _EPOCH, raw=raw, status="failed", reason=exc.message)


def _youzan_identify(topic: str, raw: Mapping[str, Any]) -> _Item:
    """A Youzan push's inbox identity: its trade's, or — a message without a trade (the
    test push Youzan sends when the URL is set, a type we take no state from) — the
    message's own, ignored: the next pull brings the trade's state."""
    trade = youzan.push_trade(raw)
    if trade is None:
        version = raw.get("version")
        at = (
            datetime.fromtimestamp(version / 1000, UTC)
            if isinstance(version, int) and not isinstance(version, bool)
            else _EPOCH
        )
        item = _Item(f"message:{raw.get('id')}:{raw.get('type') or topic}", at, raw=raw)
        item.status = "ignored"
        item.reason = f"message {raw.get('type') or topic or '(none)'} carries no trade"
        return item
    object_id, at = youzan.identity(trade)
    item = _Item(object_id, at, raw=raw)
    if (raw.get("type") or topic) not in youzan.TRADE_TYPES:
        item.status, item.reason = "ignored", f"type {raw.get('type') or topic} is not handled"
    return item


def _douyin_identify(raw: Any) -> _Item:
    """A Douyin push's inbox identity: the order its latest order message names (``p_id``)
    at that message's time — pending, for the order's state must be fetched; a push naming
    no order (a test message, other tags): ignored."""
    msgs = douyin.push_messages(raw)
    named = [
        (at, pid, tag)
        for tag, _, data in msgs
        if tag in douyin.ORDER_TAGS and (got := douyin.message_order(data)) is not None
        for pid, at in [got]
    ]
    if not named:
        tags = ",".join(t for t, _, _ in msgs) or "(none)"
        ids = ",".join(m for _, m, _ in msgs)
        object_id = f"message:{ids}:{tags}"
        if len(object_id) > 160:  # a long batch: the inbox keeps a digest of its ids
            object_id = "message:" + hashlib.sha256(object_id.encode()).hexdigest()[:32]
        item = _Item(object_id, _EPOCH, raw=raw, status="ignored")
        item.reason = f"message {tags} names no order"
        return item
    at, pid, _ = max(named)
    return _Item(f"order:{pid}", at, raw=raw)


def _douyin_orders(raw: Any) -> list[str]:
    """The orders a Douyin push names, latest message first, each once."""
    named = sorted(
        (
            (got[1], got[0])
            for tag, _, data in douyin.push_messages(raw)
            if tag in douyin.ORDER_TAGS and (got := douyin.message_order(data)) is not None
        ),
        reverse=True,
    )
    return list(dict.fromkeys(pid for _, pid in named))


def _wechat_identify(topic: str, raw: Mapping[str, Any]) -> _Item:
    """A WeChat 小店 push's inbox identity: the order it names at the message's time (its
    state is fetched when applied); an event about no order, or one we take no state from,
    is stored as ignored."""
    event = str(raw.get("Event") or topic or "")
    if wechat_shop.push_order_id(raw) is None:
        at = raw.get("CreateTime")
        when = (
            datetime.fromtimestamp(at, UTC)
            if isinstance(at, int) and not isinstance(at, bool)
            else _EPOCH
        )
        item = _Item(f"message:{event or '(none)'}:{raw.get('FromUserName') or ''}", when, raw=raw)
        item.status, item.reason = "ignored", f"event {event or '(none)'} names no order"
        return item
    object_id, at = wechat_shop.push_identity(raw)
    item = _Item(object_id, at, raw=raw)
    if event not in wechat_shop.ORDER_EVENTS:
        item.status, item.reason = "ignored", f"event {event or '(none)'} is not handled"
    return item


def _topics(kind: str) -> frozenset[str] | tuple[str, ...]:
    if kind == "youzan":
        return youzan.TRADE_TYPES
    if kind == "douyin":
        return douyin.ORDER_TAGS
    if kind == "wechat_shop":
        return wechat_shop.ORDER_EVENTS
    if kind in ("taobao", "pinduoduo", "jd"):
        return ()
    return shopify.WEBHOOK_TOPICS if kind == "shopify" else woocommerce.WEBHOOK_TOPICS


def _topic(kind: str, headers: Mapping[str, str]) -> str:
    if kind == "youzan":
        return headers.get("event-type", "")
    return headers.get("x-shopify-topic" if kind == "shopify" else "x-wc-webhook-topic", "")


@dataclass(frozen=True)
class Delivery:
    """A verified delivery on its way to the inbox: the inbox row and the parsed body."""

    row: dict[str, Any]
    raw: Any
    status: str
    reason: str | None


def accept_delivery(
    name: str,
    key: tuple[str, str, str],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    query: Mapping[str, str] | None = None,
) -> Delivery:
    """Verify a delivery's signature over its raw ``body`` (``headers`` with lower-case
    names; ``query``: the URL's parameters, which carry WeChat's signature) under the
    connector's :func:`webhook_key`; a bad or missing signature: ``connector.bad_signature``
    (401), before anything is stored. A WeChat 小店 push is decrypted here: the inbox keeps
    the message. No I/O."""
    kind, _status, secret = key
    if kind == "wechat_shop":
        opened = wechat_shop.open_push(secret, body, query or {})
        if opened is None:
            raise bad_signature(name)
        body = opened
    elif not verify(kind, secret, body, headers):
        raise bad_signature(name)
    topic = _topic(kind, headers)
    item = _delivery_item(kind, topic, body)
    if kind == "youzan" and not topic and isinstance(item.raw, Mapping):
        topic = str(item.raw.get("type") or "")  # Event-Type missing: the body's type
    if kind == "douyin" and isinstance(item.raw, list) and item.raw:
        first = item.raw[0]
        topic = str(first.get("tag") or "") if isinstance(first, Mapping) else ""
    if kind == "wechat_shop" and isinstance(item.raw, Mapping):
        topic = str(item.raw.get("Event") or "")
    # the body as received, not the parsed one written again (the hot path of the door)
    text_ = item.raw if isinstance(item.raw, str) else body.decode("utf-8", "replace")
    row = _inbox_row(name, item, topic or "(none)", now, body=text_)
    return Delivery(row, item.raw, item.status, item.reason)


def store_deliveries(store: Store, deliveries: Sequence[Delivery]) -> list[Receipt]:
    """Store verified deliveries in the inbox, in one unit of work (committed when this
    returns: what the platform's acknowledgement waits for)."""
    got = run_write(store, lambda conn: repo.inbox_add(conn, [d.row for d in deliveries]))
    return [
        Receipt(inbox_id, stored, d.status, d.reason)
        for (inbox_id, stored), d in zip(got, deliveries, strict=True)
    ]


def apply_received(
    store: Store,
    settings: Settings,
    name: str,
    kind: str,
    received: Sequence[tuple[Receipt, Delivery]],
    *,
    loyalty: LoyaltyFactory | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Apply deliveries just stored by :func:`store_deliveries`, in one unit of work (the
    webhook door groups concurrent deliveries): per delivery its inbox status after.
    Repeats already in the inbox and ``refunds/create`` (whose order must be fetched) are
    left to :func:`apply_inbox`; what was failed or ignored at receipt stays so."""
    items: list[_Item] = []
    out: list[_Item | str] = []
    for receipt, d in received:
        if not receipt.stored or receipt.status != "pending":
            out.append(receipt.status if receipt.stored else "stored")
            continue
        if d.row["topic"] == "refunds/create" or kind in ("douyin", "wechat_shop"):
            out.append("pending")  # the order's state is fetched (next sync, retry, apply_inbox)
            continue
        item = _Item(
            d.row["object_id"],
            d.row["updated_at"],
            inbox_id=receipt.inbox_id,
            raw=d.raw,
            expect="pending",
        )
        _prepare(item, kind, name, settings.currency, pulled=False)
        items.append(item)
        out.append(item)
    if items:
        _record(
            store, name, items, loyalty or _stored_loyalty(settings), now=now or _now(),
            keys=key_writer(settings),
        )  # fmt: skip
    return [o if isinstance(o, str) else o.status for o in out]


def receive_webhook(
    store: Store,
    settings: Settings,
    name: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key: tuple[str, str, str] | None = None,
    now: datetime | None = None,
    query: Mapping[str, str] | None = None,
) -> Receipt:
    """:func:`accept_delivery` then :func:`store_deliveries` for one delivery (``key``: the
    connector's :func:`webhook_key`, when the door has it cached)."""
    delivery = accept_delivery(
        name, key or webhook_key(store, settings, name), headers, body, now or _now(), query
    )
    return store_deliveries(store, [delivery])[0]


def apply_inbox(
    store: Store,
    settings: Settings,
    name: str,
    *,
    ids: Sequence[int] | None = None,
    statuses: Sequence[str] = ("pending",),
    loyalty: LoyaltyFactory | None = None,
    now: datetime | None = None,
    client: JsonClient | None = None,
    fetch: bool = True,
    limit: int = 1000,
    received_before: datetime | None = None,
) -> dict[str, int]:
    """Apply inbox rows (``ids``, or the connector's rows in ``statuses``), oldest update
    first: map each, record it through ``record_order_events`` (a delivery older than one
    already applied for the same object changes nothing), and mark it. ``fetch``: a Shopify
    refund delivery's order is fetched from the platform (else it stays pending).
    ``received_before``: only the rows received before that instant. Answers
    ``{"applied", "ignored", "failed", "pending"}`` counts and the ``rows`` read (a row
    another applier applied meanwhile is left as it is and counted in none)."""
    row = _connector(store, name)
    loyalty = loyalty or _stored_loyalty(settings)
    at = now or _now()
    rows = run_read(
        store,
        lambda conn: repo.inbox_rows(
            conn, name, statuses=statuses, ids=ids, limit=limit, received_before=received_before
        ),
    )
    items: list[_Item] = []
    extras: list[_Item] = []  # further orders a Douyin push names, recorded as pulled
    fetched: dict[str, Any] = {}  # a platform puller made once for the rows' fetches
    for r in rows:
        item = _Item(r["object_id"], r["updated_at"], inbox_id=r["inbox_id"], expect=r["status"])
        items.append(item)
        try:
            item.raw = json.loads(r["body"], parse_float=Decimal)
        except ValueError as exc:
            item.status, item.reason = (
                "failed",
                t("connectors.bad_body", "en", detail=str(exc)[:200]),
            )
            continue
        if r["object_id"].startswith("unparsed:"):
            again = _identify(row["kind"], r["topic"], item.raw)
            if again.object_id.startswith("unparsed:"):
                item.status, item.reason = "failed", again.reason
                continue
        if r["topic"] == "refunds/create" and row["kind"] == "shopify":
            if not fetch:
                item.status = "skip"  # left pending for the next sync or retry
                continue
            try:
                oid = shopify.refund_order_id(item.raw)
                cl = client or _client(settings, row, None)
                node = ShopifyPuller(cl, page_size=1).order(oid)
                if node is None:
                    raise Unmappable(f"order {oid} of the refund is not in the shop")
                item.raw = node
                _prepare(item, row["kind"], name, settings.currency, pulled=True)
            except (HuitoukeError, PlatformError) as exc:
                item.status, item.reason = "failed", exc.message
            continue
        if row["kind"] == "wechat_shop" and r["topic"] in wechat_shop.ORDER_EVENTS:
            if not fetch:
                item.status = "skip"  # left pending for the next sync or retry
                continue
            _fetch_wechat_order(item, row, settings, name, client, fetched)
            continue
        topics = _topics(row["kind"])
        if r["topic"] not in topics and r["topic"] != "pull":
            item.status, item.reason = "ignored", f"topic {r['topic']} is not handled"
            continue
        if row["kind"] == "douyin" and r["topic"] != "pull":
            if not fetch:
                item.status = "skip"
                continue
            extras.extend(_douyin_fetch(store, settings, row, item, client, name, fetched))
            continue
        _prepare(
            item,
            row["kind"],
            name,
            settings.currency,
            pulled=r["topic"] == "pull" and row["kind"] == "shopify",
        )
    work = [i for i in items if i.status != "skip"] + extras
    if work:
        _record(store, name, work, loyalty, now=at, keys=key_writer(settings))
    counts = {"applied": 0, "ignored": 0, "failed": 0, "pending": 0, "rows": len(rows)}
    for i in items:
        if i.status != "taken":  # applied by another applier meanwhile
            counts["pending" if i.status == "skip" else i.status] += 1
    return counts


def _douyin_fetch(
    store: Store,
    settings: Settings,
    row: Mapping[str, Any],
    item: _Item,
    client: JsonClient | None,
    name: str,
    pullers: dict[str, Any],
) -> list[_Item]:
    """Fetch the orders a Douyin push names (``order.orderDetail``): the first becomes the
    inbox row's order, the others are answered as pulled items."""
    extras: list[_Item] = []
    try:
        puller = pullers.get("douyin")
        if puller is None:
            puller = _market_puller(
                settings, row, client or _client(settings, row, None), store=store
            )
            pullers["douyin"] = puller
        assert isinstance(puller, DouyinPuller)
        for k, pid in enumerate(_douyin_orders(item.raw)):
            node = puller.order(pid)
            if node is None:
                raise Unmappable(f"order {pid} of the message is not in the shop")
            if k == 0:
                item.raw = node
                _prepare(item, "douyin", name, settings.currency, pulled=True)
            else:
                extra = _pulled_item(node, "douyin")
                if extra.status == "pending":
                    _prepare(extra, "douyin", name, settings.currency, pulled=True)
                extras.append(extra)
    except (HuitoukeError, PlatformError) as exc:
        item.status, item.reason = "failed", exc.message
    return extras


def _fetch_wechat_order(
    item: _Item,
    row: Mapping[str, Any],
    settings: Settings,
    name: str,
    client: JsonClient | None,
    pullers: dict[str, Any],
) -> None:
    """A WeChat 小店 push names an order: its state now, fetched (``/channels/ec/order/get``),
    is what the push applies."""
    try:
        oid = wechat_shop.push_order_id(item.raw if isinstance(item.raw, Mapping) else {})
        if oid is None:
            raise Unmappable("the message names no order")
        puller = pullers.get("wechat_shop")
        if puller is None:
            puller = _puller(client or _client(settings, row, None), row, settings)
            pullers["wechat_shop"] = puller
        assert isinstance(puller, WeChatShopPuller)
        order = puller.order(oid)
        if order is None:
            raise Unmappable(f"order {oid} of the message is not in the shop")
        item.raw = order
        _prepare(item, row["kind"], name, settings.currency, pulled=True)
    except (HuitoukeError, PlatformError) as exc:
        item.status, item.reason = "failed", exc.message


def inbox(
    store: Store, name: str, *, failed_only: bool = False, limit: int = 100
) -> list[dict[str, Any]]:
    """The connector's inbox, oldest update first (``failed_only``: what needs a look)."""
    _connector(store, name)
    statuses = ("failed",) if failed_only else None
    rows = run_read(store, lambda conn: repo.inbox_rows(conn, name, statuses=statuses, limit=limit))
    return [
        {
            "inbox_id": r["inbox_id"],
            "object_id": r["object_id"],
            "updated_at": r["updated_at"].isoformat(),
            "topic": r["topic"],
            "status": r["status"],
            "reason": r["reason"],
            "attempts": r["attempts"],
            "received_at": r["received_at"].isoformat(),
        }
        for r in rows
    ]


def retry(
    store: Store,
    settings: Settings,
    name: str,
    *,
    loyalty: LoyaltyFactory | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Apply again the connector's failed and pending deliveries."""
    counts = apply_inbox(
        store, settings, name, statuses=("failed", "pending"), loyalty=loyalty, now=now
    )
    counts.pop("rows", None)
    return counts


def apply_pending(
    store: Store,
    settings: Settings,
    *,
    received_before: datetime,
    loyalty: LoyaltyFactory | None = None,
    now: datetime | None = None,
    batch: int = 1000,
) -> dict[str, dict[str, Any]]:
    """Apply every active connector's deliveries still pending that were received before
    ``received_before``: what a process stopped between a delivery's acknowledgement and
    its apply left behind, a refund whose order is to be fetched, what waited while its
    connector was paused (the service's start and the scheduler's ``connectors.inbox``
    job). Per connector that had any, its counts (one failing connector does not stop the
    others: its error's code is under ``error``)."""
    out: dict[str, dict[str, Any]] = {}
    for row in run_read(store, repo.list_connectors):
        if row["status"] != "active":
            continue
        name = row["name"]
        total: dict[str, Any] = {"applied": 0, "ignored": 0, "failed": 0, "pending": 0}
        try:
            while True:
                got = apply_inbox(
                    store,
                    settings,
                    name,
                    loyalty=loyalty,
                    now=now,
                    limit=batch,
                    received_before=received_before,
                )
                for k in ("applied", "ignored", "failed", "pending"):
                    total[k] += got[k]
                done = got["applied"] + got["ignored"] + got["failed"]
                if got["rows"] < batch or not done:
                    break
        except HuitoukeError as exc:
            total["error"] = exc.code
        if any(total.values()):
            out[name] = total
    return out


def apply_arrivals(
    store: Store,
    settings: Settings,
    *,
    since: datetime,
    skip: Set[int] = frozenset(),
    loyalty: LoyaltyFactory | None = None,
    now: datetime | None = None,
    batch: int = 500,
) -> tuple[int, list[int]]:
    """Apply the deliveries of the active connectors still pending that arrived at or after
    ``since``, oldest arrival first, at most ``batch`` of them (``HUITOUKE_WEBHOOK_APPLY=
    scheduler``: the scheduler's follower, :class:`huitouke.app.scheduler.inbox.
    InboxFollower`, calls it as they arrive). Refund deliveries are left to the
    ``connectors.inbox`` job, as the services' appliers leave them (their order is fetched
    from the platform); ``skip``: inbox ids a call before left pending. Answers the rows
    handled and the ids of those still pending after it."""

    def read(conn: Connection) -> list[tuple[int, str]]:
        active = [r["name"] for r in repo.list_connectors(conn) if r["status"] == "active"]
        found = repo.inbox_arrivals(
            conn, active, since=since, limit=batch + len(skip), skip_topics=("refunds/create",)
        )
        return [(i, n) for i, n in found if i not in skip][:batch]

    rows = run_read(store, read)
    if not rows:
        return 0, []
    by_name: dict[str, list[int]] = {}
    for inbox_id, name in rows:
        by_name.setdefault(name, []).append(inbox_id)
    loyalty = loyalty or _stored_loyalty(settings)
    left: list[int] = []
    for name, ids in by_name.items():
        got = apply_inbox(store, settings, name, ids=ids, loyalty=loyalty, now=now, limit=len(ids))
        if got["pending"]:

            def pending(conn: Connection, name: str = name, ids: list[int] = ids) -> list[Any]:
                return repo.inbox_rows(conn, name, statuses=("pending",), ids=ids, limit=len(ids))

            still = run_read(store, pending)
            left.extend(int(r["inbox_id"]) for r in still)
    return len(rows), left


def mark_failed(store: Store, inbox_id: int, reason: str, now: datetime) -> None:
    """Mark a pending inbox row failed with ``reason`` (a delivery whose apply raised an
    error of its own): visible in the inbox, applied again by ``retry``."""

    def unit(conn: Connection) -> None:
        if repo.inbox_lock(conn, [inbox_id]).get(inbox_id) == "pending":
            repo.inbox_mark(conn, [(inbox_id, "failed", reason[:2000])], now)

    run_write(store, unit)
