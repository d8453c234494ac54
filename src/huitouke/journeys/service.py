"""Running journeys against the store: one evaluation day, one unit of work per journey.

``run_journeys`` builds the customers frame (analytics + models + loyalty + profiles) and
evaluates. Then, per journey: the dry run renders every message it plans (with a preview of
each coupon) and reports what would fail; the real run, in one transaction per journey,
records the holdout and treatment assignments, issues the coupons (idempotent by the step's
dedupe key), renders each message in the customer's language and enqueues it in messaging's
outbox (idempotent by (journey, customer, step, occurrence)). A journey that fails (a
template that does not render, a coupon that cannot be issued) writes nothing and is reported
with its error; the other journeys of the run go on. Running the same day twice changes
nothing.

A coupon is issued only to a customer the journey's messages may reach (consent and
unsubscribes on at least one of its send channels), unless the journey says
``coupons_for_unreachable: true``; the others are skipped as ``coupon_unreachable``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, select

from huitouke.core.orders import COUNTED_STATUSES, order_ref
from huitouke.errors import HuitoukeError, InputError, NotFoundError
from huitouke.i18n import t
from huitouke.journeys.calendar import HOLIDAYS, Promotion, default_promotions
from huitouke.journeys.days import claim_day, claim_days, days_run
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
    #: journeys that wrote nothing (or, in a dry run, would fail), with their error
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: things the merchant should fix, e.g. an empty shop name a template prints
    warnings: list[dict[str, Any]] = field(default_factory=list)
    #: a dry run's rendered messages (with coupon previews), as a real run would enqueue them
    previews: list[Any] = field(default_factory=list)
    #: journeys left alone: already run for this day (``journeys.days``)
    already_run: list[str] = field(default_factory=list)

    def to_json(self, lang: str = "en", *, limit: int | None = None) -> dict[str, Any]:
        out = self.plan.to_json(lang, limit=limit)
        out["dry_run"] = self.dry_run
        out["failures"] = [_localized(f, lang) for f in self.failures]
        out["warnings"] = [_localized(w, lang) for w in self.warnings]
        out["already_run"] = list(self.already_run)
        out["written"] = {
            "assignments": self.assignments_inserted,
            "coupons": self.coupons_issued,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "skipped_at_render": self.skipped_at_render,
        }
        return out


def _localized(entry: Mapping[str, Any], lang: str) -> dict[str, Any]:
    out = {k: v for k, v in entry.items() if k not in ("message", "message_zh")}
    out["message"] = entry["message_zh"] if lang == "zh" else entry["message"]
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
        {"customer_id": c, "event": "order_paid", "at": a, "order_id": order_ref(s, o)}
        for s, o, c, a in conn.execute(
            select(
                orders_t.c.source,
                orders_t.c.order_id,
                orders_t.c.customer_id,
                orders_t.c.ordered_at,
            ).where(
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
    run_by: str = "run",
) -> RunResult:
    """Evaluate ``journeys`` on ``as_of`` and (unless ``dry_run``) write the results.

    A real run leaves out the journeys already run for ``as_of`` (:mod:`huitouke.journeys.days`)
    and lists them in ``already_run``; ``run_by`` says in the record who ran it."""
    from huitouke.journeys.integration import customers_frame
    from huitouke.messaging.rules import ContactPolicy
    from huitouke.store.stored_settings import effective_settings

    # the contact rules and SMS texts an admin stored apply over the environment's (secrets
    # stay sealed: a run plans messages, it sends none)
    settings = effective_settings(store, settings, open_secrets=False)
    zone = ZoneInfo(settings.timezone)
    now = now or datetime.combine(as_of, time(0), tzinfo=zone).astimezone(UTC)
    already: list[str] = []
    if not dry_run:
        with store.connect() as conn:
            done = days_run(conn, as_of)
        already = [j.id for j in journeys if j.id in done]
        journeys = [j for j in journeys if j.id not in done]
    policy = ContactPolicy.from_settings(settings)
    if customers is None:
        customers = customers_frame(store, as_of, settings=settings, loyalty=loyalty)
    if promotions is None:
        promotions = default_promotions(as_of - timedelta(days=60), as_of + timedelta(days=60))
    start = datetime.combine(as_of - timedelta(days=40), time(0), tzinfo=zone)
    end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=zone)
    suppress = _suppress_steps(journeys)
    if recommender is None and _wants_recommendations(journeys):
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
        _skip_unreachable_coupons(conn, plan)
        result = RunResult(plan=plan, dry_run=dry_run, already_run=already)
        result.warnings = journey_warnings(list(plan.journeys.values()), settings)
        if dry_run:
            writer = _Writer(
                conn, result, settings, now, promotions, loyalty, recommender, suppress
            )
            for jid in _journeys_with_work(plan):
                try:
                    result.previews.extend(writer.messages_of(jid, preview=True))
                except HuitoukeError as exc:
                    _fail(result, jid, exc)
            conn.rollback()
            return result
    for jid in _journeys_with_work(plan):
        before = (
            result.assignments_inserted,
            result.coupons_issued,
            result.enqueued,
            result.duplicates,
            dict(result.skipped_at_render),
        )
        try:
            with store.begin() as conn:
                if not claim_day(conn, jid, as_of, datetime.now(UTC), run_by):
                    _already_run(result, jid)  # another run wrote this day meanwhile
                    continue
                writer = _Writer(
                    conn, result, settings, now, promotions, loyalty, recommender, suppress
                )
                writer.write(jid)
        except HuitoukeError as exc:  # rolled back: this journey wrote nothing
            (
                result.assignments_inserted,
                result.coupons_issued,
                result.enqueued,
                result.duplicates,
                result.skipped_at_render,
            ) = before
            _fail(result, jid, exc)
    idle = [j.id for j in journeys if j.id not in set(_journeys_with_work(plan))]
    if idle:  # nothing to write today, but run all the same: not again for this day
        with store.begin() as conn:
            claim_days(conn, idle, as_of, datetime.now(UTC), run_by)
    return result


def _already_run(result: RunResult, journey_id: str) -> None:
    """A journey another run wrote for the same day while this one evaluated: its planned
    rows become ``already_run``, nothing of it is written by this run."""
    rows = result.plan.rows
    mine = (rows["journey_id"] == journey_id) & (rows["status"] == "planned")
    n = int(mine.sum())
    rows.loc[mine, "status"] = "skipped"
    rows.loc[mine, "reason_code"] = "already_run"
    result.already_run.append(journey_id)
    for s in result.plan.summary:
        if s["journey_id"] == journey_id:
            by = dict(s["by_reason"])
            by.pop("planned", None)
            by["already_run"] = by.get("already_run", 0) + n
            s["by_reason"] = by
            s["planned"] = 0


def _journeys_with_work(plan: Plan) -> list[str]:
    """Journeys with rows to write (planned steps or treatment/holdout assignments)."""
    rows = plan.rows
    if rows.empty:
        return []
    busy = rows[(rows["status"] == "planned") | rows["group"].isin(["treatment", "holdout"])]
    order = {j: i for i, j in enumerate(dict.fromkeys(rows["journey_id"]))}
    return sorted(set(busy["journey_id"]), key=lambda j: order[j])


def _fail(result: RunResult, journey_id: str, exc: HuitoukeError) -> None:
    """Report a journey that wrote nothing; its planned rows become ``failed`` with the code."""
    rows = result.plan.rows
    mine = (rows["journey_id"] == journey_id) & (rows["status"] == "planned")
    n = int(mine.sum())
    rows.loc[mine, "status"] = "failed"
    rows.loc[mine, "reason_code"] = exc.code
    result.failures.append(
        {
            "journey_id": journey_id,
            "code": exc.code,
            "message": exc.message,
            "message_zh": exc.message_zh,
            "details": exc.details,
            "steps_not_written": n,
        }
    )
    for s in result.plan.summary:
        if s["journey_id"] == journey_id:
            by = dict(s["by_reason"])
            by["planned"] = by.get("planned", 0) - n
            if by["planned"] <= 0:
                by.pop("planned")
            by[exc.code] = by.get(exc.code, 0) + n
            s["by_reason"] = by
            s["planned"] = by.get("planned", 0)
            s["failed"] = {"code": exc.code, "steps": n}


def _skip_unreachable_coupons(conn: Connection, plan: Plan) -> None:
    """A coupon step for a customer none of the journey's send channels may reach is skipped
    (``coupon_unreachable``) unless the journey sets ``coupons_for_unreachable``."""
    from huitouke.messaging.consent import load_customer_contexts

    rows = plan.rows
    if rows.empty:
        return
    coupon = (rows["status"] == "planned") & (rows["action"] == "coupon")
    if not coupon.any():
        return
    channels = {
        j.id: {s.channel for s in j.steps if isinstance(s, SendStep)}
        for j in plan.journeys.values()
        if not j.coupons_for_unreachable
    }
    cand = rows[coupon & rows["journey_id"].isin([j for j, ch in channels.items() if ch])]
    if cand.empty:
        return
    contexts = load_customer_contexts(conn, sorted(set(cand["customer_id"])))
    unreachable = [
        i
        for i, jid, cid in zip(cand.index, cand["journey_id"], cand["customer_id"], strict=True)
        if not any(contexts[cid].allows(ch) for ch in channels[jid])
    ]
    if not unreachable:
        return
    rows.loc[unreachable, "status"] = "skipped"
    rows.loc[unreachable, "reason_code"] = "coupon_unreachable"
    by_j = rows.loc[unreachable, "journey_id"].value_counts()
    for s in plan.summary:
        n = int(by_j.get(s["journey_id"], 0))
        if n:
            by = dict(s["by_reason"])
            by["planned"] = by.get("planned", 0) - n
            if by["planned"] <= 0:
                by.pop("planned")
            by["coupon_unreachable"] = by.get("coupon_unreachable", 0) + n
            s["by_reason"] = by
            s["planned"] = by.get("planned", 0)


_SHOP = re.compile(r"\bshop\s*(\.|\[)")


def journey_warnings(journeys: Sequence[Journey], settings: Settings) -> list[dict[str, Any]]:
    """What would go out wrong without being an error: a template printing the shop's name
    (``shop.name``) while ``HUITOUKE_SMS_SIGN_NAME`` is empty, so "感谢第一次光临!" loses it."""
    if settings.sms_sign_name.strip():
        return []
    out = []
    for j in journeys:
        uses = sorted(
            name
            for name, tpl in j.templates.items()
            if any(
                _SHOP.search(text or "") for v in (tpl.zh, tpl.en) for text in (v.body, v.subject)
            )
        )
        sms = any(isinstance(s, SendStep) and s.channel == "sms" for s in j.steps)
        if uses or sms:
            out.append(
                {
                    "journey_id": j.id,
                    "code": "journey.shop_name_missing",
                    "message": t("journeys.warn.shop_name_missing", "en", journey=j.id),
                    "message_zh": t("journeys.warn.shop_name_missing", "zh", journey=j.id),
                    "details": {"templates": uses, "setting": "HUITOUKE_SMS_SIGN_NAME"},
                }
            )
    return out


def _insert_assignments(conn: Connection, plan: Plan, now: datetime, journey_id: str) -> int:
    a = plan.assignments()
    a = a[a["journey_id"] == journey_id]
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


def _preview_coupon(loyalty: Any, template_id: str, now: datetime) -> dict[str, Any] | None:
    """What a coupon of ``template_id`` issued now would look like (the dry run's stand-in)."""
    tpl = next((c for c in loyalty.program.coupon_templates if c.id == template_id), None)
    if tpl is None:
        return None
    valid_from = now + timedelta(days=tpl.delay_days)
    value = tpl.value if tpl.value is not None else (tpl.max_value or tpl.min_value)
    return {
        "code": "PREVIEW",
        "status": "issued",
        "template": tpl.id,
        "kind": tpl.kind,
        "value": str(value) if value is not None else None,
        "percent": str(tpl.percent) if tpl.percent is not None else None,
        "currency": loyalty.program.currency,
        "valid_from": valid_from.isoformat(),
        "valid_until": (valid_from + timedelta(days=tpl.valid_days)).isoformat(),
    }


class _Writer:
    """Renders (and, for real, writes) one journey's planned steps at a time."""

    def __init__(
        self,
        conn: Connection,
        result: RunResult,
        settings: Settings,
        now: datetime,
        promotions: Sequence[Promotion],
        loyalty: Any,
        recommender: Any,
        suppress: set[tuple[str, str]],
    ) -> None:
        self.conn = conn
        self.result = result
        self.settings = settings
        self.now = now
        self.promos = {p.id: p for p in promotions}
        self.loyalty = loyalty
        self.recommender = recommender
        self.suppress = suppress
        self.coupons: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.known_templates: set[str] | None = None
        if loyalty is not None:
            self.known_templates = {tpl.id for tpl in loyalty.program.coupon_templates}

    def _skip(self, reason: str) -> None:
        sk = self.result.skipped_at_render
        sk[reason] = sk.get(reason, 0) + 1

    def coupon_for(
        self, j: Journey, r: dict[str, Any], template_id: str, *, preview: bool
    ) -> dict[str, Any] | None:
        key = (j.id, r["customer_id"], r["occurrence"], template_id)
        if key in self.coupons:
            return self.coupons[key]
        loyalty = self.loyalty
        if loyalty is None or (
            self.known_templates is not None and template_id not in self.known_templates
        ):
            return None
        if preview:
            self.coupons[key] = _preview_coupon(loyalty, template_id, self.now) or {}
            return self.coupons[key]
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
        self.coupons[key] = loyalty.issue_coupon(
            self.conn, template_id, r["customer_id"], idempotency_key=idem
        )
        return self.coupons[key]

    def write(self, journey_id: str) -> None:
        """Assignments, coupons and messages of one journey, in the caller's transaction."""
        from huitouke.messaging.outbox import enqueue

        self.result.assignments_inserted += _insert_assignments(
            self.conn, self.result.plan, self.now, journey_id
        )
        messages = self.messages_of(journey_id, preview=False)
        if messages:
            counts = enqueue(self.conn, messages, now=self.now)
            self.result.enqueued += counts.inserted
            self.result.duplicates += counts.duplicates

    def messages_of(self, journey_id: str, *, preview: bool) -> list[Any]:
        """Render every planned step of the journey (issuing coupons unless ``preview``);
        the first template or coupon error is raised, naming the customer and step."""
        from huitouke.measurement.links import tracked_url
        from huitouke.messaging.outbox import OutboxMessage
        from huitouke.messaging.templates import MessageTemplate, render, template_context

        plan = self.result.plan
        settings = self.settings
        rows = plan.rows
        planned = _records(rows[(rows["journey_id"] == journey_id) & (rows["status"] == "planned")])
        if not planned:
            return []
        profiles = _profiles(self.conn, sorted({r["customer_id"] for r in planned}))
        j = plan.journeys[journey_id]
        messages = []
        for r in planned:
            step = j.steps[int(r["step_index"])]
            if isinstance(step, CouponStep):
                if self.coupon_for(j, r, step.coupon_template, preview=preview) is None:
                    self._skip("coupon.unknown_template")
                elif not preview:
                    self.result.coupons_issued += 1
                continue
            assert isinstance(step, SendStep)
            prof = profiles.get(r["customer_id"], {"customer_id": r["customer_id"]})
            attrs = prof.get("attributes") or {}
            lang: str = attrs["lang"] if attrs.get("lang") in ("zh", "en") else settings.lang
            coupon = None
            if step.coupon_template:
                coupon = self.coupon_for(j, r, step.coupon_template, preview=preview)
                if coupon is None:
                    self._skip("coupon.unknown_template")
                    continue
            recs: list[dict[str, Any]] = []
            if step.related_products and self.recommender is not None:
                recs = self.recommender.for_customer(r["customer_id"], k=step.related_products)
            link = tracked_url(
                settings.public_base_url,
                settings.secret_key.get_secret_value(),
                journey_id=j.id,
                customer_id=r["customer_id"],
                step_id=r["step_id"],
                occurrence=r["occurrence"],
                url=step.link or settings.public_base_url,
            )
            due: date = r["due_date"]
            anchor: date = r["anchor_date"]
            extra = {
                "occasion": _occasion(r["occurrence"], self.promos, lang),
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
            try:
                rendered = render(
                    mt,
                    ctx,
                    lang,
                    sms_sign_name=settings.sms_sign_name,
                    sms_footer=settings.sms_footer,
                    sms_footer_en=settings.sms_footer_en,
                )
            except HuitoukeError as exc:
                exc.details = {
                    **exc.details,
                    "journey_id": j.id,
                    "step_id": r["step_id"],
                    "customer_id": r["customer_id"],
                }
                raise
            attrs = prof.get("attributes") or {}
            recipient = (
                prof.get("phone")
                if step.channel == "sms"
                else prof.get("email")
                if step.channel == "email"
                # a 1:1 WeCom message goes to the contact, from the staff member who added them
                else attrs.get("wecom_external_userid")
                if step.channel == "wecom_contact"
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
                    payload={
                        "coupon": coupon["code"] if coupon else None,
                        "link": link,
                        **(
                            {"sender": attrs.get("wecom_follow_user")}
                            if step.channel == "wecom_contact"
                            else {}
                        ),
                    },
                    planned_at=self.now,
                    not_before=send_at,
                    expires_at=r["expires_at"],
                    suppress_if_ordered=(j.id, r["step_id"]) in self.suppress,
                    campaign_id=j.id,
                )
            )
        return messages


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
