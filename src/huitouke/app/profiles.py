"""Tags and profile attributes (标签/画像): one use case per change, for every door (the
console, ``huitouke tags|attributes``, ``/v1/tags`` and ``/v1/attributes``).

A change targets either customers by id or everybody a journey audience selects — the
same audience language (:class:`huitouke.journeys.model.Audience`: RFM segment, layer,
lifecycle, orders, tags, attributes…) and the same evaluation
(:func:`huitouke.journeys.engine.audience_mask`) as a journey, on the customers frame
journeys read, so "tag this segment" and "send to this segment" pick the same people. The
change itself is set-based (:mod:`huitouke.store.profiles`), writes one history row per
customer and one audit row, all in one unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from huitouke.errors import InputError
from huitouke.journeys.engine import audience_mask
from huitouke.journeys.frame import day_number, prepare
from huitouke.journeys.integration import customers_frame
from huitouke.journeys.model import Audience
from huitouke.settings import Settings
from huitouke.store import profiles as p
from huitouke.store.audit import audit
from huitouke.store.db import Store
from huitouke.store.uow import run_read, run_write

__all__ = [
    "Target",
    "audience_ids",
    "change_attribute",
    "change_tags",
    "customer_profile",
    "define_attribute",
    "parse_audience",
    "profile_overview",
]


@dataclass(frozen=True)
class Target:
    """Whom a change is for: ``customer_ids`` or everybody ``audience`` selects (one of them)."""

    customer_ids: Sequence[str] | None = None
    audience: Audience | None = None

    def check(self) -> None:
        if (self.customer_ids is None) == (self.audience is None):
            raise InputError(
                "name the customers (ids) or an audience, not both and not neither",
                code="profile.no_target",
                message_zh="请指定顾客编号或人群条件(二选一)",
                details={"field": "customer_ids"},
            )


def parse_audience(data: Any) -> Audience:
    """An audience from JSON data; ``journey.invalid``-like errors name the field."""
    from pydantic import ValidationError

    try:
        return Audience.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "audience"
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise InputError(
            f"audience.{where}: {reason}",
            code="profile.bad_audience",
            message_zh=f"人群条件 audience.{where}:{reason}",
            details={"field": f"audience.{where}"},
        ) from None


def audience_ids(store: Store, settings: Settings, audience: Audience, as_of: date) -> list[str]:
    """The customers ``audience`` selects on ``as_of``, as a journey would select them."""
    wants_p_alive = audience.p_alive_min is not None or audience.p_alive_max is not None
    frame = customers_frame(store, as_of, settings=settings, with_p_alive=wants_p_alive)
    if frame.empty:
        return []
    arrays = prepare(frame, settings.timezone)
    mask = audience_mask(audience, arrays, day_number(as_of))
    return [str(x) for x in arrays.ids[mask]]


def _ids(store: Store, settings: Settings, target: Target, now: datetime) -> list[str]:
    target.check()
    if target.audience is not None:
        as_of = now.astimezone(settings.zone).date()
        return audience_ids(store, settings, target.audience, as_of)
    return list(target.customer_ids or ())


def _how(target: Target) -> dict[str, Any]:
    if target.audience is not None:
        return {"audience": target.audience.model_dump(mode="json", exclude_none=True)}
    return {}


def change_tags(
    store: Store,
    settings: Settings,
    target: Target,
    tags: Sequence[str],
    *,
    remove: bool = False,
    actor: str,
    now: datetime,
    client: str = "-",
) -> dict[str, Any]:
    """Add (or ``remove``) ``tags`` on the target's customers; how many pairs changed."""
    checked = sorted({p.check_tag(t) for t in tags})
    if not checked:
        raise InputError(
            "name at least one tag", code="tag.invalid", message_zh="请至少指定一个标签",
            details={"field": "tags"},
        )  # fmt: skip
    ids = _ids(store, settings, target, now)

    def unit(conn: Any) -> int:
        fn = p.remove_tags if remove else p.add_tags
        changed = fn(conn, ids, checked, actor=actor, now=now)
        audit(
            conn, actor=actor, action="tags.remove" if remove else "tags.add",
            target=",".join(checked),
            detail={"customers": len(set(ids)), "changed": changed, **_how(target)},
            now=now, client=client,
        )  # fmt: skip
        return changed

    changed = run_write(store, unit)
    return {"tags": checked, "customers": len(set(ids)), "changed": changed}


def define_attribute(
    store: Store,
    key: str,
    type_: str,
    *,
    choices: Sequence[str] = (),
    actor: str,
    now: datetime,
    client: str = "-",
) -> p.AttributeDef:
    def unit(conn: Any) -> p.AttributeDef:
        before = p.get_attribute(conn, key.strip())
        attr = p.define_attribute(conn, key, type_, choices=choices, actor=actor, now=now)
        if before is None:
            audit(conn, actor=actor, action="attribute.define", target=attr.key,
                  detail={"type": attr.type, "choices": list(attr.choices)}, now=now,
                  client=client)  # fmt: skip
        return attr

    return run_write(store, unit)


def change_attribute(
    store: Store,
    settings: Settings,
    target: Target,
    key: str,
    value: str | None,
    *,
    actor: str,
    now: datetime,
    client: str = "-",
) -> dict[str, Any]:
    """Set ``key`` to ``value`` (None: clear it) on the target's customers."""
    ids = _ids(store, settings, target, now)

    def unit(conn: Any) -> int:
        if value is None:
            changed = p.clear_attribute(conn, ids, key, actor=actor, now=now)
        else:
            changed = p.set_attribute(conn, ids, key, value, actor=actor, now=now)
        audit(
            conn, actor=actor, action="attribute.clear" if value is None else "attribute.set",
            target=key,
            detail={"customers": len(set(ids)), "changed": changed, **_how(target),
                    **({} if value is None else {"value": value.strip()[:200]})},
            now=now, client=client,
        )  # fmt: skip
        return changed

    changed = run_write(store, unit)
    return {"key": key, "customers": len(set(ids)), "changed": changed}


def customer_profile(store: Store, customer_id: str) -> dict[str, Any]:
    """One customer's tags, attribute values and the history of who set them."""
    return run_read(store, lambda conn: p.profile_of(conn, customer_id))


def profile_overview(store: Store) -> dict[str, Any]:
    """Every added tag with its number of customers, and the defined attributes."""

    def read(conn: Any) -> dict[str, Any]:
        return {
            "tags": [{"tag": t, "customers": n} for t, n in p.list_tags(conn)],
            "attributes": [a.to_dict() for a in p.list_attributes(conn)],
        }

    return run_read(store, read)
