"""From the canonical orders table to the per-day transactions the models take.

Counting follows the brief: only orders that are paid and not fully refunded or cancelled
(``COUNTED_STATUSES``) count, and an order's value is its revenue ``amount −
refunded_amount``. Days are the merchant's local calendar days: an order at 23:30 in
Shanghai on 1 May belongs to 1 May even though it is 15:30 UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import InputError, ModelFitError

__all__ = ["as_local_day", "counted_transactions", "last_order_day", "too_little_data"]

_REQUIRED = ("customer_id", "ordered_at", "amount", "currency", "status", "refunded_amount")


def as_local_day(value: Any, timezone: str, argument: str = "as_of") -> date:
    """``value`` as the merchant's local day: a ``date`` as is, an aware ``datetime`` in
    ``timezone``, a string ``YYYY-MM-DD``. Naive datetimes are refused (time is explicit)."""
    from zoneinfo import ZoneInfo

    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(
                f"`{argument}` must carry a time zone (or be a local date), got {value!r}",
                code="input.naive_datetime",
                message_zh=f"`{argument}` 必须带时区(或传入本地日期),实际为 {value!r}",
                details={"argument": argument},
            )
        return value.astimezone(ZoneInfo(timezone)).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InputError(
        f"`{argument}` must be a date YYYY-MM-DD, got {value!r}",
        code="input.bad_date",
        message_zh=f"`{argument}` 必须是日期 YYYY-MM-DD,实际为 {value!r}",
        details={"argument": argument},
    )


def _check_zone(timezone: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {timezone!r} (use an IANA name such as Asia/Shanghai)",
            code="input.bad_timezone",
            message_zh=f"未知时区 {timezone!r}(请使用 IANA 名称,如 Asia/Shanghai)",
            details={"argument": "timezone"},
        ) from exc


def counted_transactions(
    orders: pa.Table,
    *,
    timezone: str,
    currency: str | None = None,
    until: date | None = None,
) -> tuple[pd.DataFrame, str]:
    """``(frame, currency)``: the counted orders as ``customer_id``, ``day`` (local date as
    ``datetime64``) and ``amount`` (revenue, float — model input, not money arithmetic),
    up to and including the local day ``until``.

    Without ``currency`` the data must hold exactly one currency among counted orders:
    values in different currencies cannot be averaged.
    """
    missing = [c for c in _REQUIRED if c not in orders.column_names]
    if missing:
        raise InputError(
            f"the orders table lacks columns {missing}; pass the canonical orders table "
            "(huitouke.importing.read_orders(...).orders or Store.load_orders())",
            code="input.missing_column",
            message_zh=f"订单表缺少列 {missing};请传入标准订单表",
            details={"columns": missing},
        )
    _check_zone(timezone)
    mask = pc.is_in(orders.column("status"), value_set=pa.array(COUNTED_STATUSES))
    counted = orders.filter(mask)
    currencies = sorted(str(c) for c in pc.unique(counted.column("currency")).to_pylist())
    if currency is None:
        if len(currencies) > 1:
            raise InputError(
                f"the orders are in several currencies {currencies}; choose one (--currency)",
                code="input.mixed_currency",
                message_zh=f"订单含多种币种 {currencies};请指定一种(--currency)",
                details={"currencies": currencies},
            )
        currency = currencies[0] if currencies else ""
    else:
        counted = counted.filter(pc.equal(counted.column("currency"), currency))
    # the same instants labelled with the merchant's zone, read back as local wall time
    local = pc.local_timestamp(counted.column("ordered_at").cast(pa.timestamp("us", tz=timezone)))
    days = pc.floor_temporal(local, unit="day")
    revenue = pc.subtract(counted.column("amount"), counted.column("refunded_amount"))
    frame = pd.DataFrame(
        {
            "customer_id": counted.column("customer_id").to_numpy(zero_copy_only=False),
            "day": pd.to_datetime(days.to_numpy(zero_copy_only=False)),
            "amount": revenue.cast(pa.float64()).to_numpy(zero_copy_only=False),
        }
    )
    if until is not None:
        frame = frame[frame["day"] <= pd.Timestamp(until)].reset_index(drop=True)
    return frame, currency


def last_order_day(orders: pa.Table, *, timezone: str, currency: str | None = None) -> date:
    """The merchant's local day of the last counted order — the natural default ``as_of``."""
    frame, _ = counted_transactions(orders, timezone=timezone, currency=currency)
    if frame.empty:
        raise InputError(
            "there are no counted orders (paid or partially refunded) to predict from",
            code="input.no_orders",
            message_zh="没有可统计的订单(已支付或部分退款)可用于预测",
        )
    last: date = frame["day"].max().date()
    return last


#: below this many customers (or customers buying on two days or more) the model parameters
#: are not identified: the predictions are left out with a reason instead of showing noise
MIN_CUSTOMERS = 30
MIN_REPEAT_CUSTOMERS = 5


def require_enough_data(
    orders: pa.Table,
    *,
    timezone: str,
    currency: str | None = None,
    until: date | None = None,
) -> tuple[int, int]:
    """``(customers, repeat customers)`` of the counted orders up to ``until``; raises
    ``model.too_little_data`` when the counted orders up to ``until`` have fewer
    than :data:`MIN_CUSTOMERS` customers or :data:`MIN_REPEAT_CUSTOMERS` customers with
    orders on two days or more — the one data threshold of every door's predictions."""
    tx, _ = counted_transactions(orders, timezone=timezone, currency=currency, until=until)
    per_customer = tx[["customer_id", "day"]].drop_duplicates().groupby("customer_id").size()
    n = len(per_customer)
    n_repeat = int((per_customer > 1).sum())
    refused = too_little_data(n, n_repeat)
    if refused is not None:
        raise refused
    return n, n_repeat


def too_little_data(n: int, n_repeat: int) -> ModelFitError | None:
    """The data threshold on counts an engine made itself (``n`` customers, ``n_repeat`` of
    them buying on two days or more): ``model.too_little_data`` below it, else None."""
    if n >= MIN_CUSTOMERS and n_repeat >= MIN_REPEAT_CUSTOMERS:
        return None
    return ModelFitError(
        f"too little data for a model: {n} customers, {n_repeat} with a repeat order "
        f"(needs at least {MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS})",
        code="model.too_little_data",
        message_zh=f"数据太少,无法建模:{n} 位顾客,其中 {n_repeat} 位有复购"
        f"(至少需要 {MIN_CUSTOMERS} 位和 {MIN_REPEAT_CUSTOMERS} 位)",
        details={"customers": n, "repeat_customers": n_repeat},
    )
