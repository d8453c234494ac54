"""The contact rules of messaging, as the journey engine's gate.

:class:`MessagingGate` asks :func:`huitouke.messaging.rules.evaluate` about each planned
message at its send time. Each message it lets through (now or delayed) is added to that
customer's history, so the caps also count the messages planned earlier in the same run —
and the engine checks transactional care before marketing, so care wins a capped slot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, select

from huitouke.identity.service import person_accounts
from huitouke.journeys.engine import GateDecision, PlannedMessage
from huitouke.messaging.consent import load_customer_contexts
from huitouke.messaging.outbox import dedupe_key as outbox_key
from huitouke.messaging.rules import Contact, ContactPolicy, CustomerContext, Decision, evaluate
from huitouke.messaging.rules import PlannedMessage as RulesMessage
from huitouke.messaging.tables import contact_log, outbox

__all__ = ["Loaded", "Loader", "MessagingGate", "db_loader"]


@dataclass
class Loaded:
    """What the rules need about a batch of customers."""

    contexts: Mapping[str, CustomerContext]
    #: contacts that count towards caps (sent, or queued to be sent)
    history: Mapping[str, list[Contact]]
    #: outbox keys that already exist: re-planning them would change nothing
    keys: set[str]


Loader = Callable[[Sequence[str]], Loaded]


class MessagingGate:
    """A :class:`~huitouke.journeys.engine.ContactGate` over messaging's contact rules."""

    def __init__(
        self,
        policy: ContactPolicy,
        loader: Loader,
        *,
        planned_at: datetime,
        suppress_if_ordered: Callable[[PlannedMessage], bool] | None = None,
    ) -> None:
        self.policy = policy
        self._loader = loader
        self._planned_at = planned_at
        self._suppress = suppress_if_ordered
        self._contexts: dict[str, CustomerContext] = {}
        self._history: dict[str, list[Contact]] = defaultdict(list)
        self._queued: set[str] = set()
        self._memo: dict[tuple[object, ...], Decision] = {}

    def prepare(self, customer_ids: Sequence[str]) -> None:
        loaded = self._loader(customer_ids)
        self._contexts.update(loaded.contexts)
        for cid, contacts in loaded.history.items():
            self._history[cid] = list(contacts)
        self._queued.update(loaded.keys)

    def check(self, message: PlannedMessage) -> GateDecision:
        cid = message.customer_id
        if (
            self._queued
            and outbox_key(message.journey_id, cid, message.step_id, message.occurrence)
            in self._queued
        ):
            # planned by an earlier run of the same day: the outbox already has it
            return GateDecision(False, "already_queued")
        ctx = self._contexts.get(cid) or CustomerContext(customer_id=cid)
        suppress = self._suppress(message) if self._suppress else False
        channel = message.channel
        kind: Literal["transactional", "marketing"] = (
            "transactional" if message.kind == "transactional" else "marketing"
        )
        hist = self._history[cid]
        # The rules read only these parts of the customer; customers alike in them, with the
        # same history, get the same decision — so it is computed once per distinct key.
        unsub = frozenset(u for u in ctx.unsubscribed if u in (channel, "*"))
        last = ctx.last_order_at if suppress and kind == "marketing" else None
        key = (
            channel,
            kind,
            message.send_at,
            message.expires_at,
            suppress,
            bool(ctx.consent.get(channel, False)),
            unsub,
            ctx.timezone,
            last,
            tuple(hist),
        )
        d = self._memo.get(key)
        if d is None:
            rm = RulesMessage(
                channel=channel,
                kind=kind,
                planned_at=self._planned_at,
                expires_at=message.expires_at,
                suppress_if_ordered=suppress,
            )
            norm = CustomerContext(
                customer_id=cid,
                consent={channel: bool(ctx.consent.get(channel, False))},
                unsubscribed=unsub,
                timezone=ctx.timezone,
                last_order_at=last,
            )
            d = evaluate(norm, rm, hist, message.send_at, self.policy)
            if len(self._memo) < 200_000:
                self._memo[key] = d
        if d.allowed or d.deliver_after is not None:
            at = d.deliver_after or message.send_at
            hist.append(Contact(channel, message.kind, at))
            if d.allowed:
                return GateDecision(True, "ok")
            return GateDecision(True, d.reason_code, d.deliver_after)
        return GateDecision(False, d.reason_code)


def db_loader(conn: Connection, policy: ContactPolicy, now: datetime) -> Loader:
    """Contexts from the store (consent, unsubscribes, zone, last order) and history from
    the contact log plus messages already queued in the outbox (they will be sent), both
    per person: a merged account's contacts count for every account of its person."""

    def load(wanted: Sequence[str]) -> Loaded:
        # per person (huitouke.identity): what was sent to any of a person's accounts
        # counts towards the caps of each of them
        accounts = person_accounts(conn, wanted)
        contexts = load_customer_contexts(conn, wanted, accounts=accounts)
        asked: dict[str, list[str]] = defaultdict(list)
        for cid, accts in accounts.items():
            for a in accts:
                asked[a].append(cid)
        found: dict[str, list[Contact]] = defaultdict(list)
        keys: set[str] = set()
        since = now - max(policy.longest_window, timedelta(days=1))
        ids = sorted(asked)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            logged = set()
            for mid, cid, ch, kind, at in conn.execute(
                select(
                    contact_log.c.message_id,
                    contact_log.c.customer_id,
                    contact_log.c.channel,
                    contact_log.c.kind,
                    contact_log.c.contacted_at,
                ).where(contact_log.c.customer_id.in_(chunk), contact_log.c.contacted_at > since)
            ):
                logged.add(mid)
                found[cid].append(Contact(ch, kind, at))
            for mid, key, cid, ch, kind, at, status in conn.execute(
                select(
                    outbox.c.message_id,
                    outbox.c.dedupe_key,
                    outbox.c.customer_id,
                    outbox.c.channel,
                    outbox.c.kind,
                    outbox.c.not_before,
                    outbox.c.status,
                ).where(outbox.c.customer_id.in_(chunk))
            ):
                keys.add(key)
                if status in ("queued", "sending") and mid not in logged:
                    # will be sent: counts towards the caps like a sent one
                    found[cid].append(Contact(ch, kind, at))
        hist: dict[str, list[Contact]] = defaultdict(list)
        for a, contacts in found.items():
            for cid in asked[a]:
                hist[cid].extend(contacts)
        return Loaded(contexts, hist, keys)

    return load
