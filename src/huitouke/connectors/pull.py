"""Pulling orders from the platforms, page by page, oldest update first.

Each puller yields pages of raw orders sorted by the platform's update time, with the
latest update time on the page. The caller records a page and moves the connector's
high-water mark to that time *in the same unit of work*, so a sync killed anywhere resumes
after the last page it committed; the next sync asks again from the mark minus the overlap
window (a platform may index an update a little after its time), and what it sees twice is
recorded twice — which changes nothing (the orders' later-state rule).

- **Shopify** (Admin GraphQL): ``orders(first, after, query: "updated_at:>='…'",
  sortKey: UPDATED_AT)`` followed by ``pageInfo.hasNextPage``/``endCursor``. Cost
  throttling: each answer's ``extensions.cost.throttleStatus`` says how many points are
  left and how fast they come back; before asking again the puller waits until the last
  query's cost is available, and a ``THROTTLED`` error is waited out the same way and asked
  again. HTTP 429 with ``Retry-After`` is honoured by :class:`~huitouke.connectors.http.JsonClient`.
- **WooCommerce** (REST v3): ``GET /wp-json/wc/v3/orders?modified_after=…&dates_are_gmt=true
  &orderby=modified&order=asc&per_page=…&page=…`` until ``X-WP-TotalPages``; basic auth with
  the consumer key and secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from huitouke.connectors import shopify, woocommerce
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError, Unmappable
from huitouke.connectors.values import instant

__all__ = [
    "SHOPIFY_API_VERSION",
    "Page",
    "ShopifyPuller",
    "WindowedPuller",
    "WooPuller",
    "basic_auth",
    "bulk_line_pages",
    "bulk_node",
    "redacted",
    "throttle_wait",
]

SHOPIFY_API_VERSION = "2025-07"
#: how many times a THROTTLED answer is waited out before the sync gives up
_THROTTLED_TRIES = 20
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Page:
    """Raw orders of one page and the latest platform update time among them."""

    orders: list[Mapping[str, Any]]
    latest: datetime | None


def redacted(exc: PlatformError, secret: str, *, safe: str = "") -> PlatformError:
    """``exc`` with ``secret`` (as sent in a URL, ``quote(secret, safe)``, and as it is)
    blanked out of its messages and details."""

    def clean(s: Any) -> Any:
        if not isinstance(s, str):
            return s
        return s.replace(quote(secret, safe=safe), "***").replace(secret, "***")

    return PlatformError(
        clean(exc.message),
        code=exc.code,
        message_zh=clean(exc.message_zh),
        details={k: clean(v) for k, v in exc.details.items()},
    )


class WindowedPuller:
    """Pages a platform's orders by update-time windows, each window read until it settles.

    The range since the cursor (or ``backfill`` before now) is split into windows of
    ``window``; a window is read whole and asked again (at most ``RESCANS`` times) when its
    total changed while it was paged — an order updated meanwhile leaves the window and the
    later ones move up a place. Only a window's final page carries a time, the window's end,
    so the connector's mark passes a window only once all of it is recorded.

    A subclass sets ``page_size``, ``window``, ``backfill`` and ``now`` on its instances,
    names the platform (en, zh) and what a window lists (``listing``: "trades modified",
    "修改"), says how times read in messages (``wire_time``) and implements
    :meth:`_page` (one page's rows and the window's total). ``share_boundary``: windows
    share their boundary second and end at a whole second of now, else the next window
    starts a second after the last one's end (both ends included). ``last_to_first``: page
    1 for the total, then the last page back to page 2 (TOP, JOS, PDD); else page by page
    from ``first_page`` until a short page or the total.
    """

    RESCANS = 5
    platform: tuple[str, str]
    listing: tuple[str, str]
    wire_time: Callable[[datetime], str]
    share_boundary = False
    last_to_first = True
    first_page = 1

    page_size: int
    window: timedelta
    backfill: timedelta
    now: Callable[[], datetime]

    def _page(self, start: datetime, end: datetime, page: int) -> tuple[list[Any], int]:
        raise NotImplementedError

    def _unsettled(self, start: datetime, end: datetime) -> PlatformError:
        (en, zh), (what, verb_zh) = self.platform, self.listing
        s, e = self.wire_time(start), self.wire_time(end)
        return PlatformError(
            f"{en} kept changing the {what} between {s} and {e} while they were paged",
            code="connector.platform_error",
            message_zh=f"{zh}在 {s} 至 {e} 之间{verb_zh}的订单在翻页时持续变化",
        )

    def _last_to_first(self, start: datetime, end: datetime) -> Iterator[Page]:
        for _ in range(self.RESCANS):
            orders, total = self._page(start, end, 1)
            pages = max(1, -(-total // self.page_size))
            if pages == 1:
                yield Page(orders, end)
                return
            yield Page(orders, None)
            moved = False
            for page in range(pages, 1, -1):  # the last page back to page 2
                orders, now_total = self._page(start, end, page)
                moved = moved or now_total != total
                if page == 2 and not moved:
                    yield Page(orders, end)
                    return
                yield Page(orders, None)
        raise self._unsettled(start, end)

    def _first_to_last(self, start: datetime, end: datetime) -> Iterator[Page]:
        for _ in range(self.RESCANS):
            page, first_total, moved = self.first_page, None, False
            while True:
                orders, total = self._page(start, end, page)
                if first_total is None:
                    first_total = total
                moved = moved or total != first_total
                last = (page - self.first_page + 1) * self.page_size >= total or not orders
                if last and not moved:
                    yield Page(orders, end)
                    return
                yield Page(orders, None)
                if last:
                    break
                page += 1
        raise self._unsettled(start, end)

    def _window(self, start: datetime, end: datetime) -> Iterator[Page]:
        if self.last_to_first:
            return self._last_to_first(start, end)
        return self._first_to_last(start, end)

    def pages(self, since: datetime | None) -> Iterator[Page]:
        end = self.now()
        if self.share_boundary:
            end = end.replace(microsecond=0)
        start = (end - self.backfill if since is None else since).replace(microsecond=0)
        while start < end:
            stop = min(start + self.window, end)
            yield from self._window(start, stop)
            # windows share their boundary second, or both ends are included (whole seconds)
            start = stop if self.share_boundary else stop + _SECOND


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def throttle_wait(cost: Mapping[str, Any] | None, need: float | None = None) -> float:
    """Seconds to wait until ``need`` points (default: the last query's requested cost) are
    available again, from a GraphQL answer's ``extensions.cost``; 0 when they are."""
    if not isinstance(cost, Mapping):
        return 0.0
    status = cost.get("throttleStatus") or {}
    try:
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
        wanted = float(need if need is not None else cost.get("requestedQueryCost") or 0)
    except (TypeError, ValueError):
        return 0.0
    if available >= wanted or rate <= 0:
        return 0.0
    return (wanted - available) / rate


def _throttled(body: Any) -> bool:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    return isinstance(errors, list) and any(
        isinstance(e, Mapping) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in errors
    )


def _max_time(times: list[datetime]) -> datetime | None:
    return max(times) if times else None


class ShopifyPuller:
    def __init__(self, client: JsonClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size
        self.path = f"/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
        self._pause = 0.0

    def _query(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(_THROTTLED_TRIES):
            if self._pause > 0:
                self.client._wait(self._pause)
                self._pause = 0.0
            body = self.client.request(
                "POST", self.path, body={"query": query, "variables": dict(variables)}
            ).body
            cost = (
                (body or {}).get("extensions", {}).get("cost")
                if isinstance(body, Mapping)
                else None
            )
            if _throttled(body):
                self._pause = max(throttle_wait(cost), 1.0)
                continue
            self._pause = throttle_wait(cost)
            if not isinstance(body, Mapping) or body.get("errors"):
                detail = str((body or {}).get("errors") if isinstance(body, Mapping) else body)
                raise PlatformError(
                    f"Shopify GraphQL error: {detail[:300]}",
                    code="connector.platform_error",
                    message_zh=f"Shopify GraphQL 错误:{detail[:300]}",
                    details={"errors": detail[:300]},
                )
            return body
        raise PlatformError(
            "Shopify kept answering THROTTLED",
            code="connector.platform_error",
            message_zh="Shopify 持续返回 THROTTLED(限流)",
        )

    def pages(self, since: datetime | None) -> Iterator[Page]:
        after: str | None = None
        search = None if since is None else f"updated_at:>='{_iso(since)}'"
        while True:
            body = self._query(
                shopify.ORDERS_QUERY, {"first": self.page_size, "after": after, "query": search}
            )
            conn = (body.get("data") or {}).get("orders") or {}
            nodes = conn.get("nodes")
            if nodes is None:
                nodes = [e.get("node") for e in conn.get("edges") or []]
            times = [
                instant(n.get("updatedAt"), "updatedAt") for n in nodes if isinstance(n, Mapping)
            ]
            yield Page(list(nodes), _max_time(times))
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return
            after = str(info["endCursor"])

    def bulk_url(self, since: datetime | None, *, poll_seconds: float = 2.0) -> str | None:
        """Run a bulk operation of every order updated since ``since``, poll
        ``currentBulkOperation`` until it is ``COMPLETED`` and answer its file's URL
        (``None``: no order, no file)."""
        search = "" if since is None else f"updated_at:>='{_iso(since)}'"
        query = shopify.BULK_ORDERS_QUERY % json.dumps(search)
        body = self._query(shopify.BULK_RUN_MUTATION, {"query": query})
        run = (body.get("data") or {}).get("bulkOperationRunQuery") or {}
        if run.get("userErrors"):
            raise PlatformError(
                f"Shopify bulk operation refused: {run['userErrors']}",
                code="connector.platform_error",
                message_zh=f"Shopify 批量操作被拒绝:{run['userErrors']}",
            )
        while True:
            op = (self._query(shopify.BULK_POLL_QUERY, {}).get("data") or {}).get(
                "currentBulkOperation"
            ) or {}
            status = op.get("status")
            if status == "COMPLETED":
                break
            if status in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
                raise PlatformError(
                    f"Shopify bulk operation {status}: {op.get('errorCode')}",
                    code="connector.platform_error",
                    message_zh=f"Shopify 批量操作 {status}:{op.get('errorCode')}",
                )
            self.client._wait(poll_seconds)
        url = op.get("url")
        return str(url) if url else None

    def bulk_pages(self, since: datetime | None, *, poll_seconds: float = 2.0) -> Iterator[Page]:
        """Every order updated since ``since`` through a bulk operation (backfill): run the
        query, poll until it is done (:meth:`bulk_url`), read its JSONL (an order per line,
        each line item on its own line after its order, naming it in ``__parentId``) and
        yield pages of ``page_size`` orders (:func:`bulk_line_pages`)."""
        url = self.bulk_url(since, poll_seconds=poll_seconds)
        lines = self.client.get_lines(url) if url else iter(())
        yield from bulk_line_pages(lines, self.page_size)

    def order(self, order_id: str) -> Mapping[str, Any] | None:
        """One order by its numeric id (``None``: the shop has no such order)."""
        body = self._query(shopify.ORDER_QUERY, {"id": f"gid://shopify/Order/{order_id}"})
        node = (body.get("data") or {}).get("order")
        return node if isinstance(node, Mapping) else None


def bulk_line_pages(lines: Iterable[bytes], page_size: int) -> Iterator[Page]:
    """The orders of a bulk operation's lines in pages of ``page_size``, each order with its
    line items (``lineItems.nodes``, in file order). A bulk file is not a sorted page
    stream, so its pages carry no update time; the last, empty page carries the latest of
    them all (the mark moves once the whole file is recorded)."""
    latest: datetime | None = None
    batch: list[Mapping[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for line in lines:
        obj = json.loads(line, parse_float=Decimal)
        parent = obj.pop("__parentId", None)
        if parent is not None:
            owner = by_id.get(parent)
            if owner is None:
                raise Unmappable(f"bulk line item of {parent} before its order")
            owner["lineItems"]["nodes"].append(obj)
            continue
        if len(batch) >= page_size:
            yield Page(batch, None)
            batch, by_id = [], {}
        obj["lineItems"] = {"nodes": []}
        at = instant(obj.get("updatedAt"), "updatedAt")
        latest = at if latest is None or at > latest else latest
        batch.append(obj)
        by_id[str(obj.get("id"))] = obj
    if batch:
        yield Page(batch, None)
    yield Page([], latest)


def bulk_node(order_line: bytes, item_lines: Sequence[bytes]) -> dict[str, Any]:
    """One order of a bulk file as :func:`bulk_line_pages` reads it: its line and its
    items' lines (``lineItems.nodes``, in this order)."""
    obj = json.loads(order_line, parse_float=Decimal)
    obj.pop("__parentId", None)
    items = []
    for line in item_lines:
        item = json.loads(line, parse_float=Decimal)
        item.pop("__parentId", None)
        items.append(item)
    obj["lineItems"] = {"nodes": items}
    return obj


class WooPuller:
    def __init__(self, client: JsonClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = min(page_size, 100)  # WooCommerce's per_page maximum

    def pages(self, since: datetime | None) -> Iterator[Page]:
        # Page numbers shift when an order is modified during the sync (it moves to the
        # end, and every later order one place up — the one at a page's start would be
        # skipped). So after each page that got further, ask again from page 1 after its
        # latest time less a second (``modified_after`` is strict, times are whole
        # seconds): the same second's orders come again, which changes nothing. Only a
        # page full of one second's orders moves on by page number.
        after, page = since, 1
        while True:
            params: dict[str, Any] = {
                "orderby": "modified",
                "order": "asc",
                "per_page": self.page_size,
                "page": page,
                "dates_are_gmt": "true",
            }
            if after is not None:
                params["modified_after"] = _iso(after)
            r = self.client.request("GET", "/wp-json/wc/v3/orders", params=params)
            try:
                total = int(r.headers.get("x-wp-totalpages", "1"))
            except ValueError:
                total = 1
            if not isinstance(r.body, list):
                raise Unmappable("WooCommerce answered something other than a list of orders")
            times = [
                woocommerce.gmt(o.get("date_modified_gmt"), "date_modified_gmt")
                for o in r.body
                if isinstance(o, Mapping)
            ]
            latest = _max_time(times)
            yield Page(list(r.body), latest)
            if page >= total or not r.body:
                return
            if latest is not None and (after is None or latest - _SECOND > after):
                after, page = latest - _SECOND, 1
            else:
                page += 1


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
