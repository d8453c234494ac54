"""Snapshots: results computed ahead of time from the orders, so that a page reads one row
instead of scanning every order on each request.

**What a snapshot is.** One row of the ``snapshots`` table
(:mod:`huitouke.store.snapshot_tables`): a ``kind`` (``overview``…), the parameters it was
computed for (for the overview: the period kind, the merchant zone and whether same-day
orders are merged — the settings in force, so a changed setting finds no snapshot rather than
a wrong one), when it was computed and how long that took, its JSON ``payload``, and the
**fingerprint** of the orders it was computed from.

**Staleness.** The fingerprint is read *before* the computation: the newest
``orders.updated_at`` (one look-up in ``ix_orders_updated_at``), how many import batches the
store has recorded (a small table) and how many orders there were. A snapshot is stale when
the store's newest ``updated_at`` or its import-batch count differs from the snapshot's:
every import adds a batch (committed with its orders), and every order event written through
:func:`huitouke.app.orders.record_order_events` stamps the rows it changes with the time of
writing. Both checks are index look-ups, cheap on every page view. (A single order event
whose transaction began before a refresh read the fingerprint and committed after it is not
seen until the next write or refresh; an import never goes unseen.)

**Refreshers.** :data:`REFRESHERS` maps each kind to the function that recomputes it —
``fn(store, settings, progress)`` returning ``[(params, payload), …]`` (or ``None`` when it
keeps its results in its own tables: then one row with empty parameters records when and from
which orders it ran). Another kind is one line: ``register_refresher("kind", fn)``.

**When they run.** :func:`refresh_snapshots` (``huitouke snapshots refresh``, the console's
refresh button for operators, and what a scheduler calls — with ``only_stale=True`` it
recomputes only kinds whose orders changed: :func:`refresh_stale_snapshots`, the
scheduler's entry); :func:`refresh_after_import`, which
:func:`huitouke.app.imports.import_file` calls after every import, recomputes the kinds the
store already has (a store that never had a snapshot pays nothing; its pages compute live
until the first refresh). A refresh that fails leaves the previous snapshot in place (stale).

**The journeys' results** (``journey_results``) are computed for the merchant's today and
are stale when assignments, sent messages, link clicks or orders changed since
(:func:`journey_activity`: index look-ups) or the day moved on; a journey run recomputes them
(:func:`refresh_after_journey_run`) when the store has them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, func, select

from huitouke.app.orders import load_orders
from huitouke.app.overview import OverviewOptions, overviews
from huitouke.errors import InputError
from huitouke.i18n import register, t
from huitouke.settings import Settings
from huitouke.store import tables as tb
from huitouke.store.db import Store
from huitouke.store.snapshot_tables import snapshots
from huitouke.store.uow import run_read, run_write

__all__ = [
    "OVERVIEW_PERIODS",
    "REFRESHERS",
    "Fingerprint",
    "Progress",
    "RefreshReport",
    "Snapshot",
    "SnapshotView",
    "fingerprint",
    "journey_activity",
    "journey_results_params",
    "journey_results_view",
    "loyalty_summary_view",
    "overview_params",
    "overview_view",
    "read_snapshot",
    "refresh_after_import",
    "refresh_after_journey_run",
    "refresh_after_ledger_change",
    "refresh_snapshots",
    "refresh_stale_snapshots",
    "register_refresher",
    "snapshot_status",
    "stored_currencies",
]

register(
    {
        "app.snapshots.unknown_kind": {
            "zh": "未知的快照类型 {kind}(可用:{known})",
            "en": "unknown snapshot kind {kind} (known: {known})",
        },
        "app.snapshots.refresh_failed": {
            "zh": "快照 {kind} 未能重新计算({code}):控制台仍显示上一次的快照,并标为已过期",
            "en": "the {kind} snapshot could not be recomputed ({code}): the console keeps "
            "showing the previous one, marked stale",
        },
    }
)

#: the period kinds the overview offers (the console's period switch), all computed by
#: one refresh
OVERVIEW_PERIODS: tuple[str, ...] = ("month", "quarter", "week")

#: ``progress(kind, step, steps)``: a refresher's progress, for a bar or a log line
Progress = Callable[[str, int, int], None]
Payloads = Sequence[tuple[Mapping[str, Any], Any]]
RefreshFn = Callable[[Store, Settings, Progress], Payloads | None]


@dataclass(frozen=True)
class Fingerprint:
    """What the orders looked like: the newest ``updated_at``, the import batches recorded
    and (when counted) how many orders there were."""

    orders_updated_max: datetime | None
    import_batches: int
    orders_count: int | None = None

    def same_orders(self, other: Fingerprint) -> bool:
        return (
            self.orders_updated_max == other.orders_updated_max
            and self.import_batches == other.import_batches
            and (
                self.orders_count is None
                or other.orders_count is None
                or self.orders_count == other.orders_count
            )
        )


@dataclass(frozen=True)
class Snapshot:
    kind: str
    params: dict[str, Any]
    computed_at: datetime
    seconds: float
    fingerprint: Fingerprint
    payload: Any


@dataclass(frozen=True)
class RefreshReport:
    """One kind refreshed: how many snapshots, how long, from how many orders — or why it
    failed (``error``: the error's code; the previous snapshots stay)."""

    kind: str
    snapshots: int
    seconds: float
    orders: int
    error: str | None = None


def fingerprint(conn: Connection, *, count: bool = False) -> Fingerprint:
    """The store's orders fingerprint now (``count``: also count the orders — a scan of
    the primary key, for a refresh and ``snapshots status``, not for every page view)."""
    newest = conn.execute(select(func.max(tb.orders.c.updated_at))).scalar()
    batches = conn.execute(select(func.count()).select_from(tb.import_batches)).scalar_one()
    n = None
    if count:
        n = int(conn.execute(select(func.count()).select_from(tb.orders)).scalar_one())
    return Fingerprint(orders_updated_max=newest, import_batches=int(batches), orders_count=n)


def params_key(params: Mapping[str, Any]) -> str:
    """The parameters as canonical JSON (the table's key)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(
        kind=row.kind,
        params=dict(row.params),
        computed_at=row.computed_at,
        seconds=float(row.seconds),
        fingerprint=Fingerprint(
            orders_updated_max=row.orders_updated_max,
            import_batches=int(row.import_batches),
            orders_count=int(row.orders_count),
        ),
        payload=row.payload,
    )


def read_snapshot(conn: Connection, kind: str, params: Mapping[str, Any]) -> Snapshot | None:
    row = conn.execute(
        select(snapshots).where(
            snapshots.c.kind == kind, snapshots.c.params_key == params_key(params)
        )
    ).first()
    return None if row is None else _snapshot(row)


def _save(
    conn: Connection,
    kind: str,
    payloads: Payloads,
    *,
    before: Fingerprint,
    computed_at: datetime,
    seconds: float,
) -> None:
    """Replace every snapshot of ``kind`` with ``payloads`` (one transaction: a reader
    sees the old set or the new one)."""
    conn.execute(delete(snapshots).where(snapshots.c.kind == kind))
    rows = [
        {
            "kind": kind,
            "params_key": params_key(params),
            "params": dict(params),
            "computed_at": computed_at,
            "seconds": seconds,
            "orders_count": before.orders_count or 0,
            "orders_updated_max": before.orders_updated_max,
            "import_batches": before.import_batches,
            "payload": payload,
        }
        for params, payload in payloads
    ]
    if rows:
        conn.execute(snapshots.insert(), rows)


# -- the registry ---------------------------------------------------------------------------------

REFRESHERS: dict[str, RefreshFn] = {}
#: ``changed(conn, snapshot)``: whether what a kind was computed from changed since, for
#: kinds computed from something other than the orders (default: the orders' fingerprint)
StaleFn = Callable[[Connection, Snapshot], bool]
STALE_CHECKS: dict[str, StaleFn] = {}


def register_refresher(kind: str, fn: RefreshFn, *, changed: StaleFn | None = None) -> None:
    """Add a kind of snapshot: ``fn(store, settings, progress)`` recomputes it;
    ``changed(conn, snapshot)`` tells whether its sources changed since (default: the
    orders)."""
    if not kind or len(kind) > 64:
        raise ValueError(f"a snapshot kind is 1 to 64 characters: {kind!r}")
    REFRESHERS[kind] = fn
    if changed is not None:
        STALE_CHECKS[kind] = changed
    else:
        STALE_CHECKS.pop(kind, None)


def overview_params(settings: Settings, period: str) -> dict[str, Any]:
    """The parameters of the overview's snapshot for ``period`` under ``settings``."""
    return {
        "period": period,
        "timezone": settings.timezone,
        "merge_same_day": settings.merge_same_day_orders,
    }


def overview_options(settings: Settings, period: str = "month") -> OverviewOptions:
    return OverviewOptions(
        timezone=settings.timezone, merge_same_day=settings.merge_same_day_orders, period=period
    )


def _refresh_overview(store: Store, settings: Settings, progress: Progress) -> Payloads:
    progress("overview", 0, 2)
    orders = load_orders(store)
    progress("overview", 1, 2)
    data = overviews(orders, overview_options(settings), OVERVIEW_PERIODS)
    progress("overview", 2, 2)
    return [(overview_params(settings, p), data[p]) for p in OVERVIEW_PERIODS]


register_refresher("overview", _refresh_overview)


def _refresh_customer_facts(store: Store, settings: Settings, progress: Progress) -> Payloads:
    """The per-customer facts (segments, layers, lifecycle, predictions) the segments,
    predictions and customers pages read live in their own table; this kind's row records
    when they were computed and from which orders (so they too show as stale)."""
    from huitouke.app.customer_facts import refresh_customer_facts

    progress("customer_facts", 0, 1)
    done = refresh_customer_facts(store, settings)
    progress("customer_facts", 1, 1)
    summary = {
        "as_of": done.as_of.isoformat(),
        "customers": done.customers,
        "model": done.model,
        "note": done.note,
    }
    return [({}, summary)]


register_refresher("customer_facts", _refresh_customer_facts)


def _refresh_currencies(store: Store, settings: Settings, progress: Progress) -> Payloads:
    """The currencies of the stored orders (the data page shows them; a live ``DISTINCT``
    reads every order)."""
    progress("currencies", 0, 1)
    found = run_read(store, _currencies_now)
    progress("currencies", 1, 1)
    return [({}, {"currencies": found})]


def _currencies_now(conn: Connection) -> list[str]:
    rows = conn.execute(select(tb.orders.c.currency).distinct())
    return sorted(c for (c,) in rows if c is not None)


register_refresher("currencies", _refresh_currencies)


def stored_currencies(store: Store) -> tuple[list[str], datetime | None]:
    """The currencies of the stored orders and when they were computed: from the
    ``currencies`` snapshot when there is one (``None`` when read live: a store that has
    none yet)."""

    def read(conn: Connection) -> tuple[list[str], datetime | None]:
        snap = read_snapshot(conn, "currencies", {})
        if snap is None:
            return _currencies_now(conn), None
        return list(snap.payload["currencies"]), snap.computed_at

    return run_read(store, read)


def _refresh_loyalty_summary(store: Store, settings: Settings, progress: Progress) -> Payloads:
    """The loyalty page's numbers (:mod:`huitouke.app.loyalty_summary`), under the saved
    program's version and the merchant's zone; without a saved program a row saying so
    (the page computes live; the kind is recomputed once a program is saved)."""
    from huitouke.app.loyalty_summary import (
        ledger_mark,
        program_version,
        summary_params,
        summary_payload,
    )
    from huitouke.app.orders import stored_loyalty

    progress("loyalty_summary", 0, 1)

    def read(conn: Connection) -> Payloads:
        svc = stored_loyalty(conn, settings.timezone)
        mark = ledger_mark(conn)
        version = program_version(conn)
        if svc is None:  # nothing to show: recorded, so it is not recomputed until one is
            return [(summary_params(None, settings.timezone), {"program": None, "ledger": mark})]
        payload = summary_payload(svc, conn, as_of=datetime.now(UTC), timezone=settings.timezone)
        return [(summary_params(version, settings.timezone), {**payload, "ledger": mark})]

    out = run_read(store, read)
    progress("loyalty_summary", 1, 1)
    return out


def _loyalty_summary_changed(conn: Connection, snap: Snapshot) -> bool:
    """The ledger changed, or a program was saved since."""
    from huitouke.app.loyalty_summary import ledger_mark, program_version

    payload = snap.payload if isinstance(snap.payload, dict) else {}
    return payload.get("ledger") != ledger_mark(conn) or snap.params.get(
        "program_version"
    ) != program_version(conn)


register_refresher("loyalty_summary", _refresh_loyalty_summary, changed=_loyalty_summary_changed)


#: the journeys' results (holdout uplift, interval, revenue, cost, ROI) for the merchant's day
JOURNEY_RESULTS = "journey_results"


def journey_results_params(settings: Settings) -> dict[str, Any]:
    """The parameters of the journeys' results snapshot under ``settings`` (the settings
    ``huitouke journeys results`` and the console use: a changed setting finds none)."""
    return {
        "window_days": settings.attribution_window_days,
        "timezone": settings.timezone,
        "price_per_segment": str(settings.sms_price_per_segment),
        "currency": settings.currency,
    }


def journey_activity(conn: Connection) -> dict[str, Any]:
    """What the journeys' results are computed from besides the orders, read in look-ups
    whose cost does not grow with the journeys' audiences:

    - the run days (``journey_run_days``: one row per journey and day run, a small table):
      assignments are written only by a run, in the unit of work that records its day, and
      a day is never run twice — so new assignments always come with a new run day;
    - the newest delivery receipt (the primary key's maximum): a message becomes ``sent``
      only in the unit of work that writes its receipt (:mod:`huitouke.messaging.
      dispatcher`), and receipts are never deleted;
    - the newest link click (the primary key's maximum).

    (Counting the assignments and the sent messages cost 8–33 ms each on PostgreSQL with
    100k assigned customers, growing with them; these stay well under a millisecond.)"""
    from huitouke.journeys.tables import journey_run_days as rd
    from huitouke.measurement.tables import link_clicks
    from huitouke.messaging.tables import delivery_receipts

    runs, last_run = conn.execute(select(func.count(), func.max(rd.c.run_at))).one()
    receipt = conn.execute(select(func.max(delivery_receipts.c.receipt_id))).scalar()
    click = conn.execute(select(func.max(link_clicks.c.click_id))).scalar()
    return {
        "runs": int(runs),
        "last_run": str(last_run) if last_run is not None else None,
        "receipts": int(receipt or 0),
        "clicks": int(click or 0),
    }


def _json_safe(value: Any) -> Any:
    """Decimals as strings (as ``huitouke journeys results --format json`` prints them),
    numpy numbers as Python numbers."""
    from decimal import Decimal

    def default(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if hasattr(v, "item"):  # numpy scalars
            return v.item()
        return str(v)

    return json.loads(json.dumps(value, default=default))


#: the clock of the refresh under way (``refresh_snapshots(now=…)``: the app's clock), for
#: kinds computed for "today"
_CLOCK: ContextVar[Callable[[], datetime] | None] = ContextVar("snapshot_clock", default=None)


def _merchant_today(timezone: str) -> date:
    from zoneinfo import ZoneInfo

    clock = _CLOCK.get() or (lambda: datetime.now(UTC))
    return clock().astimezone(ZoneInfo(timezone)).date()


def _journey_results_now(conn: Connection, settings: Settings, day: date) -> list[dict[str, Any]]:
    from huitouke.journeys.results import journey_results

    return journey_results(
        conn,
        day,
        window_days=settings.attribution_window_days,
        timezone=settings.timezone,
        price_per_segment=settings.sms_price_per_segment,
        currency=settings.currency,
    )


def _refresh_journey_results(store: Store, settings: Settings, progress: Progress) -> Payloads:
    """Every journey's results for the merchant's today, with the activity marks read
    before them (so a change during the computation shows as stale)."""
    day = _merchant_today(settings.timezone)
    progress(JOURNEY_RESULTS, 0, 1)

    def read(conn: Connection) -> Payloads:
        mark = journey_activity(conn)
        rows = _json_safe(_journey_results_now(conn, settings, day))
        payload = {"as_of": day.isoformat(), "rows": rows, "activity": mark}
        return [(journey_results_params(settings), payload)]

    out = run_read(store, read)
    progress(JOURNEY_RESULTS, 1, 1)
    return out


def _journey_activity_changed(conn: Connection, snap: Snapshot) -> bool:
    """Assignments, sent messages, link clicks or orders changed since."""
    payload = snap.payload if isinstance(snap.payload, dict) else {}
    return payload.get("activity") != journey_activity(conn) or not snap.fingerprint.same_orders(
        fingerprint(conn)
    )


def _journey_results_changed(conn: Connection, snap: Snapshot) -> bool:
    """What the results were computed from changed since, or the merchant's day is no
    longer the snapshot's (a scheduler's stale refresh computes the new day)."""
    payload = snap.payload if isinstance(snap.payload, dict) else {}
    zone = str(snap.params.get("timezone") or "UTC")
    return payload.get("as_of") != _merchant_today(zone).isoformat() or _journey_activity_changed(
        conn, snap
    )


register_refresher(JOURNEY_RESULTS, _refresh_journey_results, changed=_journey_results_changed)


def journey_results_view(
    conn: Connection, settings: Settings, as_of: date
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The journeys' results for ``as_of`` (rows as ``huitouke journeys results --format
    json`` prints them) and where they came from: ``{"live": False, "computed_at",
    "stale"}`` from the snapshot when it holds that day, else ``{"live": True}`` computed now
    (another day, or no snapshot yet)."""
    snap = read_snapshot(conn, JOURNEY_RESULTS, journey_results_params(settings))
    payload = snap.payload if snap is not None and isinstance(snap.payload, dict) else None
    if snap is None or payload is None or payload.get("as_of") != as_of.isoformat():
        return _json_safe(_journey_results_now(conn, settings, as_of)), {"live": True}
    state = {
        "live": False,
        "computed_at": snap.computed_at,
        "stale": _journey_activity_changed(conn, snap),
    }
    return list(payload.get("rows") or []), state


def _unknown_kind(kind: str) -> InputError:
    known = ", ".join(sorted(REFRESHERS))
    return InputError(
        t("app.snapshots.unknown_kind", "en", kind=kind, known=known),
        code="snapshot.unknown_kind",
        message_zh=t("app.snapshots.unknown_kind", "zh", kind=kind, known=known),
        details={"kind": kind, "known": known},
    )


def _no_progress(kind: str, step: int, steps: int) -> None:
    return None


def refresh_snapshots(
    store: Store,
    settings: Settings,
    *,
    kinds: Iterable[str] | None = None,
    only_stale: bool = False,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[RefreshReport]:
    """Recompute the snapshots of ``kinds`` (default: every registered kind), each kind in
    its own transaction; with ``only_stale``, only kinds with no snapshot or a stale one
    (what a scheduler calls). A kind whose computation fails (e.g. orders in several
    currencies) keeps its previous snapshots and is reported with the error's code; the
    other kinds are still refreshed."""

    wanted = list(REFRESHERS) if kinds is None else list(kinds)
    for kind in wanted:
        if kind not in REFRESHERS:
            raise _unknown_kind(kind)
    clock = now or (lambda: datetime.now(UTC))
    report = progress or _no_progress
    token = _CLOCK.set(clock)
    try:
        return _refresh(store, settings, wanted, only_stale, clock, report)
    finally:
        _CLOCK.reset(token)


def _refresh(
    store: Store,
    settings: Settings,
    wanted: list[str],
    only_stale: bool,
    clock: Callable[[], datetime],
    report: Progress,
) -> list[RefreshReport]:
    from huitouke.errors import HuitoukeError

    reports: list[RefreshReport] = []
    for kind in wanted:
        before = run_read(store, lambda conn: fingerprint(conn, count=True))
        if only_stale and not _kind_stale(store, kind, before):
            continue
        started = time.perf_counter()
        computed_at = clock()
        try:
            payloads = REFRESHERS[kind](store, settings, report)
        except HuitoukeError as exc:
            reports.append(RefreshReport(kind, 0, time.perf_counter() - started, 0, error=exc.code))
            continue
        if payloads is None:
            payloads = [({}, {})]
        seconds = time.perf_counter() - started
        save = partial(
            _save, kind=kind, payloads=payloads, before=before, computed_at=computed_at,
            seconds=seconds,
        )  # fmt: skip
        run_write(store, save)
        reports.append(RefreshReport(kind, len(payloads), seconds, before.orders_count or 0))
    return reports


def _kind_stale(store: Store, kind: str, now: Fingerprint) -> bool:
    check = STALE_CHECKS.get(kind)

    def read(conn: Connection) -> bool:
        rows = [
            _snapshot(r)
            for r in conn.execute(select(snapshots).where(snapshots.c.kind == kind)).all()
        ]
        if not rows:
            return True
        if check is not None:
            return any(check(conn, s) for s in rows)
        return any(not s.fingerprint.same_orders(now) for s in rows)

    return run_read(store, read)


def refresh_stale_snapshots(
    store: Store, settings: Settings, *, progress: Progress | None = None
) -> list[RefreshReport]:
    """What a scheduler calls: every registered kind that has no snapshot yet or whose
    orders changed since (nothing is computed when nothing changed: two index look-ups and
    an order count per kind)."""
    return refresh_snapshots(store, settings, only_stale=True, progress=progress)


def refresh_after_import(
    store: Store, settings: Settings, *, progress: Progress | None = None
) -> list[RefreshReport]:
    """After an import: recompute the kinds the store already has snapshots of (none on a
    store that never had one: its pages compute live until the first refresh)."""
    have = run_read(
        store, lambda conn: set(conn.execute(select(snapshots.c.kind).distinct()).scalars())
    )
    kinds = [k for k in REFRESHERS if k in have]
    if not kinds:
        return []
    return refresh_snapshots(store, settings, kinds=kinds, progress=progress)


def refresh_after_ledger_change(
    store: Store, settings: Settings, *, progress: Progress | None = None
) -> list[RefreshReport]:
    """After batch work that changed the loyalty ledger (the loyalty jobs, coupons issued in
    batch or to a segment): recompute the loyalty summary when the store has one."""
    have = run_read(
        store,
        lambda conn: conn.execute(
            select(snapshots.c.kind).where(snapshots.c.kind == "loyalty_summary").limit(1)
        ).first(),
    )
    if have is None:
        return []
    return refresh_snapshots(store, settings, kinds=["loyalty_summary"], progress=progress)


def refresh_after_journey_run(
    store: Store,
    settings: Settings,
    *,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[RefreshReport]:
    """After a journey run that wrote assignments or messages (the console's run,
    ``huitouke journeys run``, the scheduler's ``journeys`` job): recompute the journeys'
    results when the store has that snapshot (one look-up otherwise)."""
    have = run_read(
        store,
        lambda conn: conn.execute(
            select(snapshots.c.kind).where(snapshots.c.kind == JOURNEY_RESULTS).limit(1)
        ).first(),
    )
    if have is None:
        return []
    return refresh_snapshots(store, settings, kinds=[JOURNEY_RESULTS], progress=progress, now=now)


@dataclass(frozen=True)
class StatusRow:
    kind: str
    params: dict[str, Any]
    computed_at: datetime
    seconds: float
    orders: int
    stale: bool


def snapshot_status(store: Store) -> tuple[list[StatusRow], list[str]]:
    """Every snapshot with whether it is stale now (orders counted: exact), and the
    registered kinds that have none yet."""

    def read(conn: Connection) -> tuple[list[StatusRow], list[str]]:
        now = fingerprint(conn, count=True)
        rows = [
            _snapshot(r)
            for r in conn.execute(
                select(snapshots).order_by(snapshots.c.kind, snapshots.c.params_key)
            )
        ]
        out = [
            StatusRow(
                kind=s.kind,
                params=s.params,
                computed_at=s.computed_at,
                seconds=s.seconds,
                orders=s.fingerprint.orders_count or 0,
                stale=STALE_CHECKS[s.kind](conn, s)
                if s.kind in STALE_CHECKS
                else not s.fingerprint.same_orders(now),
            )
            for s in rows
        ]
        have = {s.kind for s in rows}
        return out, [k for k in REFRESHERS if k not in have]

    return run_read(store, read)


# -- the overview's view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotView:
    """What a page shows: the data, and where it came from — a snapshot computed at
    ``computed_at`` (``stale`` when orders changed since), or ``live`` when the store has no
    snapshot for these parameters yet."""

    data: dict[str, Any]
    live: bool
    computed_at: datetime | None = None
    stale: bool = False


def overview_view(store: Store, settings: Settings, period: str) -> SnapshotView:
    """The overview for ``period`` under ``settings``: from its snapshot (and whether the
    orders changed since), or computed live when there is none yet."""
    from huitouke.app.overview import overview

    def read(conn: Connection) -> tuple[Snapshot | None, Fingerprint | None]:
        snap = read_snapshot(conn, "overview", overview_params(settings, period))
        return snap, (None if snap is None else fingerprint(conn))

    snap, now = run_read(store, read)
    if snap is None or now is None:
        return SnapshotView(data=overview(store, overview_options(settings, period)), live=True)
    return SnapshotView(
        data=snap.payload,
        live=False,
        computed_at=snap.computed_at,
        stale=not snap.fingerprint.same_orders(now),
    )


def loyalty_summary_view(
    conn: Connection,
    svc: Any,
    timezone: str,
    *,
    as_of: datetime,
    lo: date,
    hi: date,
    start: datetime,
    end: datetime,
    redemption_only: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The loyalty page's numbers — ``{"liabilities", "redemption", "tiers"}``, the shape of
    :meth:`huitouke.loyalty.service.LoyaltyService.summary` — and where they came from: ``{"live": False,
    "computed_at", "stale"}`` from the snapshot of the saved program's version, else
    ``{"live": True}`` computed now (no snapshot yet, another program version or zone).
    ``redemption_only``: the period's part alone (liabilities None, tiers empty)."""
    from huitouke.app.loyalty_summary import (
        KIND,
        ledger_mark,
        program_version,
        redemption_from_days,
        summary_params,
    )

    snap = read_snapshot(conn, KIND, summary_params(program_version(conn), timezone))
    if snap is None or not isinstance(snap.payload, dict) or "days" not in snap.payload:
        if redemption_only:
            red = svc.redemption(conn, start=start, end=end)
            return {"liabilities": None, "redemption": red, "tiers": []}, {"live": True}
        return svc.summary(conn, as_of=as_of, start=start, end=end), {"live": True}
    p = snap.payload
    red = redemption_from_days(p["days"], lo, hi, start=start, end=end)
    state = {
        "live": False,
        "computed_at": snap.computed_at,
        "stale": p.get("ledger") != ledger_mark(conn),
    }
    if redemption_only:
        return {"liabilities": None, "redemption": red, "tiers": []}, state
    return {"liabilities": p["liabilities"], "redemption": red, "tiers": p["tiers"]}, state
