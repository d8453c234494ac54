"""Journey evaluation: who gets which step of which journey today, and why the rest do not.

``evaluate(journeys, customers, context, as_of) -> Plan`` is vectorised over customers
with NumPy: per journey it computes every customer's anchor day(s) (see
:mod:`huitouke.journeys.model`), keeps the (customer, step, occurrence) whose step is due on
``as_of`` (or within ``catch_up_days`` before), and then decides, in this order:

1. ``already_ordered`` — a branch before the step exits because the customer ordered since
   the journey started (the usual "unless they ordered");
2. ``not_in_audience`` — the audience filters no longer hold (they are checked at every
   step on the customer's state as of the day);
3. ``holdout`` — the customer is in the journey's holdout group (stable hash);
4. the contact rules of messaging (consent, unsubscribe, caps, quiet hours) — transactional
   steps are checked before marketing ones, and each planned message counts towards the
   caps of the messages checked after it.

Only the last step needs per-message Python; everything before it is array arithmetic, so
1M customers and all built-in journeys evaluate in seconds. Customers for whom no step is
due today appear only in the per-journey summary (``not_due``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from huitouke.journeys.calendar import Promotion, holiday_date
from huitouke.journeys.frame import (
    NO_DAY,
    CustomerArrays,
    day_number,
    day_of,
    days_from_civil,
    prepare,
)
from huitouke.journeys.holdout import customer_hashes, holdout_mask
from huitouke.journeys.model import (
    AttributeCondition,
    Audience,
    BranchStep,
    CouponStep,
    Journey,
    SendStep,
    step_schedule,
)

__all__ = [
    "ContactGate",
    "EvaluationContext",
    "GateDecision",
    "Plan",
    "PlannedMessage",
    "evaluate",
]

#: reason codes the engine itself gives (messaging's contact rules add their own)
ROW_COLUMNS = [
    "journey_id",
    "customer_id",
    "step_id",
    "step_index",
    "action",
    "channel",
    "kind",
    "template",
    "coupon_template",
    "occurrence",
    "anchor_date",
    "due_date",
    "group",
    "status",
    "reason_code",
    "send_at",
    "deliver_after",
    "expires_at",
    "dedupe_key",
]


@dataclass(frozen=True)
class PlannedMessage:
    """One step for one customer that passed trigger, audience and holdout."""

    journey_id: str
    customer_id: str
    step_id: str
    occurrence: str
    channel: str
    kind: str
    template: str
    send_at: datetime
    expires_at: datetime
    coupon_template: str | None = None

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.journey_id, self.customer_id, self.step_id, self.occurrence)

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> PlannedMessage:
        """From a plan row; the send time is the delayed one when the rules delayed it."""
        return cls(
            journey_id=r["journey_id"],
            customer_id=r["customer_id"],
            step_id=r["step_id"],
            occurrence=r["occurrence"],
            channel=r["channel"],
            kind=r["kind"],
            template=r["template"],
            send_at=r["deliver_after"] if _present(r.get("deliver_after")) else r["send_at"],
            expires_at=r["expires_at"],
            coupon_template=r["coupon_template"],
        )


def dedupe_key(journey_id: str, customer_id: str, step_id: str, occurrence: str) -> str:
    """The outbox key that makes a step happen at most once: (journey, customer, step, occurrence)."""
    return f"{journey_id}|{customer_id}|{step_id}|{occurrence}"


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason_code: str
    deliver_after: datetime | None = None


class ContactGate(Protocol):
    """The contact rules seen from the engine (implemented over ``messaging.rules``)."""

    def prepare(self, customer_ids: Sequence[str]) -> None:
        """Load what the checks of these customers need, in one batch."""
        ...

    def check(self, message: PlannedMessage) -> GateDecision:
        """Decide one message; an allowed one counts towards later checks (caps)."""
        ...


@dataclass
class EvaluationContext:
    """Everything evaluation needs besides the journeys and the customers frame."""

    #: the merchant's zone (``HUITOUKE_TIMEZONE``): local days, send times
    timezone: str
    #: salt of the holdout hash; changing it reshuffles every holdout group
    salt: str = "huitouke-holdout-v1"
    #: order events: columns customer_id, event, at (UTC), order_id
    events: pd.DataFrame | None = None
    promotions: Sequence[Promotion] = ()
    #: the contact rules; ``None`` plans every message that passes audience and holdout
    gate: ContactGate | None = None
    #: list every due row, also customers outside the audience of broadcast triggers
    #: (schedule, holiday, promotion) — for explaining one customer; otherwise those are
    #: only counted in the summary
    explain_all: bool = False


@dataclass
class Plan:
    """The result of one evaluation: every due step with its status and reason."""

    as_of: date
    rows: pd.DataFrame
    summary: list[dict[str, Any]]
    journeys: dict[str, Journey]

    def planned(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "planned"]

    def skipped(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "skipped"]

    def assignments(self) -> pd.DataFrame:
        """(journey, customer, occurrence) entered today in the treatment or holdout group —
        every due row that passed branch and audience, first due step only."""
        r = self.rows[self.rows["group"].isin(["treatment", "holdout"])]
        r = r.sort_values(["journey_id", "customer_id", "occurrence", "due_date", "step_index"])
        r = r.drop_duplicates(["journey_id", "customer_id", "occurrence"])
        return r[["journey_id", "customer_id", "occurrence", "group", "anchor_date", "due_date"]]

    def explain(self, lang: str = "en", *, customer_id: str | None = None) -> list[dict[str, Any]]:
        """Every due step as a JSON-ready dict with the reason in words (the dry run)."""
        rows = (
            self.rows if customer_id is None else self.rows[self.rows["customer_id"] == customer_id]
        )
        out = []
        for r in _records(rows):
            out.append(
                {
                    "journey": r["journey_id"],
                    "customer_id": r["customer_id"],
                    "step": r["step_id"],
                    "action": r["action"],
                    "channel": r["channel"] or None,
                    "template": r["template"] or None,
                    "coupon_template": r["coupon_template"],
                    "occurrence": r["occurrence"],
                    "due_date": r["due_date"].isoformat(),
                    "group": r["group"] or None,
                    "status": r["status"],
                    "reason_code": r["reason_code"],
                    "reason": reason_text(r["reason_code"], lang),
                    "send_at": _iso(
                        r["deliver_after"] if _present(r["deliver_after"]) else r["send_at"]
                    ),
                    "dedupe_key": r["dedupe_key"],
                }
            )
        return out

    def to_json(self, lang: str = "en", *, limit: int | None = None) -> dict[str, Any]:
        items = self.explain(lang)
        return {
            "as_of": self.as_of.isoformat(),
            "summary": self.summary,
            "items": items if limit is None else items[:limit],
            "items_total": len(items),
        }

    def messages(self) -> list[PlannedMessage]:
        return [PlannedMessage.from_record(r) for r in _records(self.planned())]


def _present(v: Any) -> bool:
    return v is not None and not pd.isna(v)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in rec.items()} for rec in df.to_dict("records")]


def _iso(v: Any) -> str | None:
    return v.isoformat() if isinstance(v, datetime) else None


def reason_text(code: str, lang: str = "en") -> str:
    """The reason in words: the engine's own, or messaging's ``reason.<code>`` text."""
    from huitouke.i18n import t

    for key in (f"journeys.reason.{code}", f"reason.{code}"):
        try:
            return t(key, lang)
        except KeyError:
            continue
    return code


# --- anchors ------------------------------------------------------------------------------
@dataclass
class _Anchors:
    cust: npt.NDArray[np.int64]
    anchor: npt.NDArray[np.int64]
    #: occurrence keys aligned with cust, or None for "ISO date of the anchor"
    occ: npt.NDArray[np.object_] | None = None
    #: for events, the day after which an order counts as "ordered since"
    ref: npt.NDArray[np.int64] | None = None


def _period_key(as_of: date, every: str) -> str:
    if every == "day":
        return as_of.isoformat()
    if every == "week":
        y, w, _ = as_of.isocalendar()
        return f"{y}-W{w:02d}"
    return f"{as_of.year}-{as_of.month:02d}"


def _anchors(
    j: Journey, ca: CustomerArrays, ctx: EvaluationContext, lo: int, hi: int, as_of: date
) -> _Anchors:
    """Anchors whose day lies in [lo, hi] (the union of the due windows of all steps)."""
    trig = j.trigger
    n = len(ca)
    all_idx = np.arange(n, dtype=np.int64)
    if trig.type == "schedule":
        day = day_number(as_of)
        assert trig.every is not None
        key = _period_key(as_of, trig.every)
        if not lo <= day <= hi:
            return _Anchors(all_idx[:0], all_idx[:0])
        return _Anchors(all_idx, np.full(n, day), np.full(n, key, dtype=object))
    if trig.type == "date":
        assert trig.field is not None
        days = ca.date_days.get(trig.field)
        if days is None:
            return _Anchors(all_idx[:0], all_idx[:0])
        m = (days >= lo) & (days <= hi)
        return _Anchors(all_idx[m], days[m])
    if trig.type == "birthday":
        has = ca.birthday_month > 0
        parts_c, parts_a, parts_o = [], [], []
        for year in range(day_of(lo).year, day_of(hi).year + 1):
            y = np.full(n, year, dtype=np.int64)
            dd = ca.birthday_day.copy()
            leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
            if not leap:
                dd[(ca.birthday_month == 2) & (dd == 29)] = 28
            a = days_from_civil(y, ca.birthday_month, dd)
            m = has & (a >= lo) & (a <= hi)
            parts_c.append(all_idx[m])
            parts_a.append(a[m])
            parts_o.append(np.full(int(m.sum()), str(year), dtype=object))
        return _Anchors(np.concatenate(parts_c), np.concatenate(parts_a), np.concatenate(parts_o))
    if trig.type in ("holiday", "promotion"):
        dates: list[tuple[str, int]] = []
        if trig.type == "holiday":
            for key in trig.holidays or []:
                for year in range(day_of(lo).year, day_of(hi).year + 1):
                    d = day_number(holiday_date(key, year))
                    if lo <= d <= hi:
                        dates.append((f"{key}-{year}", d))
        else:
            for p in ctx.promotions:
                if trig.promotions and p.id not in trig.promotions:
                    continue
                if trig.big_only and not p.big:
                    continue
                d = day_number(p.date)
                if lo <= d <= hi:
                    dates.append((p.id, d))
        if not dates:
            return _Anchors(all_idx[:0], all_idx[:0])
        return _Anchors(
            np.concatenate([all_idx for _ in dates]),
            np.concatenate([np.full(n, d, dtype=np.int64) for _, d in dates]),
            np.concatenate([np.full(n, k, dtype=object) for k, _ in dates]),
        )
    # event
    ev = ctx.events
    if ev is None or len(ev) == 0:
        return _Anchors(all_idx[:0], all_idx[:0])
    ev = ev[ev["event"] == trig.event]
    at = (
        pd.to_datetime(ev["at"], utc=True)
        .dt.tz_convert(ZoneInfo(ctx.timezone))
        .dt.tz_localize(None)
    )
    days = at.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    m = (days >= lo) & (days <= hi)
    ev = ev[m]
    days = days[m]
    cust = pd.Index(ca.ids).get_indexer(pd.Index(ev["customer_id"].astype(str)))
    known = cust >= 0
    return _Anchors(
        cust[known].astype(np.int64),
        days[known],
        ev["order_id"].astype(str).to_numpy(dtype=object)[known],
        days[known],
    )


# --- audience -----------------------------------------------------------------------------
def _col(ca: CustomerArrays, name: str) -> pd.Series | None:
    return ca.frame[name] if name in ca.frame.columns else None


def audience_mask(aud: Audience, ca: CustomerArrays, as_of_day: int) -> npt.NDArray[np.bool_]:
    """Which customers match every filter of ``aud`` on ``as_of_day``."""
    n = len(ca)
    m = np.ones(n, dtype=bool)
    none = np.zeros(n, dtype=bool)

    def isin(col: str, values: list[str] | None) -> None:
        nonlocal m
        if values is None:
            return
        s = _col(ca, col)
        m &= none if s is None else s.isin(values).to_numpy()

    isin("layer", list(aud.layers) if aud.layers is not None else None)
    isin("rfm_segment", aud.rfm_segments)
    isin("lifecycle", list(aud.lifecycles) if aud.lifecycles is not None else None)
    if aud.orders_min is not None:
        m &= ca.orders >= aud.orders_min
    if aud.orders_max is not None:
        m &= ca.orders <= aud.orders_max
    since = as_of_day - ca.last_order_day
    has_order = ca.last_order_day != NO_DAY
    if aud.bought_within_days is not None:
        m &= has_order & (since <= aud.bought_within_days)
    if aud.not_bought_within_days is not None:
        m &= ~has_order | (since > aud.not_bought_within_days)
    for bound, op in ((aud.p_alive_min, np.greater_equal), (aud.p_alive_max, np.less_equal)):
        if bound is not None:
            s = _col(ca, "p_alive")
            m &= none if s is None else op(s.to_numpy(dtype=float, na_value=np.nan), bound)
    if aud.points_expiring_within_days is not None:
        d = ca.date_days.get("points_expiring_on")
        if d is None:
            m &= none
        else:
            m &= (
                (d != NO_DAY)
                & (d >= as_of_day)
                & (d - as_of_day <= aud.points_expiring_within_days)
            )
    if aud.near_next_tier_ratio is not None:
        s = _col(ca, "next_tier_gap_ratio")
        if s is None:
            m &= none
        else:
            v = s.to_numpy(dtype=float, na_value=np.nan)
            m &= (v > 0) & (v <= aud.near_next_tier_ratio)
    if aud.stamps_to_reward_max is not None:
        s = _col(ca, "stamps_to_reward")
        if s is None:
            m &= none
        else:
            v = s.to_numpy(dtype=float, na_value=np.nan)
            m &= (v >= 1) & (v <= aud.stamps_to_reward_max)
    if aud.has_birthday is not None:
        m &= (ca.birthday_month > 0) == aud.has_birthday
    tags = _col(ca, "tags")
    for kind, wanted, test in (
        ("any", aud.tags_any, lambda have, want: bool(want.intersection(have))),
        ("all", aud.tags_all, lambda have, want: want.issubset(have)),
        ("none", aud.tags_none, lambda have, want: not want.intersection(have)),
    ):
        if wanted is None:
            continue
        want = set(wanted)
        if tags is None:  # nobody has a tag
            m &= ~none if kind == "none" else none
            continue
        m &= tags.map(lambda v, w=want, f=test: f(set(v or ()), w)).to_numpy(dtype=bool)
    for cond in aud.attributes or ():
        values = _col(ca, "attributes")
        if values is None:
            m &= np.full(n, attribute_matches(cond, None), dtype=bool)
            continue
        m &= values.map(
            lambda v, c=cond: attribute_matches(
                c, (v or {}).get(c.key) if isinstance(v, dict) else None
            )
        ).to_numpy(dtype=bool)
    return m


def _comparable(have: Any, value: Any) -> tuple[Any, Any] | None:
    """``have`` and ``value`` as one type (number, date or text), or None when they are not
    comparable (a text against a number attribute, a malformed date)."""
    if isinstance(have, bool) or have is None:
        return None
    if isinstance(have, (int, float, Decimal)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Decimal(str(have)), Decimal(str(value))
        try:
            return Decimal(str(have)), Decimal(str(value).strip())
        except InvalidOperation:
            return None
    if isinstance(have, date):
        try:
            return have, date.fromisoformat(str(value).strip())
        except ValueError:
            return None
    return str(have), str(value)


def attribute_matches(cond: AttributeCondition, have: Any) -> bool:
    """Whether one customer's attribute value ``have`` (None: no value) meets ``cond``."""
    if cond.op == "set":
        return have is not None
    if cond.op == "unset":
        return have is None
    if have is None:
        return cond.op == "ne"
    if cond.op == "in":
        options = cond.value if isinstance(cond.value, list) else []
        for option in options:
            pair = _comparable(have, option)
            if pair is not None and pair[0] == pair[1]:
                return True
        return False
    pair = _comparable(have, cond.value)
    if pair is None:
        return cond.op == "ne"
    a, b = pair
    if cond.op == "eq":
        return bool(a == b)
    if cond.op == "ne":
        return bool(a != b)
    if cond.op == "lt":
        return bool(a < b)
    if cond.op == "le":
        return bool(a <= b)
    if cond.op == "gt":
        return bool(a > b)
    return bool(a >= b)


# --- evaluation -----------------------------------------------------------------------------
def _local_instant(day: int, at: Any, zone: ZoneInfo) -> datetime:
    return datetime.combine(day_of(day), at, tzinfo=zone).astimezone(UTC)


def evaluate(
    journeys: Sequence[Journey],
    customers: pd.DataFrame | CustomerArrays,
    context: EvaluationContext,
    as_of: date,
) -> Plan:
    """Evaluate ``journeys`` for every customer on ``as_of`` (a date in the merchant's zone)."""
    ca = (
        customers if isinstance(customers, CustomerArrays) else prepare(customers, context.timezone)
    )
    zone = ZoneInfo(context.timezone)
    today = day_number(as_of)
    hashes: npt.NDArray[np.uint64] | None = None
    frames: list[pd.DataFrame] = []
    summary: list[dict[str, Any]] = []
    # transactional care first, then by priority, so caps favour care (BRIEF rule 7)
    order = sorted(journeys, key=lambda j: (not _is_transactional(j), j.priority, j.id))
    for j in order:
        s: dict[str, Any] = {"journey_id": j.id, "active": j.enabled and j.active.contains(as_of)}
        if not s["active"]:
            summary.append({**s, "due_customers": 0, "by_reason": {}})
            continue
        sched = step_schedule(j)
        lo = today - j.catch_up_days - max(off for _, off, _ in sched)
        hi = today - min(off for _, off, _ in sched)
        anchors = _anchors(j, ca, context, lo, hi, as_of)
        aud = audience_mask(j.audience, ca, today)
        broadcast = j.trigger.type in ("schedule", "holiday", "promotion")
        dropped = 0
        due_customers: list[npt.NDArray[np.int64]] = []
        parts = []
        for step_index, off, branches in sched:
            due_day = anchors.anchor + off
            m = (due_day >= today - j.catch_up_days) & (due_day <= today)
            if not m.any():
                continue
            cust = anchors.cust[m]
            anchor = anchors.anchor[m]
            reason = np.full(len(cust), "planned", dtype=object)
            # branch "ordered since the journey started" (start = min(anchor, first step day))
            ref = (
                anchors.ref[m]
                if anchors.ref is not None
                else np.minimum(anchor, anchor + j.trigger.offset_days)
            )
            ordered = ca.last_order_day[cust] > ref
            for b in branches:
                step = j.steps[b]
                assert isinstance(step, BranchStep)
                if step.if_ordered == "exit":
                    reason[(reason == "planned") & ordered] = "already_ordered"
                if step.if_not_ordered == "exit":
                    reason[(reason == "planned") & ~ordered] = "not_ordered"
            reason[(reason == "planned") & ~aud[cust]] = "not_in_audience"
            occ = anchors.occ[m] if anchors.occ is not None else None
            if broadcast and not context.explain_all:
                # a broadcast trigger is "due" for everybody: list only the audience
                out = reason == "not_in_audience"
                dropped += int(out.sum())
                keep = ~out
                cust, anchor, reason = cust[keep], anchor[keep], reason[keep]
                occ = occ[keep] if occ is not None else None
            if occ is None:
                occ = np.array(_days_to_isodates(anchor), dtype=object)
            due_customers.append(cust)
            parts.append((step_index, off, cust, anchor, occ, reason))
        n_due = len(np.unique(np.concatenate(due_customers))) if due_customers else 0
        if broadcast and dropped:
            n_due = len(ca)
        if not any(len(p[2]) for p in parts):
            summary.append(
                {
                    **s,
                    "due_customers": n_due,
                    "by_reason": {"not_in_audience": dropped} if dropped else {},
                }
            )
            continue
        if hashes is None:
            hashes = customer_hashes(ca.ids, context.salt)
        rows = _rows_for_journey(j, parts, ca, hashes, context, zone)
        frames.append(rows)
        by_reason = rows["reason_code"].value_counts().to_dict()
        if dropped:
            by_reason["not_in_audience"] = by_reason.get("not_in_audience", 0) + dropped
        summary.append({**s, "due_customers": n_due, "by_reason": by_reason})
    rows_df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)
    if context.gate is not None and len(rows_df):
        rows_df = _apply_gate(rows_df, context.gate)
        by_j = rows_df.groupby("journey_id")["reason_code"].value_counts()
        for s in summary:
            if s["journey_id"] in by_j.index.get_level_values(0):
                kept = s["by_reason"].get("not_in_audience", 0) - int(
                    by_j[s["journey_id"]].get("not_in_audience", 0)
                )
                s["by_reason"] = {str(k): int(v) for k, v in by_j[s["journey_id"]].items()}
                if kept:
                    s["by_reason"]["not_in_audience"] = (
                        s["by_reason"].get("not_in_audience", 0) + kept
                    )
    for s in summary:
        s["by_reason"] = {str(k): int(v) for k, v in s["by_reason"].items()}
        s["planned"] = s["by_reason"].get("planned", 0)
        s["customers"] = len(ca)
        s["not_due"] = len(ca) - s["due_customers"]
    return Plan(as_of=as_of, rows=rows_df, summary=summary, journeys={j.id: j for j in journeys})


def _is_transactional(j: Journey) -> bool:
    return all(not isinstance(s, SendStep) or s.kind == "transactional" for s in j.steps)


def _rows_for_journey(
    j: Journey,
    parts: list[tuple[int, int, Any, Any, Any, Any]],
    ca: CustomerArrays,
    hashes: npt.NDArray[np.uint64],
    ctx: EvaluationContext,
    zone: ZoneInfo,
) -> pd.DataFrame:
    out = []
    for step_index, off, cust, anchor, occ, reason in parts:
        step = j.steps[step_index]
        held = holdout_mask(j.id, hashes[cust], j.holdout, ctx.salt)
        passed = reason == "planned"
        group = np.where(passed, np.where(held, "holdout", "treatment"), "")
        reason = reason.copy()
        reason[passed & held] = "holdout"
        due = anchor + off
        # send time: the trigger's local time on the due day (past ones are sent at once)
        uniq = np.unique(due)
        send_map = {int(d): _local_instant(int(d), j.trigger.at, zone) for d in uniq}
        channel: str
        if isinstance(step, SendStep):
            action, channel, kind, template = "send", step.channel, step.kind, step.template
            coupon, hours = step.coupon_template, step.expires_after_hours
        else:
            assert isinstance(step, CouponStep)
            action, channel, kind, template = "coupon", "", "marketing", ""
            coupon, hours = step.coupon_template, 24 * 7
        send_at = [send_map[int(d)] for d in due]
        sid = j.step_id(step_index)
        df = pd.DataFrame(
            {
                "journey_id": j.id,
                "customer_id": ca.ids[cust],
                "step_id": sid,
                "step_index": step_index,
                "action": action,
                "channel": channel,
                "kind": kind,
                "template": template,
                "coupon_template": coupon,
                "occurrence": occ,
                "anchor_date": _days_to_dates(anchor),
                "due_date": _days_to_dates(due),
                "group": group,
                "status": np.where(reason == "planned", "planned", "skipped"),
                "reason_code": reason,
                "send_at": send_at,
                "deliver_after": None,
                "expires_at": [t + timedelta(hours=hours) for t in send_at],
            }
        )
        df["dedupe_key"] = (
            df["journey_id"]
            + "|"
            + df["customer_id"]
            + "|"
            + df["step_id"]
            + "|"
            + df["occurrence"].astype(str)
        )
        out.append(df)
    return pd.concat(out, ignore_index=True)[ROW_COLUMNS]


def _days_to_isodates(days: npt.NDArray[np.int64]) -> list[str]:
    return [d.isoformat() for d in _days_to_dates(days)]


def _days_to_dates(days: npt.NDArray[np.int64]) -> list[date]:
    cache: dict[int, date] = {}
    res = []
    for d in days.tolist():
        v = cache.get(d)
        if v is None:
            v = cache[d] = day_of(d)
        res.append(v)
    return res


def _apply_gate(rows: pd.DataFrame, gate: ContactGate) -> pd.DataFrame:
    """Run the contact rules over the planned send rows, in the order evaluation sorted them
    (transactional first), so each allowed message counts towards the caps of later ones."""
    idx = np.flatnonzero(
        (rows["status"] == "planned").to_numpy() & (rows["action"] == "send").to_numpy()
    )
    if len(idx) == 0:
        return rows
    gate.prepare(sorted(set(rows["customer_id"].iloc[idx])))
    reasons = rows["reason_code"].to_numpy(dtype=object).copy()
    status = rows["status"].to_numpy(dtype=object).copy()
    deliver = rows["deliver_after"].to_numpy(dtype=object).copy()
    # within one journey, earlier steps first; the journeys are already in priority order
    sub = rows.iloc[idx]
    cols = [
        sub[c].tolist()
        for c in (
            "journey_id",
            "customer_id",
            "step_id",
            "occurrence",
            "channel",
            "kind",
            "template",
            "send_at",
            "expires_at",
            "coupon_template",
        )
    ]
    for pos, vals in zip(idx, zip(*cols, strict=True), strict=True):
        msg = PlannedMessage(*vals)
        d = gate.check(msg)
        if not d.allowed:
            reasons[pos] = d.reason_code
            status[pos] = "skipped"
        elif d.deliver_after is not None and d.deliver_after > msg.send_at:
            # delayed, not dropped (quiet hours, care first): still planned, with the reason
            deliver[pos] = d.deliver_after
            reasons[pos] = d.reason_code
    rows = rows.copy()
    rows["reason_code"] = reasons
    rows["status"] = status
    # object dtype: a mix of None and datetimes must not become NaT
    rows["deliver_after"] = pd.Series(deliver, index=rows.index, dtype=object)
    return rows
