"""Loyalty tables on the shared store metadata (Alembic branch ``loyalty``).

The ledger is ``loyalty_entries``: append-only, one row per balance change, each with a
UNIQUE idempotency key and the balance before and after (as saleor's gift-card events do).
``loyalty_accounts`` caches each balance, and the database refuses a negative one.
``loyalty_lots`` keeps what is left of each earning of an expiring asset (points, stamps)
so that spending takes the earliest-expiring first; Σ lots.remaining == balance.
Coupon state changes only through ``loyalty_coupon_events``. Every operator correction
of a balance (points, stored value) is also a row of ``loyalty_corrections``: who made it,
when, on which balance, by how much, and why — the audit trail the ledger's entries alone
do not name.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)

from huitouke.core.orders import DEFAULT_SOURCE
from huitouke.store.tables import metadata
from huitouke.store.types import Money, UTCDateTime

__all__ = [
    "accounts",
    "bonus_releases",
    "corrections",
    "coupon_events",
    "coupons",
    "entries",
    "groupbuy_members",
    "groupbuys",
    "lots",
    "members",
    "memberships",
    "operations",
    "orders",
    "programs",
    "referrals",
    "stamp_cards",
]

#: 64-bit ids on PostgreSQL; SQLite needs INTEGER for its rowid auto-increment.
BigId = BigInteger().with_variant(Integer(), "sqlite")

programs = Table(
    "loyalty_programs",
    metadata,
    Column("program_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

operations = Table(
    "loyalty_operations",
    metadata,
    # The caller's idempotency key of one use case ("order:o1:paid:0", "redeem:r-17"...).
    Column("op_key", String(255), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("customer_id", String(128)),
    Column("result", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    # SHA-256 of the kind and payload of a call whose key the caller chose (ledger.claim)
    Column("request_hash", String(64)),
)

members = Table(
    "loyalty_members",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("tier", String(64)),
    Column("tier_since", UTCDateTime),
    Column("tier_valid_until", UTCDateTime),
    Column("tier_grace_until", UTCDateTime),
    Column("preferences", JSON, nullable=False, default=dict),
    Column("referral_code", String(32), unique=True),
    Column("paid_orders", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("paid_orders >= 0", name="paid_orders_nonnegative"),
    Index("ix_loyalty_members_tier_valid_until", "tier_valid_until"),
)

accounts = Table(
    "loyalty_accounts",
    metadata,
    Column("account_id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    # points, points_debt, stamps:<card>, stamps_debt:<card>, stored_paid, stored_bonus,
    # stored_bonus_pending, stored_held
    Column("asset", String(80), nullable=False),
    Column("balance", Money, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("balance >= 0", name="balance_nonnegative"),
    UniqueConstraint("customer_id", "asset", name="uq_loyalty_accounts_customer_asset"),
)

entries = Table(
    "loyalty_entries",
    metadata,
    Column("entry_id", BigId, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column(
        "account_id",
        BigId,
        ForeignKey("loyalty_accounts.account_id"),
        nullable=False,
    ),
    Column("delta", Money, nullable=False),
    Column("balance_before", Money, nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reference", String(255)),
    Column("lot_id", BigId),
    Column("expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("balance_before >= 0 AND balance_after >= 0", name="balances_nonnegative"),
    CheckConstraint("balance_after = balance_before + delta", name="delta_consistent"),
    Index("ix_loyalty_entries_account", "account_id", "entry_id"),
    # the stored-value payments on an order, whichever account of a merged person paid
    # (few entries: the index costs the other kinds' writes nothing)
    Index(
        "ix_loyalty_entries_spend_reference",
        "reference",
        postgresql_where=text("kind = 'spend'"),
        sqlite_where=text("kind = 'spend'"),
    ),
)

lots = Table(
    "loyalty_lots",
    metadata,
    Column("lot_id", BigId, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        BigId,
        ForeignKey("loyalty_accounts.account_id"),
        nullable=False,
    ),
    Column("amount", Money, nullable=False),
    Column("remaining", Money, nullable=False),
    Column("reference", String(255)),
    Column("earned_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
    Index("ix_loyalty_lots_account", "account_id", "expires_at"),
    Index("ix_loyalty_lots_expires", "expires_at"),
)

# keyed as the store's orders are: (source, order_id)
orders = Table(
    "loyalty_orders",
    metadata,
    Column("order_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("ordered_at", UTCDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("refunded_amount", Money, nullable=False),
    Column("earned", Boolean, nullable=False),
    Column("first_paid", Boolean, nullable=False),
    Column("points_earned", Money, nullable=False),
    Column("points_reversed", Money, nullable=False),
    Column("points_lot_id", BigId),
    # {"card": {"stamps": n, "lot_id": id, "reversed": m}}
    Column("stamps", JSON, nullable=False, default=dict),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("source", String(32), nullable=False, default=DEFAULT_SOURCE),
    CheckConstraint("points_reversed <= points_earned", name="reversal_within_earned"),
    PrimaryKeyConstraint("order_id", "source"),
    Index("ix_loyalty_orders_customer", "customer_id", "ordered_at"),
)

coupons = Table(
    "loyalty_coupons",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("template_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("holder_id", String(128), nullable=False),
    Column("issued_to", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Money),
    Column("percent", Money),
    Column("currency", String(3), nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("source_ref", String(255)),
    Column("transfers", Integer, nullable=False, default=0),
    Column("redeemed_order_id", String(128)),
    Column("redemption_id", String(255), unique=True),
    Column("redeemed_at", UTCDateTime),
    Column("discount", Money),
    Column("issue_key", String(255), nullable=False, unique=True),
    CheckConstraint("status IN ('issued', 'redeemed', 'voided', 'expired')", name="status_known"),
    CheckConstraint("transfers >= 0", name="transfers_nonnegative"),
    CheckConstraint("value IS NULL OR value >= 0", name="value_nonnegative"),
    Index("ix_loyalty_coupons_holder", "holder_id", "status"),
    Index("ix_loyalty_coupons_issued_to", "issued_to", "template_id"),
    Index("ix_loyalty_coupons_valid_until", "status", "valid_until"),
    Index("ix_loyalty_coupons_order", "redeemed_order_id"),
    Index("ix_loyalty_coupons_source", "source_ref"),
)

coupon_events = Table(
    "loyalty_coupon_events",
    metadata,
    Column("event_id", BigId, primary_key=True, autoincrement=True),
    Column("code", String(32), ForeignKey("loyalty_coupons.code"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("old_status", String(16)),
    Column("new_status", String(16), nullable=False),
    Column("from_customer", String(128)),
    Column("to_customer", String(128)),
    Column("order_id", String(128)),
    Column("old_value", Money),
    Column("new_value", Money),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_loyalty_coupon_events_code", "code"),
)

stamp_cards = Table(
    "loyalty_stamp_cards",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("card_id", String(64), primary_key=True),
    Column("cycle", Integer, nullable=False, default=1),
    Column("rewarded_upto", Integer, nullable=False, default=0),
    Column("completed", Integer, nullable=False, default=0),
    Column("last_stamp_day", String(10)),
    Column("updated_at", UTCDateTime, nullable=False),
)

bonus_releases = Table(
    "loyalty_bonus_releases",
    metadata,
    Column("release_id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("topup_key", String(255), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("release_at", UTCDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    # pending, released, forfeited
    Column("status", String(16), nullable=False),
    Column("done_at", UTCDateTime),
    UniqueConstraint("topup_key", "seq", name="uq_loyalty_bonus_releases_topup_seq"),
    Index("ix_loyalty_bonus_releases_due", "status", "release_at"),
    Index("ix_loyalty_bonus_releases_customer", "customer_id"),
)

memberships = Table(
    "loyalty_memberships",
    metadata,
    Column("membership_id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("fee", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_with", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("ends_at > starts_at", name="term_positive"),
    Index("ix_loyalty_memberships_customer", "customer_id", "ends_at"),
)

referrals = Table(
    "loyalty_referrals",
    metadata,
    Column("referred_id", String(128), primary_key=True),
    Column("referrer_id", String(128), nullable=False),
    Column("code", String(32), nullable=False),
    # registered, attributed, rewarded, rejected
    Column("status", String(16), nullable=False),
    Column("reason", String(64)),
    Column("first_order_id", String(128)),
    Column("release_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_loyalty_referrals_referrer", "referrer_id", "status"),
    Index("ix_loyalty_referrals_release", "status", "release_at"),
)

groupbuys = Table(
    "loyalty_groupbuys",
    metadata,
    Column("group_id", String(32), primary_key=True),
    Column("deal_id", String(64), nullable=False),
    Column("leader_id", String(128), nullable=False),
    Column("price", Money, nullable=False),
    Column("required", Integer, nullable=False),
    Column("joined", Integer, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    # open, formed, failed
    Column("status", String(16), nullable=False),
    Column("settled_at", UTCDateTime),
    CheckConstraint("joined >= 0 AND joined <= required", name="joined_within_required"),
    Index("ix_loyalty_groupbuys_due", "status", "deadline"),
)

groupbuy_members = Table(
    "loyalty_groupbuy_members",
    metadata,
    Column("group_id", String(32), ForeignKey("loyalty_groupbuys.group_id"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("amount", Money, nullable=False),
    Column("paid_with", String(16), nullable=False),
    Column("held_paid", Money, nullable=False),
    Column("held_bonus", Money, nullable=False),
    # reserved, confirmed, released
    Column("status", String(16), nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
)

corrections = Table(
    "loyalty_corrections",
    metadata,
    Column("correction_id", BigId, primary_key=True, autoincrement=True),
    # the use case's operation key: one row per correction, however often it is replayed
    Column("op_key", String(255), nullable=False, unique=True),
    Column("customer_id", String(128), nullable=False),
    # points, stored_paid or stored_bonus
    Column("asset", String(80), nullable=False),
    Column("delta", Money, nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("reason", String(255), nullable=False),
    # who: a console user ("console:ana"), an API key ("api-key:<id>"), the CLI ("cli:<user>")
    Column("actor", String(160), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_loyalty_corrections_customer", "customer_id", "correction_id"),
)
