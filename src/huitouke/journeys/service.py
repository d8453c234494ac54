"""Running journeys against the store: one evaluation day as one unit of work.

``run_journeys`` builds the customers frame (analytics + models + loyalty + profiles),
evaluates, and — unless it is a dry run — inside one transaction records the holdout and
treatment assignments, issues the coupons (idempotent by the step's dedupe key), renders each
message in the customer's language and enqueues it in messaging's outbox (idempotent by
(journey, customer, step, occurrence)). Running the same day twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, select

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import InputError, NotFoundError
from huitouke.i18n import t
from huitouke.journeys.calendar import HOLIDAYS, Promotion, default_promotions
from huitouke.journeys.engine import EvaluationContext, Plan, _present, _records, evaluate
from huitouke.journeys.gate import MessagingGate, db_loader
from huitouke.journeys.model import BranchStep, CouponStep, Journey, SendStep
from huitouke.journeys.tables import journey_assignments, order_events
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers as customers_t
from huitouke.store.tables import orders as orders_t

__all__ = ["RunResult", "load_events", "run_journeys"]


@dataclass
class RunResult:
    plan: Plan
    dry_run: bool
    assignments_inserted: int = 0
    coupons_issued: int = 0
    enqueued: int = 0
    duplicates: int = 0
    skipped_at_render: dict[str, int] = field(default_factory=dict)

    def to_json(self, lang: str = "en", *, limit: int | None = None) -> dict[str, Any]:
        out = self.plan.to_json(lang, limit=limit)
        out["dry_run"] = self.dry_run
        out["written"] = {
            "assignments": self.assignments_inserted,
            "coupons": self.coupons_issued,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "skipped_at_render": self.skipped_at_render,
        }
        return out


def load_events(conn: Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Order events in ``[start, end)``: fulfilment events plus ``order_paid`` from orders."""
    rows = [
        {"customer_id": c, "event": e, "at": a, "order_id": o}
        for o, e, c, a in conn.execute(
            select(
                order_events.c.order_id,
                order_events.c.event,
                order_events.c.customer_id,
                order_events.c.at,
            ).where(order_events.c.at >= start, order_events.c.at < end)
        )
    ]
    rows += [
        {"customer_id": c, "event": "order_paid", "at": a, "order_id": o}
        for o, c, a in conn.execute(
            select(orders_t.c.order_id, orders_t.c.customer_id, orders_t.c.ordered_at).where(
                orders_t.c.ordered_at >= start,
                orders_t.c.ordered_at < end,
                orders_t.c.status.in_(COUNTED_STATUSES),
            )
        )
    ]
    return pd.DataFrame(rows, columns=["customer_id", "event", "at", "order_id"])


def record_event(
    conn: Connection, order_id: str, event: str, customer_id: str, at: datetime
) -> bool:
    """Record a fulfilment event once (idempotent by order and event)."""
    if event not in ("order_shipped", "order_delivered", "order_completed", "order_paid"):
        raise InputError(
            f"unknown order event {event!r}",
            code="journey.bad_event",
            message_zh=f"未知的订单事件 {event!r}",
            details={"field": "event"},
        )
    exists = conn.execute(
        select(order_events.c.order_id).where(
            order_events.c.order_id == order_id, order_events.c.event == event
        )
    ).first()
    if exists:
        return False
    conn.execute(
        order_events.insert().values(
            order_id=order_id,
            event=event,
            customer_id=customer_id,
            at=at,
            recorded_at=datetime.now(UTC),
        )
    )
    return True


def _suppress_steps(journeys: Sequence[Journey]) -> set[tuple[str, str]]:
    """(journey, step) of marketing sends after an exit-if-ordered branch: the dispatcher
    drops them if the customer orders between planning and sending."""
    out = set()
    for j in journeys:
        seen_branch = False
        for i, s in enumerate(j.steps):
            if isinstance(s, BranchStep) and s.if_ordered == "exit":
                seen_branch = True
            if isinstance(s, SendStep) and s.kind == "marketing" and seen_branch:
                out.add((j.id, j.step_id(i)))
    return out


def _wants_recommendations(journeys: Sequence[Journey]) -> bool:
    return any(isinstance(s, SendStep) and s.related_products for j in journeys for s in j.steps)


def _product_names(store: Store) -> dict[str, str]:
    from huitouke.store.tables import products

    with store.connect() as conn:
        return {
            r.sku: r.name or r.sku for r in conn.execute(select(products.c.sku, products.c.name))
        }


def run_journeys(
    store: Store,
    journeys: Sequence[Journey],
    as_of: date,
    *,
    settings: Settings,
    customers: pd.DataFrame | None = None,
    promotions: Sequence[Promotion] | None = None,
    dry_run: bool = True,
    now: datetime | None = None,
    loyalty: Any = None,
    recommender: Any = None,
    explain_all: bool = False,
) -> RunResult:
    """Evaluate ``journeys`` on ``as_of`` and (unless ``dry_run``) write the results."""
    from huitouke.journeys.integration import customers_frame
    from huitouke.messaging.rules import ContactPolicy

    zone = ZoneInfo(settings.timezone)
    now = now or datetime.combine(as_of, time(0), tzinfo=zone).astimezone(UTC)
    policy = ContactPolicy.from_settings(settings)
    if customers is None:
        customers = customers_frame(store, as_of, settings=settings, loyalty=loyalty)
    if promotions is None:
        promotions = default_promotions(as_of - timedelta(days=60), as_of + timedelta(days=60))
    start = datetime.combine(as_of - timedelta(days=40), time(0), tzinfo=zone)
    end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=zone)
    suppress = _suppress_steps(journeys)
    if recommender is None and not dry_run and _wants_recommendations(journeys):
        from huitouke.journeys.associations import Recommender, baskets_from_store

        baskets = baskets_from_store(store)
        if len(baskets):
            recommender = Recommender.fit(
                baskets, kind="both", min_count=2, names=_product_names(store)
            )
    with store.begin() as conn:
        events = load_events(conn, start, end)
        gate = MessagingGate(
            policy,
            db_loader(conn, policy, now),
            planned_at=now,
            suppress_if_ordered=lambda m: (m.journey_id, m.step_id) in suppress,
        )
        ctx = EvaluationContext(
            timezone=settings.timezone,
            salt=settings.holdout_salt,
            events=events,
            promotions=promotions,
            gate=gate,
            explain_all=explain_all,
        )
        plan = evaluate(journeys, customers, ctx, as_of)
        result = RunResult(plan=plan, dry_run=dry_run)
        if dry_run:
            conn.rollback()
            return result
        _write(conn, result, settings, now, promotions, loyalty, recommender, suppress)
    return result


def _insert_assignments(conn: Connection, plan: Plan, now: datetime) -> int:
    a = plan.assignments()
    if a.empty:
        return 0
    n = 0
    for chunk_start in range(0, len(a), 5000):
        part = a.iloc[chunk_start : chunk_start + 5000]
        keys = list(zip(part["journey_id"], part["customer_id"], part["occurrence"], strict=True))
        existing: set[Any] = set()
        jc = journey_assignments.c
        for jid in set(part["journey_id"]):
            cids = [k[1] for k in keys if k[0] == jid]
            for i in range(0, len(cids), 500):
                existing.update(
                    conn.execute(
                        select(jc.journey_id, jc.customer_id, jc.occurrence).where(
                            jc.journey_id == jid, jc.customer_id.in_(cids[i : i + 500])
                        )
                    ).all()
                )
        rows = [
            {
                "journey_id": r["journey_id"],
                "customer_id": r["customer_id"],
                "occurrence": r["occurrence"],
                "group": r["group"],
                "anchor_date": r["anchor_date"],
                "assigned_on": r["due_date"],
                "assigned_at": now,
            }
            for r in _records(part)
            if (r["journey_id"], r["customer_id"], r["occurrence"]) not in existing
        ]
        if rows:
            conn.execute(journey_assignments.insert(), rows)
            n += len(rows)
    return n


def _profiles(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    c = customers_t.c
    ids = list(ids)
    for i in range(0, len(ids), 500):
        for r in conn.execute(
            select(c.customer_id, c.name, c.phone, c.email, c.birthday, c.tags, c.attributes).where(
                c.customer_id.in_(ids[i : i + 500])
            )
        ):
            out[r.customer_id] = dict(r._mapping)
    return out


def _occasion(occurrence: str, promotions: Mapping[str, Promotion], lang: str) -> str:
    if occurrence in promotions:
        return promotions[occurrence].name.get(lang)
    key = occurrence.rsplit("-", 1)[0]
    if key in HOLIDAYS:
        return HOLIDAYS[key].name.get(lang)
    return ""


def _write(
    conn: Connection,
    result: RunResult,
    settings: Settings,
    now: datetime,
    promotions: Sequence[Promotion],
    loyalty: Any,
    recommender: Any,
    suppress: set[tuple[str, str]],
) -> None:
    from huitouke.measurement.links import tracked_url
    from huitouke.messaging.outbox import OutboxMessage, enqueue
    from huitouke.messaging.templates import MessageTemplate, render, template_context

    plan = result.plan
    result.assignments_inserted = _insert_assignments(conn, plan, now)
    planned = _records(plan.planned())
    if not planned:
        return
    profiles = _profiles(conn, sorted({r["customer_id"] for r in planned}))
    promos = {p.id: p for p in promotions}
    coupons: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    skipped: dict[str, int] = {}
    known_templates: set[str] | None = None
    if loyalty is not None:
        known_templates = {tpl.id for tpl in loyalty.program.coupon_templates}

    def coupon_for(j: Journey, r: dict[str, Any], template_id: str) -> dict[str, Any] | None:
        key = (j.id, r["customer_id"], r["occurrence"], template_id)
        if key in coupons:
            return coupons[key]
        if loyalty is None or (known_templates is not None and template_id not in known_templates):
            return None
        # the coupon step's own dedupe key: a send that needs the coupon finds the same one
        step_id = next(
            (
                j.step_id(i)
                for i, s in enumerate(j.steps)
                if isinstance(s, CouponStep) and s.coupon_template == template_id
            ),
            r["step_id"],
        )
        idem = f"{j.id}|{r['customer_id']}|{step_id}|{r['occurrence']}"
        coupons[key] = loyalty.issue_coupon(
            conn, template_id, r["customer_id"], idempotency_key=idem
        )
        return coupons[key]

    messages = []
    for r in planned:
        j = plan.journeys[r["journey_id"]]
        step = j.steps[int(r["step_index"])]
        if isinstance(step, CouponStep):
            if coupon_for(j, r, step.coupon_template) is None:
                skipped["coupon.unknown_template"] = skipped.get("coupon.unknown_template", 0) + 1
            else:
                result.coupons_issued += 1
            continue
        assert isinstance(step, SendStep)
        prof = profiles.get(r["customer_id"], {"customer_id": r["customer_id"]})
        attrs = prof.get("attributes") or {}
        lang: str = attrs["lang"] if attrs.get("lang") in ("zh", "en") else settings.lang
        coupon = None
        if step.coupon_template:
            coupon = coupon_for(j, r, step.coupon_template)
            if coupon is None:
                skipped["coupon.unknown_template"] = skipped.get("coupon.unknown_template", 0) + 1
                continue
        recs: list[dict[str, Any]] = []
        if step.related_products and recommender is not None:
            recs = recommender.for_customer(r["customer_id"], k=step.related_products)
        link = tracked_url(
            settings.public_base_url,
            settings.secret_key,
            journey_id=j.id,
            customer_id=r["customer_id"],
            step_id=r["step_id"],
            occurrence=r["occurrence"],
            url=step.link or settings.public_base_url,
        )
        due: date = r["due_date"]
        anchor: date = r["anchor_date"]
        extra = {
            "occasion": _occasion(r["occurrence"], promos, lang),
            "days_left": (anchor - due).days,
            "link": link,
            "points": {
                "expiring": attrs.get("points_expiring", ""),
                "expiring_on": anchor.isoformat(),
            },
            "tier": {"next": attrs.get("next_tier", t("journeys.word.next_tier", lang))},
            "stamps": {"reward": attrs.get("stamp_reward", t("journeys.word.reward", lang))},
        }
        order = {"id": r["occurrence"]} if j.trigger.type == "event" else None
        tpl = j.templates[step.template]
        mt = MessageTemplate(
            name=f"{j.id}.{step.template}",
            channel=step.channel,
            kind=step.kind,
            body={"zh": tpl.zh.body, "en": tpl.en.body},
            subject={k: v for k, v in (("zh", tpl.zh.subject), ("en", tpl.en.subject)) if v},
        )
        ctx = template_context(
            prof,
            order=order,
            coupon=coupon,
            recommendations=recs,
            shop_name=settings.sms_sign_name,
            extra=extra,
        )
        rendered = render(
            mt, ctx, lang, sms_sign_name=settings.sms_sign_name, sms_footer=settings.sms_footer
        )
        recipient = (
            prof.get("phone")
            if step.channel == "sms"
            else prof.get("email")
            if step.channel == "email"
            else None
        )
        send_at = r["deliver_after"] if _present(r["deliver_after"]) else r["send_at"]
        messages.append(
            OutboxMessage(
                journey_id=j.id,
                customer_id=r["customer_id"],
                step_id=r["step_id"],
                occurrence=r["occurrence"],
                channel=step.channel,
                rendered=rendered.to_payload(),
                kind=step.kind,
                recipient=recipient,
                payload={"coupon": coupon["code"] if coupon else None, "link": link},
                planned_at=now,
                not_before=send_at,
                expires_at=r["expires_at"],
                suppress_if_ordered=(j.id, r["step_id"]) in suppress,
                campaign_id=j.id,
            )
        )
    counts = enqueue(conn, messages, now=now)
    result.enqueued = counts.inserted
    result.duplicates = counts.duplicates
    result.skipped_at_render = skipped


def get_journey(journeys: Sequence[Journey], journey_id: str) -> Journey:
    for j in journeys:
        if j.id == journey_id:
            return j
    raise NotFoundError(
        f"no journey {journey_id!r}",
        code="journey.not_found",
        message_zh=f"没有旅程 {journey_id!r}",
        details={"journey_id": journey_id},
    )
