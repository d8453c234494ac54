"""Shop-shaped order exports made in the tests: a generic CSV (Chinese headers, local
times, one row per order) of an ordinary shop — most customers buy once, a sixth come
back, 18 months of history, orders at any time of day."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = ["订单号", "会员号", "下单时间", "实付金额", "订单状态"]


def write_shop_csv(
    path: Path,
    *,
    seed: int,
    customers: int,
    p_repeat: float,
    rate_shape: float,
    span_days: int = 540,
    mean_gap_days: float = 45.0,
) -> Path:
    """Customers arrive uniformly over ``span_days``; after each order a customer orders
    again with probability ``p_repeat`` after an exponential gap whose rate is
    Gamma(``rate_shape``) around 1/``mean_gap_days`` (a large shape: customers alike —
    the case that drives MBG/NBD's r and α to infinity)."""
    rng = np.random.default_rng(seed)
    start = datetime(2023, 7, 1)
    rows = []
    oid = 100000
    for c in range(customers):
        t = rng.uniform(0, span_days)
        rate = rng.gamma(rate_shape, (1 / mean_gap_days) / rate_shape)
        while t < span_days:
            oid += 1
            at = start + timedelta(days=float(t), seconds=int(rng.uniform(8 * 3600, 23 * 3600)))
            amount = f"{rng.gamma(2.0, 60.0):.2f}"
            rows.append(
                (f"T{oid}", f"C{c:05d}", at.strftime("%Y-%m-%d %H:%M:%S"), amount, "交易成功")
            )
            if rng.random() > p_repeat:
                break
            t += rng.exponential(1 / rate)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def read_days(path: Path) -> pd.DataFrame:
    """(customer_id, day) of every order, read with pandas alone (the reference)."""
    raw = pd.read_csv(path, dtype=str)
    return pd.DataFrame(
        {
            "customer_id": raw["会员号"],
            "day": pd.to_datetime(raw["下单时间"]).dt.normalize(),
        }
    )
