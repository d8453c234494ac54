"""A journey is run at most once per evaluation day.

The outbox's dedupe keys already make a repeated run enqueue no message twice, but a
second run of the same day would still evaluate again on newer data (an order that arrived
since, a customer who joined the audience at noon) and could write what the first run did
not. So every real run records ``(journey, day)`` in ``journey_run_days`` inside the unit of
work that writes the journey's results; a run that finds the day recorded — before it
evaluates, or when it writes (two processes that evaluated at the same time) — leaves that
journey alone and reports it as ``already_run``. A journey whose run failed (its unit of
work rolled back) has no record, so it can be run again that day once fixed. Dry runs
record nothing and are never refused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from huitouke.journeys.tables import journey_run_days as rd

__all__ = ["claim_day", "claim_days", "days_run", "run_days"]


@functools.cache
def _claim_stmt(dialect: str) -> Any:
    mod: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(rd).on_conflict_do_nothing(index_elements=["journey_id", "run_day"])
    return stmt.returning(rd.c.journey_id)


def days_run(conn: Connection, day: date) -> set[str]:
    """The journeys already run for ``day``."""
    return set(conn.execute(select(rd.c.journey_id).where(rd.c.run_day == day)).scalars())


def claim_day(conn: Connection, journey_id: str, day: date, now: datetime, by: str) -> bool:
    """Record that ``journey_id`` runs for ``day`` in this unit of work; False when it already
    was. On PostgreSQL a concurrent claim of the same day waits for the other transaction:
    its commit makes this one find the day taken, its rollback lets this one have it."""
    return bool(claim_days(conn, [journey_id], day, now, by))


def claim_days(
    conn: Connection, journey_ids: Iterable[str], day: date, now: datetime, by: str
) -> set[str]:
    """Claim ``day`` for several journeys at once; returns the ones this call claimed."""
    rows = [
        {"journey_id": j, "run_day": day, "run_at": now, "by": by[:200]}
        for j in sorted(set(journey_ids))
    ]
    if not rows:
        return set()
    return set(conn.execute(_claim_stmt(conn.dialect.name), rows).scalars())


def run_days(
    conn: Connection, journey_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The latest recorded run days, newest first."""
    q = select(rd).order_by(rd.c.run_day.desc(), rd.c.journey_id).limit(limit)
    if journey_id is not None:
        q = q.where(rd.c.journey_id == journey_id)
    return [dict(r) for r in conn.execute(q).mappings()]
