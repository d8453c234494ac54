"""One vocabulary: order statuses, segment and channel names are defined once, by the
context that owns them, and imported everywhere else — never re-typed as literals."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from huitouke.analytics.segments import LAYERS, LIFECYCLE_STAGES, RFM_SEGMENTS
from huitouke.core.orders import COUNTED_STATUSES, OrderStatus
from huitouke.messaging.rules import CHANNELS

SRC = Path(__file__).resolve().parents[1] / "src" / "huitouke"

#: vocabulary → the one module allowed to spell it out
OWNERS: dict[frozenset[str], tuple[str, str]] = {
    frozenset(COUNTED_STATUSES): ("counted order statuses", "core/orders.py"),
    frozenset(s.value for s in OrderStatus): ("order statuses", "core/orders.py"),
    frozenset(LAYERS): ("customer layers", "analytics/segments.py"),
    frozenset(LIFECYCLE_STAGES): ("lifecycle stages", "analytics/segments.py"),
    frozenset(RFM_SEGMENTS): ("RFM segments", "analytics/segments.py"),
    frozenset(CHANNELS): ("channel names", "messaging/rules.py"),
}


def _string_collections(tree: ast.AST) -> list[tuple[int, frozenset[str]]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) and all(isinstance(v, str) for v in values):
                out.append((node.lineno, frozenset(values)))
    return out


def test_vocabularies_are_spelled_out_only_by_their_owner() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("store/migrations/"):
            continue  # a migration is history: it keeps the words of its day
        for line, values in _string_collections(ast.parse(path.read_text())):
            owner = OWNERS.get(values)
            if owner is not None and owner[1] != rel:
                if rel == "service/schemas.py" and owner[0] == "order statuses":
                    continue  # the API's Literal (its OpenAPI enum), checked below
                found.append(f"{rel}:{line} re-types the {owner[0]} of {owner[1]}")
    assert not found, "\n".join(found)


def test_the_api_order_status_enum_is_the_core_one() -> None:
    from huitouke.service.schemas import OrderStatusIn

    assert set(get_args(OrderStatusIn)) == {s.value for s in OrderStatus}


def test_counted_statuses_are_paid_and_partially_refunded() -> None:
    assert set(COUNTED_STATUSES) == {"paid", "partially_refunded"}


def test_journey_audiences_and_steps_accept_only_the_owners_names() -> None:
    import pytest
    from pydantic import ValidationError

    from huitouke.journeys.model import Audience, SendStep

    assert Audience(layers=list(LAYERS), lifecycles=list(LIFECYCLE_STAGES)).layers == list(LAYERS)
    for bad in ({"layers": ["sleeping"]}, {"lifecycles": ["teenage"]}, {"rfm_segments": ["x"]}):
        with pytest.raises(ValidationError, match="unknown"):
            Audience(**bad)
    for ch in CHANNELS:
        assert SendStep(type="send", channel=ch, template="t").channel == ch
    with pytest.raises(ValidationError, match="unknown channel 'fax'"):
        SendStep(type="send", channel="fax", template="t")
