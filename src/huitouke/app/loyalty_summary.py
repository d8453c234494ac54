"""The loyalty summary's snapshot (``loyalty_summary``): what the console's loyalty page shows
— liabilities, redemption rates, tier mix — computed ahead of time, so that the page reads
one row instead of grouping every account, coupon and ledger entry on each request (650–780
ms at 100,000 members, docs/BENCHMARKS.md).

**What is stored.** :func:`huitouke.loyalty.views.liabilities` and
:func:`~huitouke.loyalty.views.tier_mix` as they were at the refresh, and the redemption
flows **per local day** of the merchant's zone: coupons issued that day and how many of them
are redeemed, points earned and points redeemed that day. The page's period is a range of
local days, so any period's rates are sums over the stored days — the same numbers as
:func:`~huitouke.loyalty.views.redemption` over ``[start, end)`` at the time of the refresh
(a test compares them).

**Parameters.** The program's version and the merchant's zone: a program saved since, or
another zone, finds no snapshot, and the page computes live (marked so). A store without a
saved program has no snapshot either.

**Staleness.** The ledger's mark is read before the computation: the newest ledger entry,
coupon event and correction (three primary-key look-ups). The page compares it with the
store's mark now: a points entry, a coupon issued or redeemed, a correction since the
refresh shows the snapshot as stale. (A tier review that changes tiers without a ledger
entry is refreshed by its job, not seen as stale.)

**When it is refreshed.** Like every snapshot kind (:mod:`huitouke.app.snapshots`): by
``huitouke snapshots refresh``, after an import when the store has it, by the scheduler's
``snapshots`` job when its ledger changed, and after the ledger's batch work — the loyalty
jobs (expiry, tier review, bonus release), coupons issued in batch or to a segment — through
:func:`huitouke.app.snapshots.refresh_after_ledger_change`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from huitouke.loyalty import tables as lt
from huitouke.loyalty.service import LoyaltyService
from huitouke.loyalty.views import EARN_KINDS, liabilities, tier_mix
from huitouke.loyalty.vocab import POINTS, fmt, iso

__all__ = [
    "KIND",
    "ledger_mark",
    "program_version",
    "redemption_from_days",
    "summary_params",
    "summary_payload",
]

KIND = "loyalty_summary"
_ZERO = Decimal(0)


def program_version(conn: Connection) -> int | None:
    """The saved program's version (None without one)."""
    from huitouke.app.orders import LOYALTY_PROGRAM_ID

    p = lt.programs.c
    stmt = select(p.version).where(p.program_id == LOYALTY_PROGRAM_ID)
    v = conn.execute(stmt).scalar_one_or_none()
    return None if v is None else int(v)


def summary_params(version: int | None, timezone: str) -> dict[str, Any]:
    return {"program_version": version, "timezone": timezone}


def ledger_mark(conn: Connection) -> dict[str, int]:
    """The ledger's newest entry, coupon event and correction (primary-key look-ups)."""
    return {
        "entry": int(conn.execute(select(func.max(lt.entries.c.entry_id))).scalar() or 0),
        "coupon_event": int(
            conn.execute(select(func.max(lt.coupon_events.c.event_id))).scalar() or 0
        ),
        "correction": int(
            conn.execute(select(func.max(lt.corrections.c.correction_id))).scalar() or 0
        ),
    }


def _day(value: datetime, zone: ZoneInfo) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).date().isoformat()


def _daily(conn: Connection, zone: ZoneInfo) -> dict[str, list[Any]]:
    """Per local day: ``[coupons issued, of them redeemed, points earned, points redeemed]``
    (the points as strings: exact decimals)."""
    days: dict[str, list[Any]] = defaultdict(lambda: [0, 0, _ZERO, _ZERO])
    c = lt.coupons.c
    stmt = select(c.issued_at, c.redeemed_at.is_not(None))
    for issued_at, redeemed in conn.execution_options(yield_per=20_000).execute(stmt):
        row = days[_day(issued_at, zone)]
        row[0] += 1
        row[1] += 1 if redeemed else 0
    a, e = lt.accounts.c, lt.entries.c
    flows = (
        select(e.created_at, e.kind, e.delta)
        .select_from(lt.entries.join(lt.accounts, a.account_id == e.account_id))
        .where(a.asset == POINTS, e.kind.in_((*EARN_KINDS, "redeem")))
    )
    for created_at, kind, delta in conn.execution_options(yield_per=20_000).execute(flows):
        row = days[_day(created_at, zone)]
        if kind == "redeem":
            row[3] -= Decimal(delta)
        else:
            row[2] += Decimal(delta)
    return {d: [v[0], v[1], str(v[2]), str(v[3])] for d, v in sorted(days.items())}


def summary_payload(
    svc: LoyaltyService, conn: Connection, *, as_of: datetime, timezone: str
) -> dict[str, Any]:
    """What the snapshot holds: liabilities and tiers at ``as_of``, the daily flows."""
    return {
        "liabilities": liabilities(svc, conn, as_of=as_of),
        "tiers": tier_mix(svc, conn),
        "days": _daily(conn, ZoneInfo(timezone)),
    }


def redemption_from_days(
    days: dict[str, list[Any]], lo: date, hi: date, *, start: datetime, end: datetime
) -> dict[str, Any]:
    """:func:`huitouke.loyalty.views.redemption` for the local days ``lo``…``hi``
    (inclusive; ``start``/``end`` their instants, as the live call is given) from the
    stored daily flows."""
    issued = redeemed = 0
    earned = spent = _ZERO
    a, b = lo.isoformat(), hi.isoformat()
    for day, (n, r, e, s) in days.items():
        if a <= day <= b:
            issued += int(n)
            redeemed += int(r)
            earned += Decimal(e)
            spent += Decimal(s)
    return {
        "start": iso(start),
        "end": iso(end),
        "coupons": {
            "issued": issued,
            "redeemed": redeemed,
            "rate": (redeemed / issued) if issued else None,
        },
        "points": {
            "earned": fmt(earned),
            "redeemed": fmt(spent),
            "rate": float(spent / earned) if earned > 0 else None,
        },
    }
