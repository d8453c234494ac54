"""Segment rules as data (pure): RFM scoring and naming, the seed layering with its
strategy table, and lifecycle stages.

The engine turns these tables into SQL (a join against the RFM grid, ``CASE`` expressions
built from the windows) so the rules live in exactly one place; the scalar functions here
are the readable statement of each rule and are tested cell by cell against the SQL.

RFM scores (BRIEF: "R, F, M each 1–5 by quintile"): for a measure where higher is better
(F = orders, M = spend, R = −days since last order), a customer's score is
``1 + floor(5 × (rank − 1) / n)`` where ``rank`` is the customer's 1-based rank from worst
to best with ties sharing the lowest rank (SQL ``RANK()``), and ``n`` the number of
customers. Ties therefore always share a score, and the score is deterministic.

RFM segment names follow the widely used R×F grid (the map popularised by the RFM
segmentation notebooks; M is scored and reported but, as in that map, does not change the
name). The seed's eleven names fill the 5×5 grid; "lost" is the corner R=1, F=1 carved out
of "hibernating"::

            F=1             F=2             F=3             F=4         F=5
    R=5     new             potential_loy.  potential_loy.  champions   champions
    R=4     promising       potential_loy.  potential_loy.  loyal       loyal
    R=3     about_to_sleep  about_to_sleep  need_attention  loyal       loyal
    R=2     hibernating     hibernating     at_risk         at_risk     cant_lose
    R=1     lost            hibernating     at_risk         at_risk     cant_lose
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "LAYERS",
    "LAYER_STRATEGY",
    "LIFECYCLE_STAGES",
    "RFM_GRID",
    "RFM_SEGMENTS",
    "LayerWindows",
    "LifecycleRules",
    "layer_of",
    "lifecycle_of",
    "rfm_score",
    "rfm_segment",
]

RFM_SEGMENTS: tuple[str, ...] = (
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
)

_ROWS: dict[int, tuple[str, str, str, str, str]] = {
    5: ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    4: ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
}

#: (r_score, f_score) → segment name, all 25 cells.
RFM_GRID: dict[tuple[int, int], str] = {
    (r, f): _ROWS[r][f - 1] for r in range(1, 6) for f in range(1, 6)
}


def rfm_score(rank: int, n: int) -> int:
    """Quintile score 1–5 of a customer ranked ``rank`` (1 = worst, ties share the lowest
    rank) among ``n`` customers."""
    if n <= 0 or not 1 <= rank <= n:
        raise ValueError(f"rank {rank} outside 1..{n}")
    return 1 + (5 * (rank - 1)) // n


def rfm_segment(r_score: int, f_score: int) -> str:
    return RFM_GRID[(r_score, f_score)]


# --- the seed layering ---------------------------------------------------------------------

LAYERS: tuple[str, ...] = ("new", "active", "cooling", "high_winback", "low_winback", "lost")


@dataclass(frozen=True, slots=True)
class LayerWindows:
    """Seed layering windows in days since the last order, as of a reference date D.

    ``d`` = days from the customer's last order (local date) to D:

    * ``d ≤ new_days``: ``new`` with exactly one order, else ``active`` (活跃老顾客);
    * ``new_days < d ≤ cooling_days``: ``cooling`` (观察期; not named in the seed);
    * ``cooling_days < d ≤ high_winback_days``: ``high_winback`` (高挽回顾客);
    * ``high_winback_days < d ≤ lost_days``: ``low_winback`` (低挽回顾客);
    * ``d > lost_days``: ``lost`` (流失).
    """

    new_days: int = 45
    cooling_days: int = 90
    high_winback_days: int = 180
    lost_days: int = 360

    def __post_init__(self) -> None:
        from huitouke.errors import InputError

        w = (self.new_days, self.cooling_days, self.high_winback_days, self.lost_days)
        if not (0 <= w[0] <= w[1] <= w[2] <= w[3]):
            raise InputError(
                f"layer windows must grow: new ≤ cooling ≤ high win-back ≤ lost, got {w}",
                code="input.bad_layer_windows",
                message_zh=f"分层窗口必须递增(新顾客 ≤ 观察期 ≤ 高挽回 ≤ 流失),实际为 {w}",
            )

    @classmethod
    def from_settings(cls, settings: Any = None) -> LayerWindows:
        if settings is None:
            from huitouke.settings import get_settings

            settings = get_settings()
        return cls(
            settings.layer_new_days,
            settings.layer_cooling_days,
            settings.layer_high_winback_days,
            settings.layer_lost_days,
        )


def layer_of(orders: int, days_since_last: int, w: LayerWindows) -> str:
    if days_since_last <= w.new_days:
        return "new" if orders == 1 else "active"
    if days_since_last <= w.cooling_days:
        return "cooling"
    if days_since_last <= w.high_winback_days:
        return "high_winback"
    if days_since_last <= w.lost_days:
        return "low_winback"
    return "lost"


#: The seed's strategy per layer ("new → push the 2nd order; active → perks, early access,
#: trials; high win-back → regular marketing + care; low win-back → care + big-promotion
#: pushes only"). ``cooling`` and ``lost`` are not in the seed's table; their advice is ours
#: and says so (``from_seed`` False).
LAYER_STRATEGY: dict[str, dict[str, Any]] = {
    "new": {
        "zh": "新顾客:促成第二单(第二单优惠、复购提醒、包裹卡)",
        "en": "New: push the second order (2nd-order offer, timed reminder, package insert)",
        "from_seed": True,
    },
    "active": {
        "zh": "活跃老顾客:会员特权、新品优先购、试用",
        "en": "Active returning: member perks, early access to new products, trials",
        "from_seed": True,
    },
    "cooling": {
        "zh": "观察期:按购买周期提醒复购,暂不做大力度促销",
        "en": "Cooling: remind on their purchase cycle; no heavy discounts yet",
        "from_seed": False,
    },
    "high_winback": {
        "zh": "高挽回顾客:常规营销 + 关怀",
        "en": "High win-back: regular marketing plus care messages",
        "from_seed": True,
    },
    "low_winback": {
        "zh": "低挽回顾客:以关怀为主,仅在大促时推送",
        "en": "Low win-back: care first; push only for big promotions",
        "from_seed": True,
    },
    "lost": {
        "zh": "流失:停止常规触达;可做回访调查流失原因",
        "en": "Lost: stop regular contact; a call-back survey can tell why they left",
        "from_seed": False,
    },
}


# --- lifecycle -------------------------------------------------------------------------------

LIFECYCLE_STAGES: tuple[str, ...] = ("acquisition", "growth", "maturity", "decline", "lost")


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    """Lifecycle stages (BRIEF: acquisition 1 order; growth 2–4 orders, active; maturity ≥5
    orders, active; decline = overdue against the own purchase cycle or low P(alive);
    lost = beyond the lost window or P(alive) very low).

    Made exact as, checked in this order:

    1. ``lost``: days since last order > the lost window, or P(alive) < ``p_lost``;
    2. ``decline``: overdue — days since last order > max(``overdue_factor`` × cycle,
       the 45-day new/active window) where cycle is the one behind the expected next
       order date (own, category or shop-wide); with no cycle at all, past the cooling
       window — or P(alive) < ``p_decline``;
    3. otherwise by orders: 1 → ``acquisition``, 2–4 → ``growth``, ≥ 5 → ``maturity``.
    """

    overdue_factor: float = 2.0
    p_decline: float = 0.5
    p_lost: float = 0.1
    maturity_orders: int = 5


def lifecycle_of(
    orders: int,
    days_since_last: int,
    cycle_days: float | None,
    w: LayerWindows,
    rules: LifecycleRules = LifecycleRules(),
    p_alive: float | None = None,
) -> str:
    if days_since_last > w.lost_days or (p_alive is not None and p_alive < rules.p_lost):
        return "lost"
    if cycle_days is not None:
        overdue = days_since_last > max(rules.overdue_factor * cycle_days, w.new_days)
    else:
        overdue = days_since_last > w.cooling_days
    if overdue or (p_alive is not None and p_alive < rules.p_decline):
        return "decline"
    if orders <= 1:
        return "acquisition"
    return "growth" if orders < rules.maturity_orders else "maturity"
