"""Exact repurchase analytics (BRIEF definitions), written once as SQL for DuckDB and Spark.

>>> from huitouke.analytics import Analytics
>>> a = Analytics(orders, timezone="Asia/Shanghai")  # canonical orders table, merchant zone
>>> a.period_metrics("month")                  # 复购率 / 回购率 / 老客占比 per month
>>> a.customers(as_of=date(2024, 6, 30))       # cycle, next expected date, RFM, layer, lifecycle

Layout: :mod:`.periods` and :mod:`.segments` hold the pure rules (period bucketing, the
RFM grid, the seed layering and its strategies, lifecycle stages); :mod:`.sql` the queries;
:mod:`.engine` runs them in the embedded DuckDB (:mod:`.backends`), :mod:`.spark` on Apache
Spark (``SparkAnalytics``, the same interface; :mod:`.portable` is the SQL subset both run
alike); :mod:`.churn` the survey structure analysis.
"""

from huitouke.analytics import messages as _messages  # noqa: F401  (registers texts)
from huitouke.analytics.churn import churn_reasons, read_survey
from huitouke.analytics.engine import LINES_COLUMNS, PERIOD_COLUMNS, Analytics
from huitouke.analytics.periods import PERIOD_KINDS, Period, custom_range, periods_between
from huitouke.analytics.segments import (
    LAYER_STRATEGY,
    LAYERS,
    LIFECYCLE_STAGES,
    RFM_GRID,
    RFM_SEGMENTS,
    LayerWindows,
    LifecycleRules,
)
from huitouke.analytics.synthetic import synthetic_orders, write_synthetic_orders

__all__ = [
    "LAYERS",
    "LAYER_STRATEGY",
    "LIFECYCLE_STAGES",
    "LINES_COLUMNS",
    "PERIOD_COLUMNS",
    "PERIOD_KINDS",
    "RFM_GRID",
    "RFM_SEGMENTS",
    "Analytics",
    "LayerWindows",
    "LifecycleRules",
    "Period",
    "churn_reasons",
    "custom_range",
    "periods_between",
    "read_survey",
    "synthetic_orders",
    "write_synthetic_orders",
]
