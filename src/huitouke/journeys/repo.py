"""Stored journey definitions: those defined through the API and the built-ins switched on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, select, update

from huitouke.errors import InputError, NotFoundError
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.model import Journey
from huitouke.journeys.tables import journey_definitions as jd

__all__ = [
    "all_journeys",
    "delete_journey",
    "enabled_journeys",
    "parse_journey",
    "save_journey",
    "set_enabled",
]


def parse_journey(data: Any) -> Journey:
    """Validate a journey given as JSON data; errors name the field."""
    try:
        return Journey.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(
            f"{field or 'journey'}: {msg}",
            code="journey.invalid",
            message_zh=f"字段 {field or '旅程'} 无效:{msg}",
            details={
                "field": field,
                "errors": [
                    {"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                    for e in exc.errors()
                ],
            },
        ) from exc


def _stored(conn: Connection) -> dict[str, tuple[Journey, bool, str]]:
    out = {}
    for r in conn.execute(select(jd)).mappings():
        out[r["journey_id"]] = (parse_journey(r["definition"]), bool(r["enabled"]), r["source"])
    return out


def all_journeys(conn: Connection) -> list[dict[str, Any]]:
    """Built-ins (off unless switched on) and stored journeys, with their state."""
    stored = _stored(conn)
    rows = []
    for j in builtin_journeys():
        if j.id not in stored:
            rows.append({"journey": j, "enabled": False, "source": "builtin"})
    for jid in sorted(stored):
        j, enabled, source = stored[jid]
        rows.append({"journey": j, "enabled": enabled, "source": source})
    return sorted(rows, key=lambda r: r["journey"].id)


def enabled_journeys(conn: Connection) -> list[Journey]:
    return [j.model_copy(update={"enabled": True}) for j, on, _ in _stored(conn).values() if on]


def save_journey(
    conn: Connection, journey: Journey, *, source: str = "api", enabled: bool | None = None
) -> None:
    now = datetime.now(UTC)
    exists = conn.execute(select(jd.c.enabled).where(jd.c.journey_id == journey.id)).first()
    data = journey.model_dump(mode="json")
    if exists is None:
        conn.execute(
            jd.insert().values(
                journey_id=journey.id,
                definition=data,
                enabled=journey.enabled if enabled is None else enabled,
                source=source,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        values: dict[str, Any] = {"definition": data, "updated_at": now, "source": source}
        if enabled is not None:
            values["enabled"] = enabled
        conn.execute(update(jd).where(jd.c.journey_id == journey.id).values(**values))


def set_enabled(conn: Connection, journey_id: str, enabled: bool) -> Journey:
    """Switch a stored or built-in journey on or off."""
    row = conn.execute(select(jd).where(jd.c.journey_id == journey_id)).mappings().first()
    if row is None:
        builtin = {j.id: j for j in builtin_journeys()}
        if journey_id not in builtin:
            raise NotFoundError(
                f"no journey {journey_id!r}",
                code="journey.not_found",
                message_zh=f"没有旅程 {journey_id!r}",
            )
        save_journey(conn, builtin[journey_id], source="builtin", enabled=enabled)
        return builtin[journey_id]
    conn.execute(
        update(jd)
        .where(jd.c.journey_id == journey_id)
        .values(enabled=enabled, updated_at=datetime.now(UTC))
    )
    return parse_journey(row["definition"])


def delete_journey(conn: Connection, journey_id: str) -> None:
    n = conn.execute(delete(jd).where(jd.c.journey_id == journey_id)).rowcount
    if not n:
        raise NotFoundError(
            f"no stored journey {journey_id!r}",
            code="journey.not_found",
            message_zh=f"没有已保存的旅程 {journey_id!r}",
        )
