"""The shop's overview: the one use case behind the console's first page.

:func:`overview` reads the recorded orders once (:func:`huitouke.app.orders.load_orders`)
and asks the analytics for what the overview shows — the per-period metrics with their
headline (exactly :meth:`Analytics.metrics_json`, the JSON of ``huitouke metrics --format
json`` and ``GET /v1/metrics``), the cohort grid and the purchase ladder. Nothing here
computes a metric: a number on the overview is the analytics' number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from huitouke.analytics import Analytics, LayerWindows
from huitouke.app.orders import load_orders
from huitouke.store.db import Store

__all__ = ["OverviewOptions", "overview", "overviews"]


@dataclass(frozen=True)
class OverviewOptions:
    """What the overview is cut by: the merchant's zone (required), same-day merging, the
    period kind, how many cohorts (most recent), months after the first (k) and ladder steps
    are shown."""

    timezone: str
    merge_same_day: bool = False
    period: str = "month"
    max_cohorts: int = 12
    max_k: int = 12
    ladder_steps: int = 5
    windows: LayerWindows | None = None


def _num(v: Any) -> float | None:
    """A float, or None for a missing value (pandas turns None into NaN in float columns)."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def overview(store: Store, options: OverviewOptions) -> dict[str, Any]:
    """``{"metrics": <metrics_json>, "cohorts": {"labels", "k", "share", "size"},
    "ladder": [{"k", "reached_k", "reached_k_plus_1", "share", "median_days"}],
    "orders": N}`` for the store's recorded orders."""
    return overviews(load_orders(store), options, [options.period])[options.period]


def overviews(
    orders: pa.Table, options: OverviewOptions, periods: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """:func:`overview` of ``orders`` for each period kind of ``periods`` (``options.period``
    ignored), from one analytics session: the snapshot refresh computes every period kind the
    console offers from one read of the orders. The cohorts and the ladder do not depend on
    the period kind; each result holds its own copy."""
    with Analytics(
        orders,
        timezone=options.timezone,
        merge_same_day=options.merge_same_day,
        windows=options.windows,
    ) as analytics:
        metrics = {p: analytics.metrics_json(p) for p in periods}
        share = analytics.cohorts("share")
        size = analytics.cohorts("customers")
        ladder = analytics.ladder(options.ladder_steps)
    cohorts: dict[str, Any] = {"labels": [], "k": [], "share": [], "size": []}
    if not share.empty:
        share = share.iloc[-options.max_cohorts :]
        size = size.loc[share.index]
        # the months since the first order that any cohort shown has reached, at most max_k
        ks = [
            k
            for k in share.columns
            if int(k) <= options.max_k and any(v is not None for v in share[k])
        ]
        cohorts = {
            "labels": [str(label) for label in share.index],
            "k": [int(k) for k in ks],
            "share": [[_num(v) for v in share.loc[label, ks]] for label in share.index],
            "size": [int(size.loc[label, 0]) for label in share.index],
        }
    steps = [
        {
            "k": int(r["k"]),
            "reached_k": int(r["reached_k"]),
            "reached_k_plus_1": int(r["reached_k_plus_1"]),
            "share": _num(r["share"]),
            "median_days": _num(r["median_days"]),
        }
        for r in ladder.to_dict("records")
    ]
    return {
        p: {
            "metrics": metrics[p],
            "cohorts": {k: list(v) for k, v in cohorts.items()},
            "ladder": [dict(r) for r in steps],
            "orders": orders.num_rows,
        }
        for p in periods
    }
