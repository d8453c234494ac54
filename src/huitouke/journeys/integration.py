"""The customers frame the journeys read, assembled from the other contexts.

- analytics: ``Analytics(orders, timezone=…).customers(as_of)`` — orders, first/last order, cycle,
  expected next-order date, RFM segment, seed layer, lifecycle;
- models: P(alive) from the same model policy as ``huitouke predict`` / ``customers``
  (``auto``; left empty when no model can be fitted, e.g. too few repeat buyers — filters
  on P(alive) then match nobody);
- customers table: birthday, language; tags (imported and added, :mod:`huitouke.store.profiles`)
  and custom profile attributes as their types;
- loyalty: the earliest day points expire, the gap to the next tier (as a share of that
  tier's threshold) and the stamps still missing to the next reward — each read for all
  customers at once (:mod:`huitouke.loyalty.standing`), so the number of queries does not
  grow with the number of customers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from huitouke.errors import HuitoukeError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers as customers_t

if TYPE_CHECKING:
    from huitouke.journeys.model import Audience, Journey

__all__ = [
    "FRAME_COLUMNS",
    "audience_filter_sql",
    "customers_frame",
    "frame_from_parquet",
    "p_alive_series",
]


def p_alive_series(orders: pa.Table, as_of: date, timezone: str) -> pd.Series | None:
    """P(alive) per customer from the one model policy of ``huitouke predict`` and
    ``huitouke customers`` (:func:`huitouke.prediction.policy_scores`: ``auto``, the
    usable fit of lowest BIC, on the counted orders up to ``as_of``, above the data threshold), so a customer's
    lifecycle is the same here as there; None when no model can be fitted."""
    from huitouke.prediction import policy_scores

    try:
        scores = policy_scores(orders, as_of=as_of, timezone=timezone)
    except HuitoukeError:
        return None
    return pd.Series(
        scores["p_alive"].to_numpy(dtype=float), index=scores["customer_id"].astype(str)
    )


def customers_frame(
    store: Store,
    as_of: date,
    *,
    settings: Settings,
    loyalty: Any = None,
    with_p_alive: bool = True,
) -> pd.DataFrame:
    """One row per customer with a counted order up to ``as_of`` (see :mod:`.frame`)."""
    from huitouke.analytics import Analytics
    from huitouke.identity.service import apply_persons, person_map

    orders = store.load_orders()
    if orders.num_rows == 0:
        return pd.DataFrame(columns=["customer_id", "orders", "last_order_at", "first_order_at"])
    with store.connect() as conn:
        # a person's accounts merged into one (huitouke.identity): the journey sees one
        # customer, its primary account, with every account's orders
        orders = apply_persons(orders, person_map(conn))
    pa_series = p_alive_series(orders, as_of, settings.timezone) if with_p_alive else None
    with Analytics(orders, timezone=settings.timezone) as an:
        df = an.customers(as_of, p_alive=pa_series)
    ids = df["customer_id"].astype(str).tolist()
    from huitouke.store.profiles import attributes_for, tags_for

    births: dict[str, Any] = {}
    langs: dict[str, str | None] = {}
    with store.connect() as conn:
        c = customers_t.c
        for i in range(0, len(ids), 1000):
            for r in conn.execute(
                select(c.customer_id, c.birthday, c.attributes).where(
                    c.customer_id.in_(ids[i : i + 1000])
                )
            ):
                births[r.customer_id] = r.birthday
                langs[r.customer_id] = (r.attributes or {}).get("lang")
        tags = tags_for(conn, ids)
        profile = attributes_for(conn, ids)
        if loyalty is not None:
            _loyalty_columns(conn, loyalty, df, as_of, settings)
    df["birthday"] = df["customer_id"].map(births)
    df["tags"] = df["customer_id"].map(lambda x: tags.get(x, []))
    df["attributes"] = df["customer_id"].map(lambda x: profile.get(x, {}))
    df["lang"] = df["customer_id"].map(langs)
    return df


def _loyalty_columns(
    conn: Any, loyalty: Any, df: pd.DataFrame, as_of: date, settings: Settings
) -> None:
    from huitouke.loyalty import standing

    zone = ZoneInfo(settings.timezone)
    at = datetime.combine(as_of, time(23, 59, 59), tzinfo=zone).astimezone(UTC)
    expiring: dict[str, date] = {}
    for item in loyalty.expiring_soon(conn, None, 60, at - timedelta(days=1)):
        if item["kind"] != "points":
            continue
        d = datetime.fromisoformat(item["expires_at"]).astimezone(zone).date()
        cid = item["customer_id"]
        if cid not in expiring or d < expiring[cid]:
            expiring[cid] = d
    df["points_expiring_on"] = df["customer_id"].map(expiring)
    # set-based: one query per column family for all members, never one per member
    df["next_tier_gap_ratio"] = df["customer_id"].map(
        standing.tier_gap_ratios(conn, loyalty.program, at)
    )
    df["stamps_to_reward"] = df["customer_id"].map(standing.stamps_to_reward(conn, loyalty.program))


class _DuckDBError(Exception):
    """Stands for duckdb.Error where duckdb is not imported yet."""


def _audience_rows(path: str, journeys: Sequence[Journey], as_of: date) -> pa.Table:
    """The frame's rows some active journey's audience can hold, read by DuckDB."""
    import os

    import duckdb

    listing = os.path.join(path, "**", "*.parquet") if os.path.isdir(path) else path
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        source = f"read_parquet({_sql_text(listing)})"
        types = {
            str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
        }
        active = [j for j in journeys if j.enabled and j.active.contains(as_of)]
        conditions = sorted({audience_filter_sql(j.audience, types, as_of) for j in active})
        where = " OR ".join(f"({c})" for c in conditions) if conditions else "FALSE"
        columns = ", ".join(c for c in FRAME_COLUMNS if c in types)
        table: pa.Table = con.sql(f"SELECT {columns} FROM {source} WHERE {where}").to_arrow_table()
        return table
    except duckdb.Error as exc:
        raise _DuckDBError(str(exc)) from exc
    finally:
        con.close()


#: the columns of the customers frame the journey engine reads (see :mod:`.frame`)
FRAME_COLUMNS = (
    "customer_id",
    "orders",
    "last_order_at",
    "first_order_at",
    "next_expected_date",
    "layer",
    "rfm_segment",
    "lifecycle",
    "p_alive",
    "birthday",
    "points_expiring_on",
    "next_tier_gap_ratio",
    "stamps_to_reward",
    "tags",
    "attributes",
    "lang",
)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def audience_filter_sql(audience: Audience, columns: Mapping[str, str], as_of: date) -> str:
    """A SQL condition on the customers frame that every customer of ``audience`` on
    ``as_of`` meets — and perhaps a few more: the journey engine checks the audience again
    on the rows read (:func:`huitouke.journeys.engine.audience_mask`), so the condition may
    be wider, never narrower. ``columns`` maps the frame file's column names to their DuckDB
    types. Pushed down: layers, RFM segments, lifecycle stages, order counts, P(alive),
    tags, and the days since the last order (widened by a day each side, since the frame's
    instants are cut into days in the merchant's zone); the loyalty, birthday and profile
    attribute filters are left to the engine. ``TRUE`` when nothing can be pushed."""
    parts: list[str] = []

    def isin(col: str, values: Sequence[str] | None) -> None:
        if values is None:
            return
        if col not in columns or not values:
            parts.append("FALSE")  # nobody has a value of an absent column
            return
        parts.append(f"{col} IN ({', '.join(_sql_text(str(v)) for v in values)})")

    isin("layer", audience.layers)
    isin("rfm_segment", audience.rfm_segments)
    isin("lifecycle", audience.lifecycles)
    if audience.orders_min is not None:
        parts.append(f"orders >= {int(audience.orders_min)}")
    if audience.orders_max is not None:
        parts.append(f"orders <= {int(audience.orders_max)}")
    if columns.get("last_order_at", "").upper() == "TIMESTAMP WITH TIME ZONE":

        def instant(day: date) -> str:
            return f"CAST('{day.isoformat()} 00:00:00+00:00' AS TIMESTAMPTZ)"

        if audience.bought_within_days is not None:
            since = as_of - timedelta(days=audience.bought_within_days + 1)
            parts.append(f"last_order_at >= {instant(since)}")
        if audience.not_bought_within_days is not None:
            before = as_of - timedelta(days=audience.not_bought_within_days - 1)
            parts.append(f"(last_order_at IS NULL OR last_order_at < {instant(before)})")
    for bound, op in ((audience.p_alive_min, ">="), (audience.p_alive_max, "<=")):
        if bound is not None:
            parts.append(f"p_alive {op} {float(bound)!r}" if "p_alive" in columns else "FALSE")
    tags_listed = columns.get("tags", "").endswith("[]")
    for wanted, test in (
        (audience.tags_any, "list_has_any"),
        (audience.tags_all, "list_has_all"),
        (audience.tags_none, "NOT list_has_any"),
    ):
        if wanted is None or (not wanted and test != "list_has_any"):
            continue
        if not wanted or ("tags" not in columns and test != "NOT list_has_any"):
            parts.append("FALSE")
            continue
        if "tags" not in columns or not tags_listed:
            continue  # nobody has a tag: "none of" holds; an odd type: the engine decides
        listed = "[" + ", ".join(_sql_text(str(t)) for t in wanted) + "]"
        parts.append(f"{test}(COALESCE(tags, CAST([] AS VARCHAR[])), {listed})")
    return " AND ".join(parts) if parts else "TRUE"


def frame_from_parquet(
    path: str, *, journeys: Sequence[Journey] | None = None, as_of: date | None = None
) -> pd.DataFrame:
    """The customers frame from Parquet — one file or a directory of part files, as Spark
    writes them (``huitouke customers --engine spark --format parquet``, or any job that
    writes the columns of :mod:`.frame`). Only the columns the journeys read are read;
    ``tags`` (a list column) comes back as Python lists; ``attributes`` (the typed profile
    attributes audiences test) is a JSON object text per customer, and empty when the file
    has no such column.

    With ``journeys`` (and ``as_of``), DuckDB reads the file and keeps only the customers
    some active journey's audience can hold (:func:`audience_filter_sql`, or-ed over the
    journeys): the rows of the others never reach this process, so a frame of tens of
    millions of customers is evaluated in the memory its audiences need. The plan's
    planned and skipped rows of those customers are the same as on the whole frame; the
    summary then counts only them (customers outside every audience are not read, so they
    are not counted as ``not_in_audience``)."""
    from huitouke.errors import InputError

    try:
        if journeys is None:
            import pyarrow.dataset as ds

            data = ds.dataset(path, format="parquet")
            columns = [c for c in FRAME_COLUMNS if c in data.schema.names]
            table = data.to_table(columns=columns)
        else:
            table = _audience_rows(path, journeys, as_of or date.today())
    except (OSError, pa.ArrowException, _DuckDBError) as exc:
        raise InputError(
            f"--frame {path}: cannot read the customers frame as Parquet: {exc}",
            code="input.bad_file",
            message_zh=f"--frame {path}:无法以 Parquet 读取客户表:{exc}",
            details={"file": str(path)},
        ) from exc
    frame = table.to_pandas()
    if "tags" in frame.columns:
        frame["tags"] = [[] if v is None else [str(t) for t in v] for v in frame["tags"]]
    if "attributes" in frame.columns:
        try:
            frame["attributes"] = [
                {} if not v else dict(json.loads(v)) for v in frame["attributes"]
            ]
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"--frame {path}: the attributes column must be JSON object text: {exc}",
                code="input.bad_file",
                message_zh=f"--frame {path}:attributes 列须为 JSON 对象文本:{exc}",
                details={"file": str(path), "column": "attributes"},
            ) from exc
    else:
        frame["attributes"] = [{} for _ in range(len(frame))]
    return frame
