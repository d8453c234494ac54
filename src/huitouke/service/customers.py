"""Customer profile use cases (read, replace) on the core table; the consent they show is
the one the dispatcher applies (:mod:`huitouke.app.consent`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, literal_column, select, union

from huitouke.errors import NotFoundError
from huitouke.i18n import t
from huitouke.store.tables import customers, orders

__all__ = ["customer_orders", "get_customer", "put_customer", "search_customers"]

_PROFILE_FIELDS = (
    "name",
    "phone",
    "email",
    "birthday",
    "tags",
    "attributes",
    "consent",
    "timezone",
)


def _not_found(customer_id: str) -> NotFoundError:
    return NotFoundError(
        t("service.customer_not_found", "en", customer_id=customer_id),
        code="customer.not_found",
        message_zh=t("service.customer_not_found", "zh", customer_id=customer_id),
        details={"customer_id": customer_id},
    )


def _row(conn: Connection, customer_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = select(customers).where(customers.c.customer_id == customer_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        return None
    out = dict(row._mapping)
    for key, empty in (("tags", []), ("attributes", {}), ("consent", {})):
        if out.get(key) is None:
            out[key] = empty
    return out


def get_customer(conn: Connection, customer_id: str) -> dict[str, Any]:
    """The profile; ``consent`` is what the dispatcher applies (flags folded with events)."""
    from huitouke.app.consent import consent_view

    row = _row(conn, customer_id)
    if row is None:
        raise _not_found(customer_id)
    row["consent"] = consent_view(conn, customer_id)
    return row


def put_customer(
    conn: Connection, customer_id: str, profile: dict[str, Any], *, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Create or replace a profile; returns (profile, created)."""
    values: dict[str, Any] = {f: profile.get(f) for f in _PROFILE_FIELDS}
    values["tags"] = list(values["tags"] or [])
    values["attributes"] = dict(values["attributes"] or {})
    values["consent"] = dict(values["consent"] or {})
    if isinstance(values["birthday"], str):
        values["birthday"] = date.fromisoformat(values["birthday"])
    existing = _row(conn, customer_id, lock=True)
    if existing is None:
        conn.execute(
            customers.insert().values(
                customer_id=customer_id, created_at=now, updated_at=now, **values
            )
        )
        return get_customer(conn, customer_id), True
    if any(existing.get(k) != v for k, v in values.items()):
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == customer_id)
            .values(updated_at=now, **values)
        )
    return get_customer(conn, customer_id), False


def _prefix(text: str) -> str:
    """A LIKE pattern for "starts with ``text``" (its own ``%``, ``_`` and ``\\`` literal)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _next_prefix(text: str) -> str:
    """The first string after every string that starts with ``text`` (its last character
    incremented): ``[text, _next_prefix(text))`` is exactly the strings with that prefix in
    code-point order, SQLite's order of text."""
    return text[:-1] + chr(min(ord(text[-1]) + 1, 0x10FFFF))


def search_customers(conn: Connection, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Customers whose id, phone, e-mail or name starts with ``query`` (e-mail and name
    without regard to case; an empty query lists the first customers by id), each with
    ``orders`` (every recorded order) and ``last_order_at``; at most ``limit``, by id.

    One query per field, each the first ``limit`` matches by id, their union cut to the
    first ``limit`` by id: exactly the first ``limit`` matches of any field, and each part
    can use its field's prefix index (migration ``search_0001``) or walk the id order,
    whichever the planner finds cheaper — an ``OR`` of four prefixes would use neither. (On
    PostgreSQL the id part takes its first matches in byte order, the order of its prefix
    index: the same as the id order under the C and C.UTF-8 collations.)
    """
    q = query.strip()
    cols = (customers.c.customer_id, customers.c.name, customers.c.phone, customers.c.email)
    if not q:
        stmt = select(*cols).order_by(customers.c.customer_id)
    else:
        lowered = q.lower()
        fields: tuple[tuple[Any, str], ...] = (
            (customers.c.customer_id, q),
            (customers.c.phone, q),
            (func.lower(customers.c.email), lowered),
            (func.lower(customers.c.name), lowered),
        )
        parts = []
        for expr, text in fields:
            order: Any = customers.c.customer_id
            if conn.dialect.name == "postgresql":
                cond = expr.like(_prefix(text), escape="\\")
                if expr is customers.c.customer_id:
                    # the id prefix index (varchar_pattern_ops) serves the prefix and, with its
                    # own operator, the order: its first matches, not a walk of the primary
                    # key past every smaller id (64 ms for 0012… among a million ids)
                    order = literal_column("customer_id USING ~<~")
            else:
                cond = and_(expr >= text, expr < _next_prefix(text))
            part = (
                select(customers.c.customer_id).where(cond).order_by(order).limit(limit).subquery()
            )
            parts.append(select(part.c.customer_id))
        matched = union(*parts).subquery()
        stmt = (
            select(*cols)
            .where(customers.c.customer_id.in_(select(matched.c.customer_id)))
            .order_by(customers.c.customer_id)
        )
    rows = [dict(r._mapping) for r in conn.execute(stmt.limit(limit))]
    if not rows:
        return rows
    ids = [r["customer_id"] for r in rows]
    counts = {
        r.customer_id: (int(r.n), r.last)
        for r in conn.execute(
            select(
                orders.c.customer_id,
                func.count().label("n"),
                func.max(orders.c.ordered_at).label("last"),
            )
            .where(orders.c.customer_id.in_(ids))
            .group_by(orders.c.customer_id)
        )
    }
    for r in rows:
        n, last = counts.get(r["customer_id"], (0, None))
        r["orders"] = n
        r["last_order_at"] = last
    return rows


def customer_orders(
    conn: Connection, customer_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """The customer's recorded orders, newest first (at most ``limit``)."""
    stmt = (
        select(orders)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.ordered_at.desc(), orders.c.order_id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]
