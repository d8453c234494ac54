"""Helpers for journeys tests: small hand-made customers frames."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd


def at(day: str, hour: int = 4) -> datetime:
    """An instant on ``day`` (04:00 UTC = 12:00 in Shanghai)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {
        "orders": 1,
        "layer": "active",
        "rfm_segment": "loyal",
        "lifecycle": "growth",
        "p_alive": 0.8,
        "next_expected_date": None,
        "birthday": None,
        "points_expiring_on": None,
        "next_tier_gap_ratio": None,
        "stamps_to_reward": None,
    }
    out = []
    for r in rows:
        rec = {**base, **r}
        if "first_order_at" not in rec:
            rec["first_order_at"] = rec["last_order_at"]
        out.append(rec)
    df = pd.DataFrame(out)
    for c in ("next_expected_date", "birthday", "points_expiring_on"):
        df[c] = pd.to_datetime(df[c])
    return df


def d(s: str) -> date:
    return date.fromisoformat(s)
