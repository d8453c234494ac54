"""Loyalty use cases: each public method is one idempotent unit of work on the ledger.

Every method takes an open SQLAlchemy ``Connection`` inside the caller's transaction, so
the service layer can compose "upsert the order + apply loyalty" in one unit of work; a
raised error means the caller rolls the whole transaction back. :meth:`LoyaltyService.bound`
wraps a :class:`~huitouke.store.Store` for callers that want one transaction per call.

Every write is idempotent by a caller-given key (order id and state, redemption id,
idempotency key): the first call stores its JSON-ready result under the key, and a replay
changes nothing and returns that same result (with ``"replayed": true``).

Results are JSON-ready: money and points are decimal strings ("12.5"), instants ISO 8601
in UTC.

The use cases live by mechanic, as functions of a :class:`~huitouke.loyalty.context.
LoyaltyContext` (the program, its zone, the clock); :class:`LoyaltyService` is that context
and exposes each function as a method of the same name and signature:

- order events and stamps: :mod:`~huitouke.loyalty.order_batch`, the batch ledger and the
  one writer of order effects (points earned and taken back, stamps, order coupons, tier
  upgrades, referral attribution, stored value given back on refunds);
- :mod:`~huitouke.loyalty.coupons`, :mod:`~huitouke.loyalty.points`,
  :mod:`~huitouke.loyalty.tiers`, :mod:`~huitouke.loyalty.members`,
  :mod:`~huitouke.loyalty.stored_value`, :mod:`~huitouke.loyalty.membership`,
  :mod:`~huitouke.loyalty.referrals`, :mod:`~huitouke.loyalty.group_buy`;
- :mod:`~huitouke.loyalty.expiry` (what falls due) and :mod:`~huitouke.loyalty.views`
  (read-only: a customer's holdings, balances, history, checkout quotes).

No other module of the package imports this one (the package re-exports it): the façade
sits on top of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from huitouke.loyalty import (
    coupons,
    expiry,
    group_buy,
    members,
    membership,
    order_batch,
    persons,
    points,
    referrals,
    stored_value,
    tiers,
    views,
)
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.vocab import OrderEvent, fmt, parse_order
from huitouke.store.db import Store
from huitouke.store.uow import run_write

__all__ = ["BoundLoyalty", "LoyaltyService", "OrderEvent", "fmt", "parse_order"]


class LoyaltyService(LoyaltyContext):
    """The loyalty use cases of one program (see the module docstring for the contract)."""

    def bound(self, store: Store) -> BoundLoyalty:
        """The same use cases, each run in its own unit of work on ``store`` (with retries)."""
        return BoundLoyalty(self, store)

    # -- orders and stamps: the batch ledger (loyalty.order_batch) ---------------------------
    def apply_order(self, conn: Connection, order: Mapping[str, Any]) -> dict[str, Any]:
        """Apply an order event: paid → points, stamps, order coupons, tier, referral;
        refund/cancel → proportional reversal. Idempotent per (order id, status, refunded amount).

        Refunds are monotone: a state whose refunded amount is below what was already
        applied (an old event arriving late) changes nothing (``ignored: "stale"``), and an
        order first seen refunded or cancelled never earns, so every arrival order of the
        same events ends in the same balances.

        The same as ``apply_orders(conn, [order])[0]``.
        """
        return self.apply_orders(conn, [order])[0]

    def apply_orders(
        self, conn: Connection, orders: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Apply many order events in one unit of work, with set-based reads and writes.

        Returns one result per event, in order, each exactly what :meth:`apply_order` would
        have returned had the events been sent one by one in this order (events of one
        customer see the batch's earlier effects: refunds of orders paid earlier in the
        batch, tier upgrades, stamp ladders, spend-back coupons). An event repeated within
        the batch is applied once; its later copies come back ``replayed``. A bad event
        (``InputError`` naming ``orders[i].field``) or a conflict (its ``details["index"]``
        names the event) rejects the whole batch.
        See :mod:`huitouke.loyalty.order_batch`.
        """
        return order_batch.apply_orders(self, conn, orders)

    def add_stamps(
        self,
        conn: Connection,
        customer_id: str,
        card_id: str,
        *,
        idempotency_key: str,
        stamps: int | None = None,
        visited_at: datetime | str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Stamps without an order: a visit (``stamps`` omitted) or an operator's grant of
        ``stamps`` with a ``reason``. Idempotent by ``idempotency_key``.

        A visit earns what the card's rules give a visit (:func:`~huitouke.loyalty.rules.
        stamps_for_visit`): one stamp on a ``per: visit`` card, none (``ignored:
        "already_stamped_today"``) when its local day (``visited_at``, default now, in the
        program's zone) already earned a stamp from an order or a visit; a card counting
        orders or amounts, or visits only with an order of a minimum amount, refuses
        (``stamps.not_per_visit``, ``stamps.order_required``). A grant adds ``stamps``
        (1–1000) whatever the card counts and leaves the card's stamped day alone. Either
        way the stamps go through the same code as order stamps: owed stamps are settled
        first, each ladder step reached pays its coupon once per card, and at ``size`` the
        card completes and the next one starts with the leftover stamps. The stamps expire
        ``expire_days`` after ``visited_at``.
        """
        return order_batch.add_stamps(
            self,
            conn,
            customer_id,
            card_id,
            idempotency_key=idempotency_key,
            stamps=stamps,
            visited_at=visited_at,
            reason=reason,
        )

    # -- coupons (loyalty.coupons) ---------------------------------------------------------
    issue_coupon = coupons.issue_coupon
    redeem_coupon = coupons.redeem_coupon
    void_coupon = coupons.void_coupon
    gift_coupon = coupons.gift_coupon
    coupon = coupons.coupon

    # -- points (loyalty.points) -----------------------------------------------------------
    adjust_points = points.adjust_points
    redeem_points = points.redeem_points

    # -- tiers and member preferences (loyalty.tiers, loyalty.members) ---------------------
    review_tiers = tiers.review_tiers
    set_preferences = members.set_preferences

    # -- stored value, 储值 (loyalty.stored_value) -------------------------------------------
    topup = stored_value.topup
    release_bonus = stored_value.release_bonus
    spend_stored_value = stored_value.spend_stored_value
    refund_stored_value = stored_value.refund_stored_value
    reverse_stored_value_spend = stored_value.reverse_stored_value_spend
    adjust_stored_value = stored_value.adjust_stored_value

    # -- paid membership, 付费会员 (loyalty.membership) ---------------------------------------
    buy_membership = membership.buy_membership
    renew_membership = membership.renew_membership

    # -- referrals, 转介绍 (loyalty.referrals) ------------------------------------------------
    referral_code = referrals.referral_code
    register_referral = referrals.register_referral
    release_referral_rewards = referrals.release_referral_rewards

    # -- group buys, 拼团 (loyalty.group_buy) -----------------------------------------------
    groupbuy_open = group_buy.groupbuy_open
    groupbuy_join = group_buy.groupbuy_join
    groupbuy_settle = group_buy.groupbuy_settle
    groupbuy = group_buy.groupbuy

    # -- expiry (loyalty.expiry) -----------------------------------------------------------
    expire = expiry.expire

    # -- read-only views (loyalty.views) ---------------------------------------------------
    customer_loyalty = views.customer_loyalty
    expiring_soon = views.expiring_soon
    balances = views.balances
    history = views.history
    checkout_quote = views.checkout_quote
    liabilities = views.liabilities
    redemption = views.redemption
    tier_mix = views.tier_mix
    summary = views.summary
    corrections = views.corrections
    person_loyalty = persons.person_loyalty


class BoundLoyalty:
    """:class:`LoyaltyService` bound to a store: each call is its own unit of work, run by
    the store's one retry policy (:func:`huitouke.store.uow.run_write`); the idempotency
    keys make a rerun safe."""

    def __init__(self, service: LoyaltyService, store: Store) -> None:
        self.service = service
        self.store = store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.service, name)
        if not callable(fn):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return run_write(self.store, lambda conn: fn(conn, *args, **kwargs))

        return call
