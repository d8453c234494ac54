"""Journey audiences by tag and by profile attribute: the audience language's ``tags_all``,
``tags_none`` and ``attributes`` conditions, in the pure engine and through a real journey
run on a store whose tags and attributes were set by the tags use case (SQLite and
PostgreSQL); tagging a whole audience picks exactly the customers a journey would."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from huitouke.app.profiles import Target, change_attribute, change_tags, define_attribute
from huitouke.errors import InputError, NotFoundError
from huitouke.journeys.engine import attribute_matches, audience_mask
from huitouke.journeys.frame import day_number, prepare
from huitouke.journeys.model import AttributeCondition, Audience
from huitouke.journeys.service import run_journeys
from huitouke.store.db import Store
from huitouke.store.profiles import customer_profile_events, customer_tags
from huitouke.store.tables import customers

from .conftest import at, frame
from .test_service_store import AS_OF, BUILTIN, seed, settings

NOW = datetime(2026, 3, 20, 4, 0, tzinfo=UTC)


def _mask(aud: Audience, df) -> list[str]:  # type: ignore[no-untyped-def]
    ca = prepare(df, "Asia/Shanghai")
    return sorted(str(x) for x in ca.ids[audience_mask(aud, ca, day_number(AS_OF))])


def test_tag_and_attribute_conditions_in_the_engine() -> None:
    df = frame(
        {"customer_id": "a", "last_order_at": at("2026-03-01"), "tags": ["vip", "north"],
         "attributes": {"spend": __import__("decimal").Decimal("120.5"), "city": "Shanghai",
                        "since": date(2024, 5, 1)}},
        {"customer_id": "b", "last_order_at": at("2026-03-01"), "tags": ["vip"],
         "attributes": {"spend": __import__("decimal").Decimal("20"), "city": "Beijing"}},
        {"customer_id": "c", "last_order_at": at("2026-03-01"), "tags": [], "attributes": {}},
    )  # fmt: skip
    assert _mask(Audience(tags_all=["vip", "north"]), df) == ["a"]
    assert _mask(Audience(tags_none=["north"]), df) == ["b", "c"]
    assert _mask(Audience(tags_any=["vip"], tags_none=["north"]), df) == ["b"]
    cond = AttributeCondition
    assert _mask(Audience(attributes=[cond(key="spend", op="gt", value=100)]), df) == ["a"]
    assert _mask(Audience(attributes=[cond(key="spend", op="le", value="20")]), df) == ["b"]
    assert _mask(
        Audience(attributes=[cond(key="city", op="in", value=["Beijing", "Xi'an"])]), df
    ) == ["b"]
    assert _mask(Audience(attributes=[cond(key="since", op="lt", value="2025-01-01")]), df) == ["a"]
    assert _mask(Audience(attributes=[cond(key="since", op="set")]), df) == ["a"]
    assert _mask(Audience(attributes=[cond(key="city", op="unset")]), df) == ["c"]
    assert _mask(Audience(attributes=[cond(key="city", op="ne", value="Shanghai")]), df) == [
        "b",
        "c",
    ]
    # all conditions must hold
    both = [cond(key="city", op="eq", value="Shanghai"), cond(key="spend", op="lt", value=50)]
    assert _mask(Audience(attributes=both), df) == []
    # a frame without the columns: nobody has a tag or a value
    bare = frame({"customer_id": "z", "last_order_at": at("2026-03-01")})
    assert _mask(Audience(tags_all=["vip"]), bare) == []
    assert _mask(Audience(tags_none=["vip"]), bare) == ["z"]
    assert _mask(Audience(attributes=[cond(key="city", op="unset")]), bare) == ["z"]
    # a text against a number never matches (but is "not equal")
    assert not attribute_matches(
        cond(key="spend", op="gt", value="lots"), __import__("decimal").Decimal(5)
    )
    assert attribute_matches(
        cond(key="spend", op="ne", value="lots"), __import__("decimal").Decimal(5)
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"key": "City", "op": "eq", "value": "x"},
        {"key": "city", "op": "set", "value": "x"},
        {"key": "city", "op": "in", "value": "x"},
        {"key": "city", "op": "gt"},
        {"key": "city", "op": "like", "value": "x"},
    ],
)
def test_bad_attribute_conditions_are_refused(bad) -> None:
    with pytest.raises(ValidationError):
        Audience.model_validate({"attributes": [bad]})


def _planned(store: Store, audience: dict) -> set[str]:  # type: ignore[type-arg]
    j = BUILTIN["second_order"].model_copy(
        update={"holdout": 0.0, "audience": Audience.model_validate(audience)}
    )
    res = run_journeys(store, [j], AS_OF, settings=settings(), dry_run=True)
    return {r.customer_id for r in res.plan.rows.itertuples() if r.reason_code == "planned"}


def test_a_journey_audience_filters_by_tag_and_attribute_set_through_the_use_case(
    store: Store,
) -> None:
    seed(store, n=12)
    s = settings()
    change_tags(
        store, s, Target(customer_ids=["c3", "c4", "c5", "c4"]), ["vip"], actor="ana", now=NOW
    )
    change_tags(store, s, Target(customer_ids=["c5"]), ["blocked"], actor="ana", now=NOW)
    define_attribute(store, "city", "choice", choices=["Shanghai", "Beijing"], actor="ana", now=NOW)
    define_attribute(store, "spend", "number", actor="ana", now=NOW)
    change_attribute(
        store, s, Target(customer_ids=["c3", "c4", "c6"]), "city", "Shanghai", actor="otto", now=NOW
    )
    change_attribute(store, s, Target(customer_ids=["c3"]), "spend", "100", actor="otto", now=NOW)
    change_attribute(store, s, Target(customer_ids=["c4"]), "spend", "20.5", actor="otto", now=NOW)

    # c2 and up have consent (c0 none, c1 unsubscribed): every planned one is in the audience
    assert _planned(store, {"tags_all": ["vip"]}) == {"c3", "c4", "c5"}
    assert _planned(store, {"tags_any": ["vip"], "tags_none": ["blocked"]}) == {"c3", "c4"}
    assert _planned(store, {"attributes": [{"key": "city", "op": "eq", "value": "Shanghai"}]}) == {
        "c3", "c4", "c6"
    }  # fmt: skip
    assert _planned(
        store,
        {"tags_all": ["vip"], "attributes": [{"key": "spend", "op": "gt", "value": 50}]},
    ) == {"c3"}

    # a tag on a whole audience reaches exactly the customers the journey picks
    done = change_tags(
        store, s, Target(audience=Audience(attributes=[AttributeCondition(key="city", op="eq", value="Shanghai")])),
        ["shanghai"], actor="otto", now=NOW,
    )  # fmt: skip
    assert done == {"tags": ["shanghai"], "customers": 3, "changed": 3}
    assert _planned(store, {"tags_all": ["shanghai"]}) == {"c3", "c4", "c6"}
    again = change_tags(
        store, s, Target(customer_ids=["c3", "c4", "c6"]), ["shanghai"], actor="otto", now=NOW
    )
    assert again["changed"] == 0  # set-based and idempotent
    with store.connect() as conn:
        history = conn.execute(
            select(func.count())
            .select_from(customer_profile_events)
            .where(customer_profile_events.c.name == "shanghai")
        ).scalar_one()
    assert history == 3


def test_imported_tags_count_and_removing_removes_them_too(store: Store) -> None:
    seed(store, n=4)
    with store.begin() as conn:
        conn.execute(
            customers.update().where(customers.c.customer_id == "c2").values(tags=["imported"])
        )
    assert _planned(store, {"tags_any": ["imported"]}) == {"c2"}
    res = change_tags(
        store,
        settings(),
        Target(customer_ids=["c2"]),
        ["imported"],
        remove=True,
        actor="ana",
        now=NOW,
    )
    assert res["changed"] == 1
    assert _planned(store, {"tags_any": ["imported"]}) == set()


def test_unknown_customers_and_bad_values_change_nothing(store: Store) -> None:
    seed(store, n=3)
    s = settings()
    with pytest.raises(NotFoundError) as err:
        change_tags(store, s, Target(customer_ids=["c1", "nobody"]), ["vip"], actor="ana", now=NOW)
    assert err.value.code == "customer.not_found" and "nobody" in err.value.message
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(customer_tags)).scalar_one() == 0
    define_attribute(store, "birth", "date", actor="ana", now=NOW)
    with pytest.raises(InputError) as bad:
        change_attribute(
            store, s, Target(customer_ids=["c1"]), "birth", "31/02/2020", actor="ana", now=NOW
        )
    assert bad.value.code == "attribute.bad_value" and bad.value.details["field"] == "birth"
    with pytest.raises(NotFoundError):
        change_attribute(store, s, Target(customer_ids=["c1"]), "nope", "x", actor="ana", now=NOW)
    with pytest.raises(InputError) as both:
        change_tags(store, s, Target(), ["vip"], actor="ana", now=NOW)
    assert both.value.code == "profile.no_target"
    with pytest.raises(InputError) as tag:
        change_tags(store, s, Target(customer_ids=["c1"]), ["a,b"], actor="ana", now=NOW)
    assert tag.value.code == "tag.invalid"
    # redefining with another type is a conflict; the same definition is a no-op
    define_attribute(store, "birth", "date", actor="ana", now=NOW)
    with pytest.raises(Exception) as conflict:
        define_attribute(store, "birth", "number", actor="ana", now=NOW)
    assert getattr(conflict.value, "code", "") == "attribute.conflict"
