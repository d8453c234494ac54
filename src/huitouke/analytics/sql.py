"""The analytics as SQL, written once for the embedded DuckDB and Spark.

Every query here is plain SQL in DuckDB's dialect restricted to what also exists in Spark SQL
(≥ 3.4): standard window functions, ``date_trunc``, ``date_diff('day', …)``, ``median``,
``AT TIME ZONE``. :func:`to_spark` turns any of them into Spark SQL with sqlglot; a unit test
transpiles every query the engine can run.

Relations the queries read (the engine registers them; on Spark they are temporary views):

``orders``          the canonical orders table (:mod:`huitouke.core.orders`)
``order_lines``     source, order_id, sku, product_name, category, quantity, unit_price (optional)
``periods``         the period list built by :mod:`huitouke.analytics.periods`
``rfm_segment_map`` r_score, f_score, segment — the grid of :mod:`huitouke.analytics.segments`
``p_alive``         customer_id, p_alive (optional model input for lifecycle stages)

and the steps it materialises: ``counted_base`` (counted orders with local dates),
``counted`` (one row per counted order with its sequence number per customer) and
``category_orders``.

Only literals the engine has validated (a zone name checked by ``zoneinfo``, ISO dates,
integers, an ISO 4217 code) are spliced into the text, always through :func:`lit`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

from huitouke.analytics.periods import Period
from huitouke.analytics.segments import LayerWindows, LifecycleRules
from huitouke.core.orders import COUNTED_STATUSES

__all__ = [
    "Step",
    "category_cycles_sql",
    "category_orders_sql",
    "cohort_sql",
    "counted_base_sql",
    "counted_sql",
    "customers_sql",
    "ladder_sql",
    "lit",
    "period_sql",
    "to_spark",
]


@dataclass(frozen=True, slots=True)
class Step:
    """A named intermediate relation: a ``table`` the engine materialises once, or a ``view``."""

    name: str
    sql: str
    kind: str = "table"


def lit(value: str | date | datetime | int | float) -> str:
    """A SQL literal (strings quoted with doubled quotes; dates as ``DATE '…'``)."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return f"CAST('{utc.isoformat(sep=' ')}+00:00' AS TIMESTAMPTZ)"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


# --- counted orders ---------------------------------------------------------------------------


def counted_base_sql(zone: str, currency: str | None) -> Step:
    """Counted orders (BRIEF: paid and not fully refunded or cancelled) with their local date
    in the merchant's zone and revenue = amount − refunded_amount."""
    statuses = ", ".join(lit(s) for s in COUNTED_STATUSES)
    cur = f" AND currency = {lit(currency)}" if currency else ""
    sql = f"""
SELECT customer_id, source, order_id, ordered_at,
       CAST(ordered_at AT TIME ZONE {lit(zone)} AS DATE) AS local_date,
       amount - refunded_amount AS revenue
FROM orders
WHERE status IN ({statuses}){cur}"""
    return Step("counted_base", sql.strip(), "view")


def counted_sql(merge_same_day: bool) -> Step:
    """One row per counted order with ``seq`` (1 = the customer's first counted order ever;
    ties on the instant broken by order id), the local dates of the customer's previous and
    next orders and the gap in days since the previous one. With ``merge_same_day`` a customer's orders on one local day are one order (the
    earliest instant and the smallest order id represent it; revenues add up)."""
    source = "counted_base"
    if merge_same_day:
        source = """(
    SELECT customer_id, MIN(source) AS source, MIN(order_id) AS order_id,
           MIN(ordered_at) AS ordered_at, local_date,
           SUM(revenue) AS revenue
    FROM counted_base
    GROUP BY customer_id, local_date
) m"""
    sql = f"""
SELECT customer_id, source, order_id, ordered_at, local_date, revenue,
       ROW_NUMBER() OVER w AS seq,
       FIRST_VALUE(local_date) OVER w AS first_date,
       LAG(local_date) OVER w AS prev_date,
       LEAD(local_date) OVER w AS next_date,
       CAST(date_diff('day', LAG(local_date) OVER w, local_date) AS INTEGER) AS gap_days
FROM {source}
WINDOW w AS (PARTITION BY customer_id ORDER BY ordered_at, order_id, source)"""
    return Step("counted", sql.strip())


def category_orders_sql(merge_same_day: bool) -> Step:
    """Per customer and category, the counted orders that contain the category, with the
    gap in days since the customer's previous order of that category."""
    if merge_same_day:
        join = """JOIN counted_base b ON b.source = l.source AND b.order_id = l.order_id
    JOIN counted c ON c.customer_id = b.customer_id AND c.local_date = b.local_date"""
    else:
        join = "JOIN counted c ON c.source = l.source AND c.order_id = l.order_id"
    sql = f"""
SELECT customer_id, category, order_id, ordered_at, local_date,
       date_diff('day', LAG(local_date) OVER (PARTITION BY customer_id, category
                                              ORDER BY ordered_at, order_id, source),
                 local_date) AS gap_days
FROM (
    SELECT DISTINCT c.customer_id, l.category, c.source, c.order_id, c.ordered_at, c.local_date
    FROM order_lines l
    {join}
    WHERE l.category IS NOT NULL AND l.category <> ''
) x"""
    return Step("category_orders", sql.strip())


# --- per period -------------------------------------------------------------------------------


def _bucket(col: str, kind: str | None, custom: Period | None) -> str:
    if custom is not None:
        return (
            f"CASE WHEN {col} BETWEEN {lit(custom.start)} AND {lit(custom.end)} "
            f"THEN {lit(custom.start)} "
            f"WHEN {col} BETWEEN {lit(custom.next_start)} AND {lit(custom.next_end)} "
            f"THEN {lit(custom.next_start)} END"
        )
    assert kind is not None
    return f"CAST(date_trunc({lit(kind)}, {col}) AS DATE)"


def period_sql(kind: str | None = None, custom: Period | None = None) -> str:
    """Per period P of the ``periods`` relation, the BRIEF's metrics.

    * buyers(P), orders(P), revenue(P);
    * returning buyer: a buyer with ≥1 order in P that is not their first order ever
      (``seq > 1``); customer repurchase rate = returning / buyers;
    * in-period repurchase rate = customers with ≥2 orders in P / buyers;
    * order repurchase rate = Σ_c max(0, n_c − 1) / orders;
    * buy-back rate = |buyers(P) ∩ buyers(P′)| / buyers(P), null unless the data cover all
      of P′ (``next_complete``) — a partly observed P′ would understate it;
    * returning revenue share = revenue of non-first orders / revenue(P);
    * ``complete``: whether the data cover all of P (from the ``periods`` relation), and
      ``buyback_null_reason``: why the buy-back rate is null (``no_buyers`` or
      ``next_period_incomplete``), null when it is known.

    A rate whose denominator is zero (an empty period) is null.

    One pass over the orders, no per-customer grouping, because each customer-level count
    is a count of marked orders, using the periods of the customer's previous and next
    orders (``prev_p``, ``next_p``):

    * a buyer of P ⇔ exactly one *first order in P* (``prev_p`` ≠ P);
    * a buyer of P who is not returning ⇔ their first order ever is in P and their next
      order is not (``seq = 1`` and ``next_p`` ≠ P);
    * a buyer with ≥2 orders in P ⇔ their first order in P has ``next_p`` = P;
    * a buyer of P who buys again in P′ ⇔ exactly one order in P′ has ``prev_p`` = P.
    """
    b_now = _bucket("local_date", kind, custom)
    b_prev = _bucket("prev_date", kind, custom)
    b_next = _bucket("next_date", kind, custom)
    sql = f"""
WITH b AS (
    SELECT {b_now} AS period_start, {b_prev} AS prev_p, {b_next} AS next_p, seq, revenue
    FROM counted
),
agg AS (
    SELECT period_start,
           COUNT(*) AS orders,
           SUM(revenue) AS revenue,
           SUM(CASE WHEN prev_p IS NULL OR prev_p <> period_start THEN 1 ELSE 0 END) AS buyers,
           SUM(CASE WHEN seq = 1 THEN 1 ELSE 0 END) AS new_buyers,
           SUM(CASE WHEN seq = 1 AND (next_p IS NULL OR next_p <> period_start)
                    THEN 1 ELSE 0 END) AS first_only_buyers,
           SUM(CASE WHEN (prev_p IS NULL OR prev_p <> period_start) AND next_p = period_start
                    THEN 1 ELSE 0 END) AS multi_buyers,
           SUM(CASE WHEN seq > 1 THEN revenue ELSE 0 END) AS returning_revenue
    FROM b
    WHERE period_start IS NOT NULL
    GROUP BY period_start
),
m AS (
    SELECT period_start, orders, revenue, buyers, new_buyers, multi_buyers, returning_revenue,
           buyers - first_only_buyers AS returning_buyers,
           orders - buyers AS repeat_orders
    FROM agg
),
bb AS (
    SELECT p.period_start, COUNT(*) AS buyback_buyers
    FROM b
    JOIN periods p ON b.prev_p = p.period_start AND b.period_start = p.next_start
    GROUP BY p.period_start
)
SELECT p.period, p.period_start, p.period_end,
       COALESCE(a.buyers, 0) AS buyers,
       COALESCE(a.orders, 0) AS orders,
       COALESCE(a.revenue, CAST(0 AS DECIMAL(38, 4))) AS revenue,
       COALESCE(a.returning_buyers, 0) AS returning_buyers,
       COALESCE(a.new_buyers, 0) AS new_buyers,
       COALESCE(a.multi_buyers, 0) AS multi_buyers,
       COALESCE(a.repeat_orders, 0) AS repeat_orders,
       COALESCE(a.returning_revenue, CAST(0 AS DECIMAL(38, 4))) AS returning_revenue,
       CASE WHEN p.next_complete THEN COALESCE(bb.buyback_buyers, 0) END AS buyback_buyers,
       CASE WHEN a.buyers > 0
            THEN CAST(a.returning_buyers AS DOUBLE) / a.buyers END AS customer_repurchase_rate,
       CASE WHEN a.buyers > 0
            THEN CAST(a.multi_buyers AS DOUBLE) / a.buyers END AS in_period_repurchase_rate,
       CASE WHEN a.orders > 0
            THEN CAST(a.repeat_orders AS DOUBLE) / a.orders END AS order_repurchase_rate,
       CASE WHEN a.buyers > 0 AND p.next_complete
            THEN CAST(COALESCE(bb.buyback_buyers, 0) AS DOUBLE) / a.buyers END AS buyback_rate,
       CASE WHEN a.revenue > 0
            THEN CAST(a.returning_revenue AS DOUBLE) / CAST(a.revenue AS DOUBLE)
       END AS returning_revenue_share,
       CASE WHEN a.buyers > 0
            THEN CAST(a.returning_buyers AS DOUBLE) / a.buyers END AS returning_buyer_share,
       p.complete,
       CASE WHEN COALESCE(a.buyers, 0) = 0 THEN 'no_buyers'
            WHEN NOT p.next_complete THEN 'next_period_incomplete' END AS buyback_null_reason
FROM periods p
LEFT JOIN m a ON a.period_start = p.period_start
LEFT JOIN bb ON bb.period_start = p.period_start
ORDER BY p.period_start"""
    return sql.strip()


# --- cohorts and ladder ------------------------------------------------------------------------


def cohort_sql() -> str:
    """Customers and revenue by first-order month (cohort) and months since (k). A customer
    counts once in (cohort, k) through their first order of that month."""
    sql = """
SELECT cohort, k,
       SUM(CASE WHEN prev_date IS NULL OR prev_m <> m THEN 1 ELSE 0 END) AS customers,
       SUM(revenue) AS revenue
FROM (
    SELECT CAST(date_trunc('month', first_date) AS DATE) AS cohort,
           (year(local_date) * 12 + month(local_date))
             - (year(first_date) * 12 + month(first_date)) AS k,
           year(local_date) * 12 + month(local_date) AS m,
           year(prev_date) * 12 + month(prev_date) AS prev_m,
           prev_date, revenue
    FROM counted
) ck
GROUP BY cohort, k
ORDER BY cohort, k"""
    return sql.strip()


def ladder_sql(max_k: int) -> str:
    """Customers who made purchase ``seq`` and the median days since their previous one."""
    sql = f"""
SELECT seq, COUNT(*) AS customers,
       median(CASE WHEN seq > 1 THEN gap_days END) AS median_days
FROM counted
WHERE seq <= {lit(int(max_k) + 1)}
GROUP BY seq
ORDER BY seq"""
    return sql.strip()


# --- customers --------------------------------------------------------------------------------


def _as_of_filter(as_of: date | datetime) -> str:
    if isinstance(as_of, datetime):
        return f"ordered_at <= {lit(as_of)}"
    return f"local_date <= {lit(as_of)}"


def category_cycles_sql(as_of: date | datetime | None = None) -> str:
    """BRIEF: per category, the median over the category's consecutive-order gaps."""
    where = f"WHERE {_as_of_filter(as_of)}" if as_of is not None else ""
    sql = f"""
SELECT category, median(gap_days) AS median_days, COUNT(gap_days) AS n_gaps,
       COUNT(DISTINCT customer_id) AS customers
FROM category_orders
{where}
GROUP BY category
ORDER BY category"""
    return sql.strip()


def _layer_case(w: LayerWindows) -> str:
    return f"""CASE WHEN days_since_last <= {w.new_days}
                 THEN (CASE WHEN orders = 1 THEN 'new' ELSE 'active' END)
            WHEN days_since_last <= {w.cooling_days} THEN 'cooling'
            WHEN days_since_last <= {w.high_winback_days} THEN 'high_winback'
            WHEN days_since_last <= {w.lost_days} THEN 'low_winback'
            ELSE 'lost' END"""


def _lifecycle_case(w: LayerWindows, r: LifecycleRules) -> str:
    return f"""CASE WHEN days_since_last > {w.lost_days} OR p_alive < {lit(float(r.p_lost))} THEN 'lost'
            WHEN (used_cycle IS NOT NULL
                  AND days_since_last > GREATEST({lit(float(r.overdue_factor))} * used_cycle, {w.new_days}))
              OR (used_cycle IS NULL AND days_since_last > {w.cooling_days})
              OR p_alive < {lit(float(r.p_decline))} THEN 'decline'
            WHEN orders <= 1 THEN 'acquisition'
            WHEN orders < {int(r.maturity_orders)} THEN 'growth'
            ELSE 'maturity' END"""


def _rank_cte(name: str, col: str, desc: bool) -> str:
    """Min-rank (SQL ``RANK()``) of each distinct value of ``col``: 1 + the customers with a
    worse value. Ranking the distinct values and joining back costs a sort of the distinct
    values only, not of every customer."""
    order = "v DESC" if desc else "v"
    return f"""{name} AS (
    SELECT v, SUM(cnt) OVER (ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
              - cnt + 1 AS rnk
    FROM (SELECT {col} AS v, COUNT(*) AS cnt FROM cyc GROUP BY {col}) d
)"""


def _score(rank_col: str) -> str:
    """BRIEF quintile score 1–5: ``1 + floor(5 (rank − 1) / n)``, ties share the lowest rank."""
    return f"1 + CAST(FLOOR(5.0 * ({rank_col} - 1) / nn.n) AS INTEGER)"


def customers_sql(
    as_of: date | datetime,
    windows: LayerWindows,
    rules: LifecycleRules,
    *,
    with_lines: bool,
    with_p_alive: bool,
) -> str:
    """One row per customer with a counted order up to ``as_of``.

    * cycle_days: median of the gaps in days between consecutive orders (≥ 2 orders);
    * next_expected_date: last order date + round-half-up(cycle), where the cycle is the
      customer's own, else the category cycle of their main category (the category in most
      of their orders; ties alphabetical), else the shop-wide cycle (the median over every
      consecutive-order gap of every customer); ``next_expected_source`` says which;
    * r/f/m_score, rfm_segment, layer, lifecycle per :mod:`huitouke.analytics.segments`.
    """
    as_of_day = as_of.date() if isinstance(as_of, datetime) else as_of
    flt = _as_of_filter(as_of)
    if with_lines:
        cat_ctes = f""",
cat_hist AS (SELECT * FROM category_orders WHERE {flt}),
cat_cycle AS (
    SELECT category, median(gap_days) AS cat_cycle FROM cat_hist
    WHERE gap_days IS NOT NULL GROUP BY category
),
main_cat AS (
    SELECT customer_id, category AS main_category FROM (
        SELECT customer_id, category,
               ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY COUNT(*) DESC, category) AS rn
        FROM cat_hist GROUP BY customer_id, category
    ) r WHERE rn = 1
)"""
        cat_cols = "mc.main_category, cc.cat_cycle"
        cat_join = """
    LEFT JOIN main_cat mc ON mc.customer_id = per.customer_id
    LEFT JOIN cat_cycle cc ON cc.category = mc.main_category"""
    else:
        cat_ctes = ""
        cat_cols = "CAST(NULL AS VARCHAR) AS main_category, CAST(NULL AS DOUBLE) AS cat_cycle"
        cat_join = ""
    if with_p_alive:
        pa_col = "pa.p_alive"
        pa_join = "\nLEFT JOIN p_alive pa ON pa.customer_id = s.customer_id"
    else:
        pa_col = "CAST(NULL AS DOUBLE) AS p_alive"
        pa_join = ""
    sql = f"""
WITH hist AS (SELECT * FROM counted WHERE {flt}),
per AS (
    SELECT customer_id, COUNT(*) AS orders, SUM(revenue) AS spend,
           MIN(ordered_at) AS first_order_at, MAX(ordered_at) AS last_order_at,
           MAX(local_date) AS last_order_date,
           median(gap_days) AS cycle_days
    FROM hist
    GROUP BY customer_id
),
shop AS (SELECT median(gap_days) AS shop_cycle FROM hist WHERE gap_days IS NOT NULL){cat_ctes},
base AS (
    SELECT per.*, {cat_cols}, shop.shop_cycle,
           date_diff('day', per.last_order_date, {lit(as_of_day)}) AS days_since_last
    FROM per
    CROSS JOIN shop{cat_join}
),
cyc AS (
    SELECT base.*,
           COALESCE(cycle_days, cat_cycle, shop_cycle) AS used_cycle,
           CASE WHEN cycle_days IS NOT NULL THEN 'own'
                WHEN cat_cycle IS NOT NULL THEN 'category'
                WHEN shop_cycle IS NOT NULL THEN 'shop'
                ELSE 'none' END AS next_expected_source
    FROM base
),
{_rank_cte("r_rank", "days_since_last", desc=True)},
{_rank_cte("f_rank", "orders", desc=False)},
{_rank_cte("m_rank", "spend", desc=False)},
nn AS (SELECT COUNT(*) AS n FROM cyc),
s AS (
    SELECT cyc.*,
           last_order_date + CAST(FLOOR(used_cycle + 0.5) AS INTEGER) AS next_expected_date,
           {_score("r_rank.rnk")} AS r_score,
           {_score("f_rank.rnk")} AS f_score,
           {_score("m_rank.rnk")} AS m_score
    FROM cyc
    CROSS JOIN nn
    JOIN r_rank ON r_rank.v = cyc.days_since_last
    JOIN f_rank ON f_rank.v = cyc.orders
    JOIN m_rank ON m_rank.v = cyc.spend
),
t AS (
    SELECT s.*, {pa_col}
    FROM s{pa_join}
)
SELECT t.customer_id, t.orders, t.spend, t.first_order_at, t.last_order_at, t.last_order_date,
       t.days_since_last, t.cycle_days, t.main_category, t.used_cycle, t.next_expected_date,
       t.next_expected_source, t.r_score, t.f_score, t.m_score, m.segment AS rfm_segment,
       {_layer_case(windows)} AS layer,
       {_lifecycle_case(windows, rules)} AS lifecycle,
       t.p_alive
FROM t
JOIN rfm_segment_map m ON m.r_score = t.r_score AND m.f_score = t.f_score
ORDER BY t.customer_id"""
    return sql.strip()


# --- Spark ------------------------------------------------------------------------------------


def to_spark(sql: str, names: Mapping[str, str] | None = None) -> str:
    """The Spark SQL of a query (sqlglot, raising on anything it cannot express), with the
    relations named in ``names`` renamed (the Spark engine gives its temporary views names
    of their own). Only queries in the portable subset (:mod:`.portable`) transpile to
    Spark SQL that means the same; the Spark engine checks that before it runs one."""
    return _to_spark(sql, tuple(sorted((names or {}).items())))


@lru_cache(maxsize=512)
def _to_spark(sql: str, names: tuple[tuple[str, str], ...]) -> str:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel

    out = []
    for tree in sqlglot.parse(sql, read="duckdb"):
        if tree is None:
            continue
        if names:
            tree = exp.replace_tables(tree, dict(names))
        out.append(tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE, pretty=True))
    return ";\n".join(out)


def step_to_spark(step: Step) -> str:
    return f"CREATE OR REPLACE TEMPORARY VIEW {step.name} AS\n{to_spark(step.sql)}"


def all_steps(zone: str, currency: str | None, merge_same_day: bool) -> Sequence[Step]:
    return (
        counted_base_sql(zone, currency),
        counted_sql(merge_same_day),
        category_orders_sql(merge_same_day),
    )


def spark_queries(
    zone: str,
    currency: str | None,
    merge_same_day: bool,
    *,
    period: str,
    as_of: date | datetime,
    windows: LayerWindows,
    rules: LifecycleRules,
    max_k: int = 5,
) -> dict[str, str]:
    """Every step and query of the engine, in run order, as Spark SQL."""
    out = {s.name: step_to_spark(s) for s in all_steps(zone, currency, merge_same_day)}
    out["period_metrics"] = to_spark(period_sql(period))
    out["cohorts"] = to_spark(cohort_sql())
    out["ladder"] = to_spark(ladder_sql(max_k))
    out["category_cycles"] = to_spark(category_cycles_sql(as_of))
    out["customers"] = to_spark(
        customers_sql(as_of, windows, rules, with_lines=True, with_p_alive=True)
    )
    return out
