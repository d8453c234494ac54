"""Synthetic orders for benchmarks and demos: seeded numpy, built directly as Arrow."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from huitouke.core.orders import DEFAULT_SOURCE, MONEY, ORDERS_SCHEMA, OrderStatus

__all__ = ["decimal_array", "synthetic_orders", "write_synthetic_orders"]


def decimal_array(unscaled: np.ndarray, type_: pa.Decimal128Type = MONEY) -> pa.Array:
    """A decimal128 array from unscaled int64 values (e.g. 12345 → 1.2345 at scale 4)."""
    u = np.ascontiguousarray(unscaled, dtype=np.int64)
    two = np.empty((len(u), 2), dtype=np.int64)
    two[:, 0] = u
    two[:, 1] = np.where(u < 0, -1, 0)
    return pa.Array.from_buffers(type_, len(u), [None, pa.py_buffer(two.tobytes())])


def synthetic_orders(
    n_orders: int,
    n_customers: int,
    *,
    seed: int = 0,
    start: datetime = datetime(2022, 1, 1, tzinfo=UTC),
    days: int = 3 * 365,
    currency: str = "CNY",
) -> pa.Table:
    """``n_orders`` orders of ``n_customers`` customers (each has at least one order when
    ``n_orders ≥ n_customers``; the rest go to a heavy-tailed few, as in real shops), spread
    uniformly over ``days``; 95 % paid, 2 % partially refunded (half), 2 % refunded,
    1 % cancelled. Amounts are whole yuan from a log-normal around 90."""
    rng = np.random.default_rng(seed)
    base = np.arange(min(n_customers, n_orders), dtype=np.int64)
    extra = n_orders - len(base)
    heavy = (rng.pareto(1.2, extra) * n_customers / 20).astype(np.int64) % max(n_customers, 1)
    cust = np.concatenate([base, heavy])
    rng.shuffle(cust)
    t0 = int(start.timestamp() * 1_000_000)
    ts = t0 + rng.integers(0, days * 86_400_000_000, n_orders, dtype=np.int64)
    yuan = np.maximum(1, rng.lognormal(4.5, 0.8, n_orders).astype(np.int64))
    status_codes = rng.choice(4, n_orders, p=[0.95, 0.02, 0.02, 0.01])
    statuses = np.array([s.value for s in OrderStatus])
    unscaled = yuan * 10_000
    refunded = np.where(
        status_codes == 2, unscaled, np.where(status_codes == 1, (yuan // 2) * 10_000, 0)
    )
    ids = pa.array(np.arange(n_orders, dtype=np.int64)).cast(pa.string())
    return pa.table(
        {
            "order_id": ids,
            "customer_id": pa.array(cust).cast(pa.string()),
            "ordered_at": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "amount": decimal_array(unscaled),
            "currency": pa.repeat(pa.scalar(currency), n_orders).cast(pa.string()),
            "status": pa.DictionaryArray.from_arrays(
                pa.array(status_codes.astype(np.int32)), pa.array(statuses)
            ).cast(pa.string()),
            "refunded_amount": decimal_array(refunded),
            "channel": pa.nulls(n_orders, pa.string()),
            "source": pa.repeat(pa.scalar(DEFAULT_SOURCE), n_orders).cast(pa.string()),
        },
        schema=ORDERS_SCHEMA,
    )


def _orders_chunk(
    lo: int,
    hi: int,
    n_customers: int,
    rng: np.random.Generator,
    t0: int,
    days: int,
    currency: str,
) -> pa.Table:
    """Orders ``lo`` … ``hi − 1`` of :func:`write_synthetic_orders` (one row group)."""
    n = hi - lo
    idx = np.arange(lo, hi, dtype=np.int64)
    # order i < n_customers belongs to customer i (everyone has an order; the times are
    # random, so who is first is too); the rest go to a heavy-tailed few
    heavy = (rng.pareto(1.2, n) * n_customers / 20).astype(np.int64) % max(n_customers, 1)
    cust = np.where(idx < n_customers, idx, heavy)
    ts = t0 + rng.integers(0, days * 86_400_000_000, n, dtype=np.int64)
    yuan = np.maximum(1, rng.lognormal(4.5, 0.8, n).astype(np.int64))
    status_codes = rng.choice(4, n, p=[0.95, 0.02, 0.02, 0.01])
    statuses = np.array([s.value for s in OrderStatus])
    unscaled = yuan * 10_000
    refunded = np.where(
        status_codes == 2, unscaled, np.where(status_codes == 1, (yuan // 2) * 10_000, 0)
    )
    return pa.table(
        {
            "order_id": pa.array(idx).cast(pa.string()),
            "customer_id": pa.array(cust).cast(pa.string()),
            "ordered_at": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "amount": decimal_array(unscaled),
            "currency": pa.repeat(pa.scalar(currency), n).cast(pa.string()),
            "status": pa.DictionaryArray.from_arrays(
                pa.array(status_codes.astype(np.int32)), pa.array(statuses)
            ).cast(pa.string()),
            "refunded_amount": decimal_array(refunded),
            "channel": pa.nulls(n, pa.string()),
            "source": pa.repeat(pa.scalar(DEFAULT_SOURCE), n).cast(pa.string()),
        },
        schema=ORDERS_SCHEMA,
    )


def write_synthetic_orders(
    path: str,
    n_orders: int,
    n_customers: int,
    *,
    seed: int = 0,
    start: datetime = datetime(2022, 1, 1, tzinfo=UTC),
    days: int = 3 * 365,
    currency: str = "CNY",
    row_group: int = 4_000_000,
) -> int:
    """Write ``n_orders`` orders of ``n_customers`` customers to one Parquet file, built and
    written ``row_group`` orders at a time (memory stays that of one row group, whatever
    ``n_orders``). The same mix as :func:`synthetic_orders` (each customer has at least one
    order; the rest heavy-tailed; 95 % paid, 2 % partially refunded, 2 % refunded, 1 %
    cancelled), not the same rows. Deterministic for a seed and row-group size. Returns the
    number of row groups written."""
    import pyarrow.parquet as pq

    t0 = int(start.timestamp() * 1_000_000)
    groups = 0
    with pq.ParquetWriter(path, ORDERS_SCHEMA, compression="snappy") as writer:
        for lo in range(0, n_orders, row_group):
            rng = np.random.default_rng([seed, groups])
            hi = min(n_orders, lo + row_group)
            writer.write_table(
                _orders_chunk(lo, hi, n_customers, rng, t0, days, currency),
                row_group_size=row_group,
            )
            groups += 1
    return groups
