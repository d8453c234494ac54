"""Reading platform values (pure): money, instants, ids — each error names the field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from huitouke.connectors.model import Unmappable

__all__ = ["gid_number", "instant", "money", "person_name", "text"]


def money(value: Any, field: str) -> Decimal:
    """A platform amount (a decimal string) as a Decimal; never through a float."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise Unmappable(f"{field}: not a decimal amount: {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise Unmappable(f"{field}: not a decimal amount: {value!r}") from None
    if not d.is_finite():
        raise Unmappable(f"{field}: not a finite amount: {value!r}")
    return d


def instant(value: Any, field: str) -> datetime:
    """An ISO 8601 instant with an offset (``Z`` or ``±hh:mm``); a time without one is
    refused rather than read in the machine's zone."""
    if not isinstance(value, str) or not value:
        raise Unmappable(f"{field}: missing instant")
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise Unmappable(f"{field}: not an ISO 8601 instant: {value!r}") from None
    if d.tzinfo is None:
        raise Unmappable(f"{field}: instant without a time zone: {value!r}")
    return d


def gid_number(value: Any) -> str:
    """``gid://shopify/Order/123`` → ``123`` (what the webhooks call ``id``); a plain id as
    text."""
    s = str(value)
    return s.rsplit("/", 1)[-1] if s.startswith("gid://") else s


def text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _cjk(s: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in s)


def person_name(node: Any, first: str, last: str) -> str | None:
    """A name from its given and family parts (``first``, ``last``: the fields' names):
    ``"Ana Lima"``; a Chinese name family name first, without a space (``王伟``); ``None``
    when neither is given."""
    if not isinstance(node, Mapping):
        return None
    given, family = (str(node.get(f) or "").strip() for f in (first, last))
    if not given or not family:
        return given or family or None
    return f"{family}{given}" if _cjk(given + family) else f"{given} {family}"
