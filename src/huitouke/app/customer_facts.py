"""The per-customer facts snapshot and what the console reads from it.

:func:`refresh_customer_facts` is the one writer of ``customer_facts`` and its
``customer_facts_meta`` row (:mod:`huitouke.store.customer_facts`). It reads the recorded
orders (and lines) once and builds the per-customer frame with
:func:`huitouke.app.customer_frame.customer_frame` — the code behind ``huitouke
customers``, ``huitouke segments`` (the same analytics table) and ``huitouke predict`` (the
one model policy, :func:`huitouke.prediction.policy_prediction`) — then replaces both
tables in one unit of work: a refresh that fails anywhere leaves the previous snapshot
whole. The meta row keeps what the predictions page shows: the model chosen and why (or
why none), the holdout check of :func:`huitouke.prediction.evaluate_models` on this shop,
and P(alive) / CLV bands.

The readers (segment summary, filtered customer lists, segment members, one customer's
facts) are set-based queries on the snapshot's indexed columns, so a console page never
scans the orders. :func:`issue_segment_coupons` gives every member of a segment one coupon
through the loyalty service's own ``issue_coupon`` with a key per customer and batch:
sending the same batch again issues nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select

from huitouke.analytics import Analytics, LayerWindows
from huitouke.analytics.segments import LAYERS, LIFECYCLE_STAGES, RFM_SEGMENTS
from huitouke.app.customer_frame import customer_frame
from huitouke.app.orders import load_order_lines, load_orders
from huitouke.errors import HuitoukeError, InputError, ModelFitError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.service import LoyaltyService
from huitouke.prediction import CHURN_RISK_BANDS, evaluate_models, policy_prediction
from huitouke.store.customer_facts import customer_facts, customer_facts_meta, like_prefix
from huitouke.store.db import Store
from huitouke.store.tables import customers as profiles
from huitouke.store.uow import run_read, run_write

__all__ = [
    "SEGMENT_KINDS",
    "FactsFilter",
    "SegmentRef",
    "check_segment_batch",
    "customer_facts_of",
    "find_customers",
    "issue_segment_coupons",
    "refresh_customer_facts",
    "segment_members",
    "segment_summary",
    "snapshot_meta",
    "stored_segment_summary",
]

#: a segment's kind → the snapshot column and the names it may take
SEGMENT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rfm": ("rfm_segment", RFM_SEGMENTS),
    "layer": ("layer", LAYERS),
    "lifecycle": ("lifecycle", LIFECYCLE_STAGES),
}
#: rows written per statement
_CHUNK = 5_000
#: customers per unit of work when coupons are issued to a segment
_ISSUE_CHUNK = 500
#: P(alive) histogram: ten bins of 0.1
_P_BINS = 10


def _bad_filter(what: str, value: object, allowed: str) -> InputError:
    return InputError(
        f"{what}: {value!r} is not allowed (use {allowed})",
        code="input.bad_filter",
        message_zh=f"{what}:不接受 {value!r}(可用 {allowed})",
        details={"field": what, "value": str(value)},
    )


# -- refresh ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh wrote: its day, instant, customers and the model (None: why in note)."""

    as_of: date
    computed_at: datetime
    customers: int
    model: str | None
    note: str | None


def _num(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _day(v: Any) -> date | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.date()
    return v if isinstance(v, date) else None


def _instant(v: Any) -> datetime:
    ts = pd.Timestamp(v)
    return ts.to_pydatetime().astimezone(UTC)


def _dec(v: Any) -> Decimal | None:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return Decimal(str(v)) if not isinstance(v, Decimal) else v


def _rows(frame: pd.DataFrame, now: datetime, model: str | None) -> list[dict[str, Any]]:
    has_model = "p_alive" in frame.columns
    out = []
    for r in frame.to_dict("records"):
        median = _day(r.get("next_order_median")) if has_model else None
        out.append(
            {
                "customer_id": str(r["customer_id"]),
                "orders": int(r["orders"]),
                "revenue": _dec(r["spend"]) or Decimal(0),
                "first_order_at": _instant(r["first_order_at"]),
                "last_order_at": _instant(r["last_order_at"]),
                "days_since_last": int(r["days_since_last"]),
                "r_score": int(r["r_score"]),
                "f_score": int(r["f_score"]),
                "m_score": int(r["m_score"]),
                "rfm_segment": str(r["rfm_segment"]),
                "layer": str(r["layer"]),
                "lifecycle": str(r["lifecycle"]),
                "p_alive": _num(r.get("p_alive")),
                "expected_orders": _num(r.get("expected_orders")),
                "clv": _dec(r.get("clv")),
                "churn_risk": r.get("churn_risk") or None,
                "next_order_date": median if median else _day(r.get("next_expected_date")),
                "next_order_low": _day(r.get("next_order_low")) if median else None,
                "next_order_high": _day(r.get("next_order_high")) if median else None,
                "next_order_source": "model"
                if median
                else str(r.get("next_expected_source") or "none"),
                "model": model if median is not None else None,
                "computed_at": now,
            }
        )
    return out


def _bands(frame: pd.DataFrame) -> dict[str, Any]:
    """P(alive) in ten bins of 0.1, the churn-risk bands, and CLV in quantile bands
    (bottom 20% … top 5%) with each band's customers and CLV sum."""
    if "p_alive" not in frame.columns or frame["p_alive"].isna().all():
        return {}
    p = frame["p_alive"].astype(float).to_numpy()
    idx = np.minimum((p * _P_BINS).astype(int), _P_BINS - 1)
    hist = np.bincount(idx, minlength=_P_BINS)
    risk = []
    upper = 1.0
    codes = frame["churn_risk"].astype(str).to_numpy()
    for code, lower in CHURN_RISK_BANDS:
        risk.append(
            {"band": code, "from": lower, "to": upper, "customers": int((codes == code).sum())}
        )
        upper = lower
    clv = np.array([float(v) for v in frame["clv"]], dtype=np.float64)
    shares = (0.0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)
    edges = np.quantile(clv, shares)
    order = np.argsort(clv, kind="stable")
    n = len(clv)
    clv_bands = []
    for i in range(len(shares) - 1):
        lo, hi = round(shares[i] * n), round(shares[i + 1] * n)
        part = clv[order[lo:hi]]
        clv_bands.append(
            {
                "from_share": shares[i],
                "to_share": shares[i + 1],
                "customers": int(hi - lo),
                "clv_from": float(edges[i]),
                "clv_to": float(edges[i + 1]),
                "clv_sum": float(part.sum()),
            }
        )
    return {
        "p_alive_hist": [int(v) for v in hist],
        "churn_risk": risk,
        "clv": clv_bands,
        "clv_total": float(clv.sum()),
    }


def refresh_customer_facts(
    store: Store,
    settings: Any,
    *,
    as_of: date | None = None,
    now: datetime | None = None,
    holdout_check: bool = True,
) -> RefreshResult:
    """Recompute the snapshot from the recorded orders and replace it atomically.

    ``as_of`` (the merchant's local day) defaults to the day of the last counted order,
    as for ``huitouke customers`` / ``segments``. ``settings`` gives the merchant's zone,
    same-day merging and the layer windows. Raises (and keeps the previous snapshot) when
    the store has no counted orders or the analytics refuse them (e.g. several currencies).
    """
    computed_at = (now or datetime.now(UTC)).astimezone(UTC)
    zone = settings.timezone
    orders = load_orders(store)
    lines = load_order_lines(store)
    with Analytics(
        orders,
        timezone=zone,
        lines=lines,
        merge_same_day=settings.merge_same_day_orders,
        windows=LayerWindows.from_settings(settings),
    ) as analytics:
        if as_of is None:
            span = analytics.date_span
            if span is None:
                raise InputError(
                    "there are no counted orders to analyse",
                    code="input.no_orders",
                    message_zh="没有可统计的订单",
                )
            as_of = span[1]
        run: Any
        try:
            run = policy_prediction(orders, as_of=as_of, timezone=zone)
        except ModelFitError as exc:
            run = exc
        view = customer_frame(analytics, orders, as_of=as_of, timezone=zone, run=run)
        frame = view.frame
    details: dict[str, Any] = {"bands": _bands(frame) if view.model else {}}
    if not isinstance(run, ModelFitError):
        meta = run.meta()
        details["prediction"] = {
            "model_label": meta["model_label"],
            "selection": meta["selection"],
            "comparison": meta["comparison"],
            "horizon_days": meta["horizon_days"],
            "spend_model": meta["spend_model"],
        }
        if holdout_check:
            try:
                check = evaluate_models(
                    orders,
                    timezone=zone,
                    as_of=as_of,
                    merge_same_day=True,
                )
                details["holdout"] = check.to_dict()
            except HuitoukeError as exc:
                details["holdout_error"] = {
                    "code": exc.code,
                    "en": exc.localized("en"),
                    "zh": exc.localized("zh"),
                }
    rows = _rows(frame, computed_at, view.model)
    currency = orders.column("currency")[0].as_py() if orders.num_rows else None
    meta_row = {
        "snapshot": "current",
        "as_of": as_of,
        "computed_at": computed_at,
        "timezone": zone,
        "currency": currency,
        "customers": len(rows),
        "model": view.model,
        "prediction_code": None if view.error is None else view.error.code,
        "prediction_note": None if view.error is None else view.error.localized("en"),
        "prediction_note_zh": None if view.error is None else view.error.localized("zh"),
        "details": details,
    }

    def write(conn: Connection) -> None:
        conn.execute(delete(customer_facts))
        for i in range(0, len(rows), _CHUNK):
            conn.execute(insert(customer_facts), rows[i : i + _CHUNK])
        # the segments page reads this summary of the rows just written, not a scan of them
        summary = _summary_json(segment_summary(conn))
        conn.execute(delete(customer_facts_meta))
        conn.execute(
            insert(customer_facts_meta).values(
                **{**meta_row, "details": {**details, "segments": summary}}
            )
        )

    run_write(store, write)
    return RefreshResult(as_of, computed_at, len(rows), view.model, meta_row["prediction_note"])


# -- reads ----------------------------------------------------------------------------------------


def snapshot_meta(conn: Connection) -> dict[str, Any] | None:
    """The snapshot's run (as_of, computed_at, customers, model, notes, details) or None
    when no snapshot has been computed."""
    row = conn.execute(select(customer_facts_meta)).first()
    return None if row is None else dict(row._mapping)


def segment_summary(conn: Connection) -> dict[str, Any]:
    """``{"total", "revenue", "rfm"|"layer"|"lifecycle": [{"name", "customers", "share",
    "revenue", "revenue_share"}]}`` in the vocabulary's order (every name, empty ones 0)."""
    c = customer_facts.c
    total, revenue = conn.execute(select(func.count(), func.sum(c.revenue))).one()
    revenue = revenue or Decimal(0)
    out: dict[str, Any] = {"total": int(total), "revenue": revenue}
    for kind, (col, names) in SEGMENT_KINDS.items():
        got = {
            r[0]: (int(r[1]), r[2] or Decimal(0))
            for r in conn.execute(
                select(c[col], func.count(), func.sum(c.revenue)).group_by(c[col])
            )
        }
        out[kind] = [
            {
                "name": name,
                "customers": got.get(name, (0, 0))[0],
                "share": got.get(name, (0, 0))[0] / total if total else None,
                "revenue": Decimal(got.get(name, (0, Decimal(0)))[1]),
                "revenue_share": float(got.get(name, (0, Decimal(0)))[1] / revenue)
                if revenue
                else None,
            }
            for name in names
        ]
    return out


def _summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        return str(v) if isinstance(v, Decimal) else v

    return {
        k: [{f: plain(x) for f, x in r.items()} for r in v] if isinstance(v, list) else plain(v)
        for k, v in summary.items()
    }


def stored_segment_summary(conn: Connection, meta: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`segment_summary` as the refresh stored it with the snapshot (revenues back to
    Decimal); computed from the rows for a snapshot written without it."""
    stored = (meta or {}).get("details", {}).get("segments")
    if not stored:
        return segment_summary(conn)
    out: dict[str, Any] = {"total": stored["total"], "revenue": Decimal(stored["revenue"])}
    for kind in SEGMENT_KINDS:
        out[kind] = [{**r, "revenue": Decimal(r["revenue"])} for r in stored[kind]]
    return out


@dataclass(frozen=True)
class SegmentRef:
    """A segment named as ``kind:name`` (``rfm:champions``, ``layer:new``, ``lifecycle:lost``)."""

    kind: str
    name: str

    @classmethod
    def parse(cls, kind: str, name: str) -> SegmentRef:
        if kind not in SEGMENT_KINDS:
            raise _bad_filter("segment kind", kind, ", ".join(SEGMENT_KINDS))
        names = SEGMENT_KINDS[kind][1]
        if name not in names:
            raise _bad_filter(f"{kind} segment", name, ", ".join(names))
        return cls(kind, name)

    @property
    def column(self) -> str:
        return SEGMENT_KINDS[self.kind][0]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def _parse_day(value: str, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{what} {value!r}: expected a date YYYY-MM-DD",
            code="input.bad_date",
            message_zh=f"{what} {value!r}:日期格式应为 YYYY-MM-DD",
            details={"field": what},
        ) from None


def _parse_share(value: str, what: str) -> float | None:
    if not value:
        return None
    try:
        f = float(value)
    except ValueError:
        f = math.nan
    if not (0.0 <= f <= 1.0):
        raise _bad_filter(what, value, "a number from 0 to 1")
    return f


@dataclass(frozen=True)
class FactsFilter:
    """The customers page's filters; empty fields filter nothing."""

    q: str = ""
    rfm: str = ""
    layer: str = ""
    lifecycle: str = ""
    tier: str = ""
    p_alive_min: float | None = None
    p_alive_max: float | None = None
    next_from: date | None = None
    next_to: date | None = None
    args: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, str]) -> FactsFilter:
        """From the query's strings; a bad value is refused naming the field."""
        v = {k: (raw.get(k) or "").strip()[:128] for k in (
            "q", "rfm", "layer", "lifecycle", "tier", "p_min", "p_max", "next_from", "next_to"
        )}  # fmt: skip
        for kind in ("rfm", "layer", "lifecycle"):
            if v[kind]:
                SegmentRef.parse(kind, v[kind])
        f = cls(
            q=v["q"],
            rfm=v["rfm"],
            layer=v["layer"],
            lifecycle=v["lifecycle"],
            tier=v["tier"],
            p_alive_min=_parse_share(v["p_min"], "p_min"),
            p_alive_max=_parse_share(v["p_max"], "p_max"),
            next_from=_parse_day(v["next_from"], "next_from"),
            next_to=_parse_day(v["next_to"], "next_to"),
            args={k: x for k, x in v.items() if x},
        )
        if (
            f.p_alive_min is not None
            and f.p_alive_max is not None
            and f.p_alive_min > f.p_alive_max
        ):
            raise InputError(
                f"the range ends ({f.p_alive_max}) before it starts ({f.p_alive_min})",
                code="input.bad_range",
                message_zh=f"范围的结束值 {f.p_alive_max} 小于开始值 {f.p_alive_min}",
                details={"field": "p_alive"},
            )
        if f.next_from and f.next_to and f.next_from > f.next_to:
            raise InputError(
                f"the range ends ({f.next_to}) before it starts ({f.next_from})",
                code="input.bad_range",
                message_zh=f"日期范围的结束日 {f.next_to} 早于开始日 {f.next_from}",
                details={"field": "next_order_date"},
            )
        return f

    @property
    def filters_facts(self) -> bool:
        """Whether anything but the search text is set (then the snapshot is needed)."""
        return any(k != "q" for k in self.args)

    def conditions(self) -> list[ColumnElement[bool]]:
        c, p, m = customer_facts.c, profiles.c, lt.members.c
        out: list[ColumnElement[bool]] = []
        if self.q:
            pattern = like_prefix(self.q)
            out.append(
                or_(
                    c.customer_id.like(pattern, escape="\\"),
                    p.phone.like(pattern, escape="\\"),
                    func.lower(p.email).like(pattern.lower(), escape="\\"),
                )
            )
        for kind in ("rfm", "layer", "lifecycle"):
            value = getattr(self, kind)
            if value:
                out.append(c[SEGMENT_KINDS[kind][0]] == value)
        if self.tier:
            out.append(m.tier == self.tier)
        if self.p_alive_min is not None:
            out.append(c.p_alive >= self.p_alive_min)
        if self.p_alive_max is not None:
            out.append(c.p_alive <= self.p_alive_max)
        if self.next_from is not None:
            out.append(c.next_order_date >= self.next_from)
        if self.next_to is not None:
            out.append(c.next_order_date <= self.next_to)
        return out


_LIST_COLUMNS = (
    "customer_id", "orders", "revenue", "last_order_at", "rfm_segment", "layer", "lifecycle",
    "p_alive", "clv", "next_order_date", "next_order_low", "next_order_high", "model",
)  # fmt: skip


def _listing(conditions: Sequence[ColumnElement[bool]]) -> Any:
    c, p, m = customer_facts.c, profiles.c, lt.members.c
    return (
        select(*[c[k] for k in _LIST_COLUMNS], p.name, p.phone, p.email, m.tier)
        .select_from(
            customer_facts.outerjoin(profiles, p.customer_id == c.customer_id).outerjoin(
                lt.members, m.customer_id == c.customer_id
            )
        )
        .where(and_(True, *conditions))
    )


def find_customers(
    conn: Connection,
    f: FactsFilter,
    *,
    limit: int | None = 50,
    offset: int = 0,
    count_limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The snapshot's customers matching ``f`` (by id), a page of them and how many match —
    with ``count_limit``, counted up to one more than it (a page says "more than N" rather
    than count half a million matches on every request)."""
    conds = f.conditions()
    stmt = _listing(conds).order_by(customer_facts.c.customer_id)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    c, p, m = customer_facts.c, profiles.c, lt.members.c
    count_stmt = (
        select(func.count())
        .select_from(
            customer_facts.outerjoin(profiles, p.customer_id == c.customer_id).outerjoin(
                lt.members, m.customer_id == c.customer_id
            )
        )
        .where(and_(True, *conds))
    )
    if count_limit is not None:
        capped = (
            select(customer_facts.c.customer_id)
            .select_from(
                customer_facts.outerjoin(profiles, p.customer_id == c.customer_id).outerjoin(
                    lt.members, m.customer_id == c.customer_id
                )
            )
            .where(and_(True, *conds))
            .limit(count_limit + 1)
            .subquery()
        )
        count_stmt = select(func.count()).select_from(capped)
    return rows, int(conn.execute(count_stmt).scalar_one())


def segment_members(conn: Connection, segment: SegmentRef) -> list[dict[str, Any]]:
    """Every customer of the segment in the snapshot, with name, phone, e-mail and tier."""
    col = customer_facts.c[segment.column]
    stmt = _listing([col == segment.name]).order_by(customer_facts.c.customer_id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def tiers_in_use(conn: Connection) -> list[str]:
    """The loyalty tiers members hold (the tier filter's choices): from the loyalty summary's
    snapshot when there is one (its tier mix: one row to read, where the live answer groups
    every member — a scan of a million rows on a large program), else from the members."""
    from huitouke.store.snapshot_tables import snapshots

    row = conn.execute(
        select(snapshots.c.payload).where(snapshots.c.kind == "loyalty_summary").limit(1)
    ).first()
    if row is not None and isinstance(row[0], dict) and isinstance(row[0].get("tiers"), list):
        return sorted(
            str(t["tier"]) for t in row[0]["tiers"] if t.get("tier") is not None and t["members"]
        )
    m = lt.members.c
    stmt = select(m.tier).where(m.tier.is_not(None)).distinct().order_by(m.tier)
    return [str(r[0]) for r in conn.execute(stmt)]


def customer_facts_of(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    """One customer's row of the snapshot (None when not in it)."""
    row = conn.execute(
        select(customer_facts).where(customer_facts.c.customer_id == customer_id)
    ).first()
    return None if row is None else dict(row._mapping)


# -- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueResult:
    members: int
    issued: int
    already: int
    limit_reached: int


def _issue_key(batch: str, customer_id: str) -> str:
    return f"segment:{batch}:{customer_id}"


def check_segment_batch(batch: str) -> None:
    """A batch key is 1–64 letters, digits and ``-`` (``input.bad_filter`` otherwise)."""
    if not batch or len(batch) > 64 or not batch.replace("-", "").isalnum():
        raise _bad_filter("batch", batch, "letters, digits and -, at most 64")


def issue_segment_coupons(
    store: Store,
    loyalty: Callable[[Connection], LoyaltyService],
    segment: SegmentRef,
    template_id: str,
    *,
    batch: str,
    progress: Callable[[int, int], None] | None = None,
) -> IssueResult:
    """One coupon of ``template_id`` to every member of ``segment`` in the snapshot, through
    the loyalty service's ``issue_coupon`` with the key ``segment:<batch>:<customer>``:
    running the same ``batch`` again issues nothing twice (members already served are
    counted in ``already``). Members at the template's per-customer limit are skipped and
    counted. Units of work of 500 customers; an interrupted run is finished by running the
    same batch again. ``progress(done, members)`` after each unit."""
    check_segment_batch(batch)
    members = [r["customer_id"] for r in run_read(store, lambda c: segment_members(c, segment))]
    issued = already = limited = 0
    for i in range(0, len(members), _ISSUE_CHUNK):
        chunk = members[i : i + _ISSUE_CHUNK]

        def unit(conn: Connection, chunk: list[str] = chunk) -> tuple[int, int, int]:
            svc = loyalty(conn)
            template = svc.program.template(template_id)
            keys = {cid: _issue_key(batch, cid) for cid in chunk}
            k = lt.coupons.c
            done = {
                str(r[0])
                for r in conn.execute(
                    select(k.issued_to).where(
                        k.source == "manual", k.source_ref.in_(list(keys.values()))
                    )
                )
            }
            full: set[str] = set()
            if template.max_per_customer is not None:
                full = {
                    str(r[0])
                    for r in conn.execute(
                        select(k.issued_to)
                        .where(k.template_id == template_id, k.issued_to.in_(chunk))
                        .group_by(k.issued_to)
                        .having(func.count() >= template.max_per_customer)
                    )
                } - done
            n = 0
            for cid in chunk:
                if cid in done or cid in full:
                    continue
                svc.issue_coupon(conn, template_id, cid, idempotency_key=keys[cid])
                n += 1
            return n, len(done), len(full)

        n, d, f = run_write(store, unit)
        issued, already, limited = issued + n, already + d, limited + f
        if progress is not None:
            progress(i + len(chunk), len(members))
    return IssueResult(len(members), issued, already, limited)
