"""The loyalty ledger's shared vocabulary: asset names, JSON formatting, input checks, the
order event (:class:`OrderEvent`, :func:`parse_order`) and the stored value paid on orders.

Every module of the package may import this one; it imports none of them but the ledger
tables and the pure rules, so the use cases (the mechanic modules, the batch ledger in
:mod:`~huitouke.loyalty.order_batch`, the :class:`~huitouke.loyalty.service.LoyaltyService`
façade) share it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal_column, select

from huitouke.core.orders import COUNTED_STATUSES, DEFAULT_SOURCE, OrderStatus, order_ref
from huitouke.errors import InputError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.rules import Line, stored_value_return_target

__all__ = [
    "COUNTED",
    "POINTS",
    "POINTS_DEBT",
    "STATUSES",
    "SV_BONUS",
    "SV_HELD",
    "SV_PAID",
    "SV_PENDING",
    "SV_RETURN",
    "ZERO",
    "OrderEvent",
    "StoredValueOnOrder",
    "aware",
    "dec",
    "fmt",
    "iso",
    "parse_lines",
    "parse_order",
    "positive",
    "stamps_asset",
    "stamps_debt_asset",
    "stored_value_on_orders",
    "stored_value_payers",
]

ZERO = Decimal(0)
POINTS, POINTS_DEBT = "points", "points_debt"
SV_PAID, SV_BONUS, SV_PENDING, SV_HELD = (
    "stored_paid",
    "stored_bonus",
    "stored_bonus_pending",
    "stored_held",
)
COUNTED = COUNTED_STATUSES
STATUSES = tuple(s.value for s in OrderStatus)
#: entry kind of stored value given back to the balances an order's payment came from
SV_RETURN = "spend_reversal"


def stamps_asset(card_id: str) -> str:
    """The ledger asset of a stamp card's stamps."""
    return f"stamps:{card_id}"


def stamps_debt_asset(card_id: str) -> str:
    """The ledger asset of the stamps a card owes (taken back by refunds after spending)."""
    return f"stamps_debt:{card_id}"


def fmt(v: Decimal | int | None) -> str | None:
    """A decimal as a plain string without exponent or trailing zeros ("200", "12.5")."""
    if v is None:
        return None
    d = Decimal(v).quantize(Decimal("0.0001"))
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def iso(v: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC (``None`` stays ``None``)."""
    return v.astimezone(UTC).isoformat() if v is not None else None


def dec(value: Any, field: str) -> Decimal:
    """``value`` as a finite Decimal; the error names ``field``."""
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise InputError(
            f"{field}: not a decimal number: {value!r}",
            code="input.invalid",
            message_zh=f"{field}:不是有效的数字:{value!r}",
            details={"field": field},
        ) from exc
    if not d.is_finite():
        raise InputError(
            f"{field}: not a finite number", code="input.invalid", details={"field": field}
        )
    return d


def aware(value: Any, field: str) -> datetime:
    """``value`` (an aware datetime or an ISO 8601 string with an offset) in UTC; the error
    names ``field``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputError(
                f"{field}: not an ISO 8601 instant: {value!r}",
                code="input.invalid",
                message_zh=f"{field}:不是有效的时间:{value!r}",
                details={"field": field},
            ) from exc
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(
            f"{field}: needs a time zone (an aware datetime)",
            code="input.invalid",
            message_zh=f"{field}:需要带时区的时间",
            details={"field": field},
        )
    return value.astimezone(UTC)


def positive(v: Decimal, field: str) -> Decimal:
    """``v`` when it is above zero; the error names ``field``."""
    if v <= 0:
        raise InputError(
            f"{field} must be > 0",
            code="input.invalid",
            message_zh=f"{field} 必须大于 0",
            details={"field": field},
        )
    return v


@dataclass(frozen=True)
class OrderEvent:
    order_id: str
    customer_id: str
    ordered_at: datetime
    amount: Decimal
    currency: str
    status: str
    refunded_amount: Decimal
    lines: tuple[Line, ...]
    #: the order's source: it is identified by (source, order_id)
    source: str = DEFAULT_SOURCE

    @property
    def ref(self) -> str:
        """How the ledger's text references name the order (:func:`~huitouke.core.orders.order_ref`)."""
        return order_ref(self.source, self.order_id)

    @property
    def refund_total(self) -> Decimal:
        """What has been taken back: everything for refunded/cancelled orders."""
        if self.status in ("refunded", "cancelled"):
            return self.amount
        return self.refunded_amount


def parse_order(order: Mapping[str, Any]) -> OrderEvent:
    """Validate an order event; errors name the field."""
    for f in ("order_id", "customer_id", "ordered_at", "amount", "status"):
        if order.get(f) in (None, ""):
            raise InputError(
                f"{f}: required",
                code="input.missing_field",
                message_zh=f"缺少字段 {f}",
                details={"field": f},
            )
    status = str(order["status"])
    if status not in STATUSES:
        raise InputError(
            f"status: {status!r} is not one of {', '.join(STATUSES)}",
            code="input.invalid",
            message_zh=f"status:未知状态 {status!r}",
            details={"field": "status"},
        )
    amount = dec(order["amount"], "amount")
    refunded = dec(order.get("refunded_amount") or 0, "refunded_amount")
    if amount < 0:
        raise InputError("amount must be >= 0", code="input.invalid", details={"field": "amount"})
    if refunded < 0 or refunded > amount:
        raise InputError(
            "refunded_amount must be between 0 and amount",
            code="input.invalid",
            message_zh="退款金额必须在 0 与订单金额之间",
            details={"field": "refunded_amount"},
        )
    lines = []
    for i, ln in enumerate(order.get("lines") or ()):
        q = ln.get("quantity", 1)
        if not isinstance(q, int) or q < 0:
            raise InputError(
                f"lines.{i}.quantity: a whole number >= 0",
                code="input.invalid",
                details={"field": f"lines.{i}.quantity"},
            )
        lines.append(
            Line(
                sku=ln.get("sku"),
                category=ln.get("category"),
                quantity=q,
                unit_price=dec(ln.get("unit_price", 0), f"lines.{i}.unit_price"),
            )
        )
    return OrderEvent(
        order_id=str(order["order_id"]),
        customer_id=str(order["customer_id"]),
        ordered_at=aware(order["ordered_at"], "ordered_at"),
        amount=amount,
        currency=str(order.get("currency") or ""),
        status=status,
        refunded_amount=refunded,
        lines=tuple(lines),
        source=str(order.get("source") or DEFAULT_SOURCE),
    )


@dataclass
class StoredValueOnOrder:
    """What one customer paid for one order with stored value, and what came back since."""

    spent_paid: Decimal = ZERO
    spent_bonus: Decimal = ZERO
    back_paid: Decimal = ZERO
    back_bonus: Decimal = ZERO

    @property
    def spent(self) -> Decimal:
        return self.spent_paid + self.spent_bonus

    @property
    def returned(self) -> Decimal:
        return self.back_paid + self.back_bonus

    def owed(self, amount: Decimal, refunded: Decimal, *, full: bool, unit: Decimal) -> Decimal:
        """What a refund of ``refunded`` of an order of ``amount`` (``full``: refunded or
        cancelled) still owes back of this stored value: the cumulative target
        (:func:`~huitouke.loyalty.rules.stored_value_return_target`) minus what came back."""
        target = stored_value_return_target(self.spent, amount, refunded, full=full, unit=unit)
        return target - self.returned


_sva, _sve = lt.accounts.c, lt.entries.c
#: stored-value payments and give-backs on orders, by customer, asset, reference and kind
_STORED_VALUE_ON_ORDERS = (
    select(
        _sva.customer_id, _sva.asset, _sve.reference, _sve.kind, func.sum(_sve.delta).label("total")
    )
    .select_from(lt.entries.join(lt.accounts, _sva.account_id == _sve.account_id))
    .where(
        _sva.customer_id.in_(bindparam("cs", expanding=True)),
        _sva.asset.in_((SV_PAID, SV_BONUS)),
        _sve.reference.in_(bindparam("refs", expanding=True)),
        _sve.kind.in_(("spend", SV_RETURN)),
    )
    .group_by(_sva.customer_id, _sva.asset, _sve.reference, _sve.kind)
)


#: the accounts whose stored value paid for orders (the partial index
#: ``ix_loyalty_entries_spend_reference`` serves it: ``kind = 'spend'`` by reference)
_SPENT_ON_ORDERS = (
    select(_sva.customer_id, _sve.reference)
    .select_from(lt.entries.join(lt.accounts, _sva.account_id == _sve.account_id))
    .where(
        # a literal, not a parameter: what lets the planners use the partial index
        _sve.kind == literal_column("'spend'"),
        _sve.reference.in_(bindparam("refs", expanding=True)),
        _sva.asset.in_((SV_PAID, SV_BONUS)),
    )
    .distinct()
)


def stored_value_payers(conn: Connection, order_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each order id → the customers whose stored value paid for it (``spend`` entries
    referencing ``order:<id>``), sorted; orders nobody paid with stored value are left out.
    A merged person pays from any of its accounts (:mod:`huitouke.loyalty.stored_value`),
    and an unmerge moves nothing, so an order may have been paid from several customers'."""
    wanted = sorted(set(order_ids))
    out: dict[str, set[str]] = {}
    for i in range(0, len(wanted), 1000):
        refs = {f"order:{oid}": oid for oid in wanted[i : i + 1000]}
        for r in conn.execute(_SPENT_ON_ORDERS, {"refs": sorted(refs)}).all():
            out.setdefault(refs[r.reference], set()).add(r.customer_id)
    return {oid: sorted(cs) for oid, cs in out.items()}


def stored_value_on_orders(
    conn: Connection, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredValueOnOrder]:
    """For each (customer, order id): the stored value paid on the order (``spend`` entries
    on ``stored_paid`` / ``stored_bonus`` referencing ``order:<id>``) and what was given back
    (``spend_reversal`` entries). Pairs without any such entry are left out. Read under the
    caller's lock on the two accounts."""
    wanted = sorted(set(pairs))
    out: dict[tuple[str, str], StoredValueOnOrder] = {}
    for i in range(0, len(wanted), 1000):
        chunk = wanted[i : i + 1000]
        refs = {f"order:{order_id}": order_id for _, order_id in chunk}
        want = set(chunk)
        rows = conn.execute(
            _STORED_VALUE_ON_ORDERS,
            {"cs": sorted({c for c, _ in chunk}), "refs": sorted(refs)},
        ).all()
        for r in rows:
            key = (r.customer_id, refs[r.reference])
            if key not in want:
                continue
            rec = out.setdefault(key, StoredValueOnOrder())
            total = Decimal(r.total)  # SUM keeps the Money type: an exact Decimal
            if r.kind == "spend":
                if r.asset == SV_PAID:
                    rec.spent_paid -= total
                else:
                    rec.spent_bonus -= total
            elif r.asset == SV_PAID:
                rec.back_paid += total
            else:
                rec.back_bonus += total
    return out


def parse_lines(lines: Iterable[Mapping[str, Any]] | None) -> tuple[Line, ...]:
    """The order lines given to a coupon redemption or a checkout quote."""
    out = []
    for i, ln in enumerate(lines or ()):
        out.append(
            Line(
                ln.get("sku"),
                ln.get("category"),
                int(ln.get("quantity", 1)),
                dec(ln.get("unit_price", 0), f"lines.{i}.unit_price"),
            )
        )
    return tuple(out)
