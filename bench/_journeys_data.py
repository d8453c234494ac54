"""Synthetic customers frames for the journeys benchmark (realistic shapes, fixed seed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

LAYERS = np.array(["new", "active", "cooling", "high_winback", "low_winback", "lost"], dtype=object)
RFM = np.array(
    [
        "champions",
        "loyal",
        "potential_loyalist",
        "new",
        "promising",
        "need_attention",
        "about_to_sleep",
        "at_risk",
        "cant_lose",
        "hibernating",
        "lost",
    ],
    dtype=object,
)


def synthetic_customers(n: int, as_of: date, seed: int = 7) -> pd.DataFrame:
    """``n`` customers with orders, recency, cycles, birthdays and loyalty balances."""
    rng = np.random.default_rng(seed)
    orders = rng.geometric(0.45, n).astype(np.int64)
    since_last = rng.integers(0, 720, n)
    span = np.where(orders > 1, rng.integers(1, 900, n), 0)
    end = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC)
    last = pd.to_datetime(
        end
        - pd.to_timedelta(since_last, unit="D")
        + pd.to_timedelta(rng.integers(0, 86400, n), unit="s")
    )
    first = last - pd.to_timedelta(span, unit="D")
    cycle = np.where(orders > 1, np.maximum(span // np.maximum(orders - 1, 1), 1), np.nan)
    next_exp = last.tz_convert(None).normalize() + pd.to_timedelta(
        np.nan_to_num(cycle, nan=0), unit="D"
    )
    next_exp = next_exp.where(orders > 1)
    layer = np.select(
        [
            (orders == 1) & (since_last <= 45),
            since_last <= 45,
            since_last <= 90,
            since_last <= 180,
            since_last <= 360,
        ],
        ["new", "active", "cooling", "high_winback", "low_winback"],
        "lost",
    )
    birthday = pd.to_datetime("1970-01-01") + pd.to_timedelta(
        rng.integers(0, 365 * 40, n), unit="D"
    )
    birthday = birthday.where(rng.random(n) < 0.6)
    pts_exp = pd.Timestamp(as_of) + pd.to_timedelta(rng.integers(0, 120, n), unit="D")
    pts_exp = pts_exp.where(rng.random(n) < 0.4)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:07d}" for i in range(n)],
            "orders": orders,
            "spend": orders * 88.0,
            "first_order_at": first,
            "last_order_at": last,
            "cycle_days": cycle,
            "next_expected_date": next_exp.date if hasattr(next_exp, "date") else next_exp,
            "layer": layer,
            "rfm_segment": RFM[rng.integers(0, len(RFM), n)],
            "lifecycle": np.where(
                orders == 1, "acquisition", np.where(orders < 5, "growth", "maturity")
            ),
            "p_alive": rng.random(n),
            "birthday": birthday,
            "points_expiring_on": pts_exp,
            "next_tier_gap_ratio": rng.random(n),
            "stamps_to_reward": rng.integers(1, 8, n),
        }
    )


def synthetic_events(
    customers: pd.DataFrame, as_of: date, share: float = 0.003, seed: int = 8
) -> pd.DataFrame:
    """Order events of the last few days for a share of the customers."""
    rng = np.random.default_rng(seed)
    pick = customers["customer_id"].sample(frac=share, random_state=seed).to_numpy()
    rows = []
    base = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) - timedelta(hours=2)
    for ev, lag in (("order_shipped", 0), ("order_delivered", 0), ("order_completed", 3)):
        at = (
            base
            - pd.to_timedelta(lag, unit="D")
            - pd.to_timedelta(rng.integers(0, 20, len(pick)), unit="h")
        )
        rows.append(
            pd.DataFrame(
                {"customer_id": pick, "event": ev, "at": at, "order_id": [f"o-{c}" for c in pick]}
            )
        )
    return pd.concat(rows, ignore_index=True)
