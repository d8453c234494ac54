"""The report's reminders section: journey and package-insert results of the store.

The numbers are :func:`huitouke.journeys.results.journey_results` and
:func:`~huitouke.measurement.campaign_results` — the calls behind ``huitouke journeys
results --format json`` and ``GET /v1/journeys/results/all`` — with the same settings
(attribution window, SMS price per segment, currency), so the report and the CLI agree
figure by figure. This module only adds the journeys' display names.

Journey results belong to a store: a report on an order file or on the bundled sample has no
reminders section at all (there is nothing to measure there), while a report on a store
where no journey has run yet shows the section with a note saying so.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

__all__ = ["collect_reminders", "reminders_from_store"]


def collect_reminders(
    conn: Connection,
    as_of: date,
    *,
    window_days: int,
    timezone: str,
    price_per_segment: Decimal,
    currency: str,
) -> dict[str, Any]:
    """The reminders document: ``journeys`` and ``insert_campaigns`` exactly as
    ``huitouke journeys results --format json`` gives them, plus display names."""
    from huitouke.journeys.results import journey_results
    from huitouke.measurement import campaign_results

    journeys = journey_results(
        conn,
        as_of,
        window_days=window_days,
        timezone=timezone,
        price_per_segment=price_per_segment,
        currency=currency,
    )
    campaigns = campaign_results(
        conn, as_of, window_days=window_days, timezone=timezone, currency=currency
    )
    return {
        "as_of": as_of.isoformat(),
        "window_days": window_days,
        "sms_price_per_segment": str(price_per_segment),
        "currency": currency,
        "journeys": journeys,
        "insert_campaigns": campaigns,
        "journey_names": _names(conn, [r["journey_id"] for r in journeys]),
    }


def _names(conn: Connection, ids: list[str]) -> dict[str, dict[str, str]]:
    """zh/en names of the journeys (stored definitions and built-ins); a journey that is
    neither any more (deleted after it ran) keeps its id as its name."""
    from huitouke.journeys.repo import all_journeys

    known = {r["journey"].id: r["journey"].name for r in all_journeys(conn)}
    out = {}
    for jid in ids:
        name = known.get(jid)
        out[jid] = (
            {"zh": name.zh or jid, "en": name.en or jid}
            if name is not None
            else {"zh": jid, "en": jid}
        )
    return out


def reminders_from_store(
    database_url: str,
    as_of: date,
    *,
    window_days: int,
    timezone: str,
    price_per_segment: Decimal,
    currency: str,
) -> dict[str, Any]:
    """:func:`collect_reminders` on the store at ``database_url``, brought to the latest
    schema first as ``huitouke journeys results`` does (a store migrated before the journeys
    existed gains their empty tables)."""
    from huitouke.store.db import open_store

    store = open_store(database_url)
    try:
        with store.connect() as conn:
            return collect_reminders(
                conn,
                as_of,
                window_days=window_days,
                timezone=timezone,
                price_per_segment=price_per_segment,
                currency=currency,
            )
    finally:
        store.dispose()
