"""Tables of the measurement context.

- ``link_clicks``: one row per click on a tracked link (the signed token says which
  journey, customer, step and occurrence it belongs to).
- ``campaign_codes``: the unique codes printed on package-insert cards (包裹营销), and who
  claimed each one and when — a campaign's redemptions are attributed through them.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["campaign_codes", "link_clicks"]

link_clicks = Table(
    "link_clicks",
    metadata,
    Column("click_id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(32), nullable=False),
    Column("journey_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("occurrence", String(128), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("clicked_at", UTCDateTime, nullable=False),
    Column("user_agent", String(300)),
    Index("ix_link_clicks_journey", "journey_id", "customer_id"),
)

campaign_codes = Table(
    "campaign_codes",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("campaign_id", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(128)),
    Column("claimed_at", UTCDateTime),
    Column("coupon_code", String(64)),
    Index("ix_campaign_codes_campaign", "campaign_id"),
)
