"""Statements over the connectors' tables; each takes the caller's open connection, so a
use case composes them into one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Connection, String, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from huitouke.connectors.tables import connector_cursors, connector_inbox, connectors

__all__ = [
    "add_connector",
    "cursor",
    "delete_connector",
    "get_connector",
    "inbox_add",
    "inbox_lock",
    "inbox_mark",
    "inbox_rows",
    "latest_applied",
    "list_connectors",
    "move_cursor",
    "set_connector_status",
    "set_credentials",
    "sync_ended",
    "sync_started",
]


def add_connector(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert the connector; False when the name is taken (nothing written)."""
    stmt = (
        _insert(conn, connectors)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(connectors.c.name)
    )
    if conn.execute(stmt).scalar() is None:
        return False
    conn.execute(connector_cursors.insert().values(connector=row["name"], pulled=0))
    return True


def get_connector(conn: Connection, name: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = select(connectors).where(connectors.c.name == name)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    return None if row is None else dict(row)


def list_connectors(conn: Connection) -> list[dict[str, Any]]:
    q = (
        select(connectors, connector_cursors)
        .join(connector_cursors, connector_cursors.c.connector == connectors.c.name, isouter=True)
        .order_by(connectors.c.name)
    )
    return [dict(r) for r in conn.execute(q).mappings()]


def set_connector_status(conn: Connection, name: str, status: str, now: datetime) -> bool:
    r = conn.execute(
        update(connectors).where(connectors.c.name == name).values(status=status, updated_at=now)
    )
    return r.rowcount == 1


def set_credentials(
    conn: Connection, name: str, credentials: dict[str, str], now: datetime
) -> bool:
    """Replace the connector's sealed credentials (a refreshed token)."""
    r = conn.execute(
        update(connectors)
        .where(connectors.c.name == name)
        .values(credentials=credentials, updated_at=now)
    )
    return r.rowcount == 1


def delete_connector(conn: Connection, name: str) -> bool:
    """The connector, its cursor and its inbox (the orders it recorded stay)."""
    conn.execute(delete(connector_inbox).where(connector_inbox.c.connector == name))
    conn.execute(delete(connector_cursors).where(connector_cursors.c.connector == name))
    return conn.execute(delete(connectors).where(connectors.c.name == name)).rowcount == 1


def cursor(conn: Connection, name: str) -> dict[str, Any]:
    row = (
        conn.execute(select(connector_cursors).where(connector_cursors.c.connector == name))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else {"connector": name, "watermark": None, "pulled": 0}


def sync_started(conn: Connection, name: str, now: datetime) -> None:
    conn.execute(
        update(connector_cursors)
        .where(connector_cursors.c.connector == name)
        .values(sync_started_at=now, last_error=None)
    )


def move_cursor(conn: Connection, name: str, watermark: datetime | None, pulled: int) -> None:
    """Move the high-water mark forward (never back) and count the orders pulled."""
    cur = cursor(conn, name)["watermark"]
    values: dict[str, Any] = {"pulled": connector_cursors.c.pulled + pulled}
    if watermark is not None and (cur is None or watermark > cur):
        values["watermark"] = watermark
    conn.execute(
        update(connector_cursors).where(connector_cursors.c.connector == name).values(**values)
    )


def sync_ended(conn: Connection, name: str, now: datetime, error: str | None) -> None:
    conn.execute(
        update(connector_cursors)
        .where(connector_cursors.c.connector == name)
        .values(sync_finished_at=now, last_error=error)
    )


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def inbox_add(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[tuple[int, bool]]:
    """Store deliveries (``pending`` unless the row says otherwise) in one statement; per
    row ``(inbox_id, stored_now)`` — a delivery already in the inbox (same connector, object
    and update time, also twice in ``rows``) is kept as it was."""
    if not rows:
        return []
    c = connector_inbox.c
    full = [{"status": "pending", "reason": None, "attempts": 0, **r} for r in rows]
    stmt = (
        _insert(conn, connector_inbox)
        .on_conflict_do_nothing(index_elements=["connector", "object_id", "updated_at"])
        .returning(c.inbox_id, c.connector, c.object_id, c.updated_at)
    )
    new = {(r[1], r[2], r[3]): int(r[0]) for r in conn.execute(stmt, full)}
    out: list[tuple[int, bool]] = []
    claimed: set[tuple[Any, ...]] = set()
    for row in rows:
        k = (row["connector"], row["object_id"], row["updated_at"])
        if k in new and k not in claimed:
            claimed.add(k)
            out.append((new[k], True))
            continue
        existing = (
            new.get(k)
            or conn.execute(
                select(c.inbox_id).where(
                    c.connector == k[0], c.object_id == k[1], c.updated_at == k[2]
                )
            ).scalar_one()
        )
        out.append((int(existing), False))
    return out


def inbox_rows(
    conn: Connection,
    name: str,
    *,
    statuses: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    limit: int = 1000,
    lock: bool = False,
    received_before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Inbox rows of a connector, oldest first (by platform update time, then arrival)."""
    q = select(connector_inbox).where(connector_inbox.c.connector == name)
    if received_before is not None:
        q = q.where(connector_inbox.c.received_at < received_before)
    if statuses is not None:
        q = q.where(connector_inbox.c.status.in_(list(statuses)))
    if ids is not None:
        q = q.where(connector_inbox.c.inbox_id.in_(list(ids)))
    q = q.order_by(connector_inbox.c.updated_at, connector_inbox.c.inbox_id).limit(limit)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return [dict(r) for r in conn.execute(q).mappings()]


def inbox_arrivals(
    conn: Connection,
    connectors: Sequence[str],
    *,
    since: datetime,
    limit: int,
    skip_topics: Sequence[str] = (),
) -> list[tuple[int, str]]:
    """``(inbox_id, connector)`` of the pending rows of ``connectors`` received at or after
    ``since``, in arrival order — found through ``ix_connector_inbox_status`` (connector and
    status equal: only the pending entries are read, however long the inbox's history)."""
    if not connectors:
        return []
    c = connector_inbox.c
    q = select(c.inbox_id, c.connector).where(
        c.connector.in_(list(connectors)), c.status == "pending", c.received_at >= since
    )
    if skip_topics:
        q = q.where(c.topic.not_in(list(skip_topics)))
    q = q.order_by(c.inbox_id).limit(limit)
    return [(int(i), str(n)) for i, n in conn.execute(q)]


_MARK = (
    update(connector_inbox)
    .where(connector_inbox.c.inbox_id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        attempts=connector_inbox.c.attempts + 1,
        applied_at=bindparam("b_applied_at"),
    )
)


def inbox_mark(
    conn: Connection, marks: Sequence[tuple[int, str, str | None]], now: datetime
) -> None:
    """``(inbox_id, status, reason)`` each: one attempt more, applied now when applied
    (one statement for all)."""
    if not marks:
        return
    conn.execute(
        _MARK,
        [
            {
                "b_id": inbox_id,
                "b_status": status,
                "b_reason": reason,
                "b_applied_at": now if status in ("applied", "ignored") else None,
            }
            for inbox_id, status, reason in marks
        ],
    )


_LATEST_PG = (
    select(connector_inbox.c.object_id, func.max(connector_inbox.c.updated_at))
    .where(
        connector_inbox.c.connector == bindparam("name"),
        connector_inbox.c.status == "applied",
        connector_inbox.c.object_id == func.any(bindparam("ids", type_=ARRAY(String))),
    )
    .group_by(connector_inbox.c.object_id)
)


def latest_applied(conn: Connection, name: str, object_ids: Sequence[str]) -> dict[str, datetime]:
    """Per object, the latest platform update time already applied from the inbox."""
    if not object_ids:
        return {}
    if conn.dialect.name == "postgresql":  # one statement text whatever the count
        rows = conn.execute(_LATEST_PG, {"name": name, "ids": sorted(set(object_ids))})
        return {r[0]: r[1] for r in rows}
    q = (
        select(connector_inbox.c.object_id, func.max(connector_inbox.c.updated_at))
        .where(
            connector_inbox.c.connector == name,
            connector_inbox.c.status == "applied",
            connector_inbox.c.object_id.in_(sorted(set(object_ids))),
        )
        .group_by(connector_inbox.c.object_id)
    )
    return {r[0]: r[1] for r in conn.execute(q)}


_LOCK_PG = text(
    "SELECT inbox_id, status FROM connector_inbox WHERE inbox_id = ANY(:ids) "
    "ORDER BY inbox_id FOR UPDATE"
)


def inbox_lock(conn: Connection, ids: Sequence[int]) -> dict[int, str]:
    """The inbox rows ``ids``, locked until the unit of work ends (PostgreSQL: row locks
    taken in id order; SQLite: the unit holds the database's write lock): per row its
    status now — what another applier may have changed since the caller read it."""
    if not ids:
        return {}
    if conn.dialect.name == "postgresql":  # one statement text whatever the count
        rows = conn.execute(_LOCK_PG, {"ids": sorted(set(ids))})
    else:
        c = connector_inbox.c
        rows = conn.execute(select(c.inbox_id, c.status).where(c.inbox_id.in_(sorted(set(ids)))))
    return {int(r[0]): str(r[1]) for r in rows}
