"""The repurchase report: one self-contained HTML page (zh or en) that works offline.

>>> from huitouke.report import build_report_data, render_html
>>> data = build_report_data(orders, timezone="Asia/Shanghai", source={"kind": "file", "label": "orders.csv"})
>>> html = render_html(data, "zh")

:func:`build_report_data` gathers every number through :class:`huitouke.analytics.Analytics`
(the calls ``huitouke metrics`` / ``customers`` / ``segments`` make) and, when the prediction
models can be fitted, through :mod:`huitouke.prediction` — its per-customer view
(:func:`huitouke.prediction.customer_frame.customer_frame`, the one ``huitouke customers``
shows), so the lifecycle stages use the same model's P(alive) as the CLI; :func:`render_html` formats that one
document. The document is embedded in the page as ``<script type="application/json"
id="report-data">`` so scripts and tests can read the exact numbers back.

On a store, :func:`reminders_from_store` adds the journey and package-insert results
(``data["reminders"]``, the numbers of ``huitouke journeys results``); ``huitouke report``
does this whenever it reports on the configured store.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from huitouke.analytics.segments import LayerWindows
from huitouke.report import messages as _messages  # noqa: F401  (registers texts)
from huitouke.report.data import SCHEMA, collect, default_as_of
from huitouke.report.reminders import collect_reminders, reminders_from_store
from huitouke.report.render import render_html

__all__ = [
    "SCHEMA",
    "build_report_data",
    "collect_reminders",
    "reminders_from_store",
    "render_html",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("huitouke")
    except PackageNotFoundError:
        return ""


def build_report_data(
    orders: pa.Table,
    *,
    timezone: str,
    source: dict[str, Any],
    as_of: date | None = None,
    lines: pa.Table | None = None,
    merge_same_day: bool = False,
    currency: str | None = None,
    windows: LayerWindows | None = None,
    predictions: bool = True,
    horizon_days: int = 90,
    model: str = "auto",
    due_days: int = 7,
    spark: Any = None,
) -> dict[str, Any]:
    """Every number of the report for ``orders`` (the canonical orders table).

    ``as_of`` defaults to the local date of the last counted order (as in the CLI);
    ``windows`` are the seed-layering windows (default: settings). ``source`` describes
    where the orders came from: ``{"kind": "file" | "store" | "sample", "label": …}``.
    With ``predictions`` the document gains a ``predictions`` part (status ``ok``, or
    ``failed`` with the reason when the models cannot be fitted on these data). With a
    SparkSession as ``spark`` the analytics run on Spark (:class:`SparkAnalytics`); the
    predictions run in this process either way.
    """
    from huitouke.analytics import Analytics
    from huitouke.errors import HuitoukeError, InputError
    from huitouke.prediction import Prediction, policy_prediction
    from huitouke.prediction.customer_frame import customer_frame

    options: dict[str, Any] = {
        "timezone": timezone,
        "lines": lines,
        "merge_same_day": merge_same_day,
        "currency": currency,
        "windows": windows,
    }
    if spark is not None:
        from huitouke.analytics.spark import SparkAnalytics

        engine: Analytics = SparkAnalytics(orders, session=spark, **options)
    else:
        engine = Analytics(orders, **options)
    with engine as analytics:
        if as_of is None:
            as_of = default_as_of(analytics)
        span = analytics.date_span
        if as_of is not None and span is not None and as_of > span[1]:
            # "as of" a day after the last order: the data are said to cover up to it
            analytics.coverage_end = as_of
        if as_of is None:
            raise InputError(
                "there are no counted orders (paid, not fully refunded or cancelled) to report on",
                code="input.no_orders",
                message_zh="没有可统计的订单(已支付且未全额退款或取消),无法生成报告",
            )
        used_currency = analytics.currency
        # one per-customer view with one model policy, as `huitouke customers` shows it: the
        # lifecycle stages use the policy's P(alive); its run also feeds the predictions part
        run: Prediction | HuitoukeError | None = None
        if predictions:
            try:
                run = policy_prediction(
                    orders,
                    as_of=as_of,
                    timezone=timezone,
                    model=model,
                    horizon_days=horizon_days,
                    currency=used_currency,
                )
            except HuitoukeError as exc:
                run = exc
        view = customer_frame(
            analytics,
            orders,
            as_of=as_of,
            timezone=timezone,
            model=model,
            horizon_days=horizon_days,
            currency=used_currency,
            predictions=isinstance(run, Prediction),
        )
        data = collect(
            analytics,
            as_of=as_of,
            source=source,
            due_days=due_days,
            version=_version(),
            customers=view.frame,
        )
    if predictions:
        from huitouke.report.predictions import collect_predictions

        data["predictions"] = collect_predictions(
            orders,
            timezone=timezone,
            currency=used_currency,
            as_of=as_of,
            horizon_days=horizon_days,
            model=model,
            run=run,
        )
    return data
