"""From the report document (:mod:`.data`) to one self-contained HTML page in zh or en.

Nothing here computes a metric: it formats the numbers of the document with Babel (via
:mod:`huitouke.i18n`), builds the Plotly figures and fills the Jinja2 template. plotly.js
and the CSS are inlined, so the page works offline and loads nothing from the network.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

import plotly.graph_objects as go
from babel.dates import format_skeleton, get_day_names
from babel.numbers import format_compact_currency
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from huitouke import i18n
from huitouke.report import charts
from huitouke.report import messages as _messages  # noqa: F401  (registers texts)

__all__ = ["render_html"]

_HTML_LANG = {"zh": "zh-CN", "en": "en"}
_BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en_US"}


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("huitouke.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _css() -> str:
    return files("huitouke.report").joinpath("static/report.css").read_text(encoding="utf-8")


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed ``plotly`` package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


class _Fmt:
    """Number formatting for one language (Babel through :mod:`huitouke.i18n`)."""

    def __init__(self, lang: str, currency: str | None) -> None:
        self.lang = lang
        self.currency = currency or "CNY"

    def tr(self, key: str, **params: object) -> str:
        return i18n.t(key, self.lang, **params)

    def count(self, v: float | None) -> str:
        return "—" if v is None else i18n.fmt_number(int(v), self.lang, digits=0)

    def num(self, v: float | None, digits: int = 2) -> str:
        return "—" if v is None else i18n.fmt_number(Decimal(str(v)), self.lang, digits=digits)

    def pct(self, v: float | None, digits: int = 1) -> str:
        return i18n.fmt_pct(v, self.lang, digits=digits)

    def money(self, v: float | None) -> str:
        return "—" if v is None else i18n.fmt_money(Decimal(str(v)), self.currency, self.lang)

    def amount(self, v: str | None, digits: int = 2) -> str:
        """A money string of the measurement JSON ("500.00"), shown without rounding drift."""
        return "—" if v is None else i18n.fmt_number(Decimal(v), self.lang, digits=digits)

    def money_str(self, v: str | None) -> str:
        return "—" if v is None else i18n.fmt_money(Decimal(v), self.currency, self.lang)

    def money_short(self, v: float | None) -> str:
        """Compact money for KPI cards (万 / M); the exact amount goes in the card's note."""
        if v is None:
            return "—"
        if abs(v) < 100_000:
            return self.money(v)
        return format_compact_currency(
            Decimal(str(v)), self.currency, locale=_BABEL_LOCALE[self.lang], fraction_digits=2
        )

    def short_date(self, v: str) -> str:
        return format_skeleton("MMMd", date.fromisoformat(v[:10]), locale=_BABEL_LOCALE[self.lang])

    def date(self, v: str | None) -> str:
        return "—" if v is None else i18n.fmt_date(date.fromisoformat(v[:10]), self.lang)

    def days(self, v: float | None) -> str:
        return "—" if v is None else self.num(v, 0 if float(v).is_integer() else 1)


def _cell(text: str, raw: Any = None, cls: str = "", pill: str | None = None) -> dict[str, Any]:
    return {"text": text, "raw": raw, "cls": cls, "pill": pill}


def _table(
    tid: str,
    columns: list[tuple[str, str, str]],
    rows: list[list[dict[str, Any]]],
    *,
    caption: str | None = None,
    note: str | None = None,
    scroll: bool = False,
    footnote: str | None = None,
) -> dict[str, Any]:
    return {
        "footnote": footnote,
        "id": tid,
        "columns": [c[0] for c in columns],
        "headers": [{"key": k, "text": text, "cls": cls} for k, text, cls in columns],
        "rows": rows,
        "caption": caption,
        "note": note,
        "scroll": scroll,
    }


def _zone_hint(f: Any, data: dict[str, Any]) -> str | None:
    """For a store: the zone its first import recorded, and a warning when the report is
    counted in another (orders near midnight then fall on other days)."""
    shop = data.get("shop_timezone")
    if not shop:
        return None
    if shop == data["timezone"]:
        return str(f.tr("report.timezone_recorded", zone=shop))
    return str(f.tr("report.timezone_differs", zone=shop))


def render_html(data: dict[str, Any], lang: str) -> str:
    """The report page for ``data`` (a document from :func:`huitouke.report.data.collect`,
    optionally with ``predictions``) in ``lang`` (``zh`` or ``en``)."""
    if lang not in i18n.LANGS:
        raise ValueError(f"lang must be one of {i18n.LANGS}, got {lang!r}")
    f = _Fmt(lang, data.get("currency"))
    figures: dict[str, go.Figure] = {}
    sections = [
        _metrics_section(data, f, figures),
        _cohort_section(data, f, figures),
        _ladder_section(data, f, figures),
        _cycle_section(data, f, figures),
        _rfm_section(data, f, figures),
        _layers_section(data, f, figures),
        _due_section(data, f, figures),
    ]
    pred = _predictions_section(data, f, figures)
    if pred is not None:
        sections.append(pred)
    rem = _reminders_section(data, f, figures)
    if rem is not None:
        sections.append(rem)

    source = data["source"]
    if source["kind"] == "sample":
        source_text = f.tr("report.source.sample", name=source["name"])
    elif source["kind"] == "store":
        source_text = f.tr("report.source.store", url=source["label"])
    else:
        source_text = source["label"]
    meta = [
        {"label": f.tr("report.source"), "value": source_text, "hint": None},
        {
            "label": f.tr("report.data_period"),
            "value": f"{f.date(data['data_start'])} – {f.date(data['data_end'])}"
            if data["data_start"]
            else "—",
            "hint": None,
        },
        {
            "label": f.tr("report.as_of"),
            "value": f.date(data["as_of"]),
            "hint": f.tr("report.as_of_hint"),
        },
        {
            "label": f.tr("report.timezone"),
            "value": data["timezone"],
            "hint": _zone_hint(f, data),
        },
        {"label": f.tr("report.currency"), "value": f.currency, "hint": None},
        {
            "label": f.tr("report.generated"),
            "value": data["generated_at"].replace("T", " "),
            "hint": None,
        },
    ]
    page = {
        "html_lang": _HTML_LANG[lang],
        "version": data.get("version", ""),
        "title": f.tr("report.title"),
        "tagline": f.tr("report.tagline"),
        "source": source_text,
        "meta": meta,
        "kpis": _kpis(data, f),
        "partial_note": partial_note(data, f),
        "notice": f.tr("report.sample_note") if source["kind"] == "sample" else None,
        "counted_note": f.tr("report.counted_note"),
        "contents_label": f.tr("report.contents"),
        "definition_label": f.tr("report.definition"),
        "sections": sections,
        "footer": f.tr("report.footer", version=data.get("version", "")),
        "css": _css(),
        "plotly_js": plotly_js(),
        "figures": {fid: charts.figure_json(fig) for fid, fig in figures.items()},
        "report_data_json": json.dumps(data, ensure_ascii=False, allow_nan=False).replace(
            "</", "<\\/"
        ),
    }
    return _env().get_template("report.html.j2").render(page=page)


# --- KPI cards --------------------------------------------------------------------------------


def _by_label(data: dict[str, Any], label: str | None) -> dict[str, Any] | None:
    if label is None:
        return None
    return next((p for p in data["metrics"]["periods"] if p["period"] == label), None)


def last_full_period(data: dict[str, Any]) -> dict[str, Any] | None:
    """The last complete month (a month still running would understate every rate)."""
    return _by_label(data, data["metrics"]["headline"]["period"])


def last_buyback_period(data: dict[str, Any]) -> dict[str, Any] | None:
    """The last month whose buy-back rate is known (its next month complete)."""
    return _by_label(data, data["metrics"]["headline"]["buyback_period"])


def _points(f: _Fmt, v: float) -> str:
    """A change of a rate in percentage points: "+1.2 pp" / "+1.2 个百分点"."""
    n = f.num(abs(v) * 100, 1)
    sign = "+" if v > 0.00005 else "−" if v < -0.00005 else "±"
    return f.tr("kpi.pp", change=f"{sign}{n}")


def _compare(f: _Fmt, entry: dict[str, Any] | None) -> list[dict[str, str]]:
    """The card's comparison lines: against the previous month and the same month a year
    earlier (rates in percentage points), each when that month is in the data."""
    out: list[dict[str, str]] = []
    if not entry:
        return out
    for key, msg in (("vs_previous", "kpi.vs_previous"), ("vs_year_ago", "kpi.vs_year")):
        v = entry.get(key)
        if v is None:
            continue
        cls = "up" if v > 0.00005 else "down" if v < -0.00005 else "flat"
        out.append({"key": key, "cls": cls, "text": f.tr(msg, change=_points(f, v)), "raw": v})
    return out


def partial_note(data: dict[str, Any], f: _Fmt) -> str | None:
    """Why the cards do not show the last month: it is incomplete."""
    metrics = data["metrics"]
    periods = metrics["periods"]
    end = metrics.get("coverage_end")
    if not periods or periods[-1]["complete"] or end is None:
        return None
    head = metrics["headline"]
    if head["period"] is None:
        return f.tr("kpi.none_complete", end=f.date(end))
    return f.tr(
        "kpi.partial",
        period=periods[-1]["period"],
        end=f.date(end),
        last=head["period"],
        buyback=head["buyback_period"] or "—",
    )


def _kpis(data: dict[str, Any], f: _Fmt) -> list[dict[str, Any]]:
    tot = data["totals"]
    kpis = [
        {
            "key": "customers",
            "label": f.tr("kpi.customers"),
            "value": f.count(tot["customers"]),
            "raw": tot["customers"],
            "sub": None,
            "accent": False,
        },
        {
            "key": "orders",
            "label": f.tr("kpi.orders"),
            "value": f.count(tot["orders"]),
            "raw": tot["orders"],
            "sub": None,
            "accent": False,
        },
        {
            "key": "revenue",
            "label": f.tr("kpi.revenue"),
            "value": f.money_short(tot["revenue"]),
            "raw": tot["revenue"],
            "sub": f.money(tot["revenue"])
            if tot["revenue"] is not None and abs(tot["revenue"]) >= 100_000
            else None,
            "accent": False,
        },
        {
            "key": "aov",
            "label": f.tr("kpi.aov"),
            "value": f.money(tot["aov"]),
            "raw": tot["aov"],
            "sub": None,
            "accent": False,
        },
        {
            "key": "repeat_customers",
            "label": f.tr("kpi.repeat_customers"),
            "value": f.count(tot["repeat_customers"]),
            "raw": tot["repeat_customers"],
            "sub": f.tr("kpi.repeat_customers_sub", share=f.pct(tot["repeat_customer_share"])),
            "accent": False,
        },
    ]
    head = data["metrics"]["headline"]
    last = last_full_period(data)
    if last is not None:
        sub = f.tr("kpi.last_month", period=last["period"])
        for key, label in (
            ("in_period_repurchase_rate", "kpi.in_period_rate"),
            ("returning_buyer_share", "kpi.returning_share"),
        ):
            kpis.append(
                {
                    "key": key,
                    "label": f.tr(label),
                    "value": f.pct(last[key]),
                    "raw": last[key],
                    "sub": sub,
                    "period": last["period"],
                    "compare": _compare(f, head["metrics"].get(key)),
                    "accent": True,
                }
            )
    bb = last_buyback_period(data)
    if bb is not None:
        kpis.append(
            {
                "key": "buyback_rate",
                "label": f.tr("kpi.buyback_rate"),
                "value": f.pct(bb["buyback_rate"]),
                "raw": bb["buyback_rate"],
                "sub": f.tr("kpi.buyback_of", period=bb["period"]),
                "period": bb["period"],
                "compare": _compare(f, head["metrics"].get("buyback_rate")),
                "accent": True,
            }
        )
    if data["cycle"]["median"] is not None:
        kpis.append(
            {
                "key": "median_cycle",
                "label": f.tr("kpi.median_cycle"),
                "value": f.tr("kpi.days", n=f.days(data["cycle"]["median"])),
                "raw": data["cycle"]["median"],
                "sub": None,
                "accent": False,
            }
        )
    kpis.append(
        {
            "key": "due",
            "label": f.tr("kpi.due"),
            "value": f.count(data["due"]["count"]),
            "raw": data["due"]["count"],
            "sub": f"{f.short_date(data['due']['start'])} – {f.short_date(data['due']['end'])}",
            "accent": False,
        }
    )
    for kpi in kpis:
        kpi.setdefault("compare", [])
    return kpis


# --- sections -------------------------------------------------------------------------------


def _section(sid: str, title: str, intro: str | None, **kw: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "title": title,
        "intro": intro,
        "notes": kw.get("notes", []),
        "charts": kw.get("charts", []),
        "grid": kw.get("grid", False),
        "stats": kw.get("stats", []),
        "definitions": kw.get("definitions", []),
        "tables": kw.get("tables", []),
    }


def _chart(
    figures: dict[str, go.Figure], cid: str, fig: go.Figure, size: str = ""
) -> dict[str, Any]:
    figures[cid] = fig
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else cid
    return {"id": cid, "size": size, "title": title}


#: columns of the monthly table: (key in the metrics JSON, message key, kind)
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("buyers", "metric.buyers", "int"),
    ("new_buyers", "metric.new_buyers", "int"),
    ("returning_buyers", "metric.returning_buyers", "int"),
    ("orders", "metric.orders", "int"),
    ("revenue", "metric.revenue", "num"),
    ("aov", "metric.aov", "num"),
    ("in_period_repurchase_rate", "metric.in_period_repurchase_rate", "pct"),
    ("customer_repurchase_rate", "metric.customer_repurchase_rate", "pct"),
    ("order_repurchase_rate", "metric.order_repurchase_rate", "pct"),
    ("buyback_rate", "metric.buyback_rate", "pct"),
    ("returning_buyer_share", "metric.returning_buyer_share", "pct"),
    ("returning_revenue_share", "metric.returning_revenue_share", "pct"),
)


def _fmt_kind(f: _Fmt, kind: str, v: Any) -> str:
    if kind == "int":
        return f.count(v)
    if kind == "pct":
        return f.pct(v)
    if kind == "days":
        return f.days(v)
    return f.num(v)


def _metrics_section(
    data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]
) -> dict[str, Any]:
    periods = data["metrics"]["periods"]
    cur = f" ({f.currency})"
    columns = [("period", f.tr("metric.period"), "")] + [
        (key, f.tr(msg) + (cur if key in ("revenue", "aov") else ""), "")
        for key, msg, _ in METRIC_COLUMNS
    ]
    rows = [
        [
            _cell(p["period"], p["period"])
            if p.get("complete", True)
            else _cell(p["period"] + " *", p["period"], "partial")
        ]
        + [_cell(_fmt_kind(f, kind, p.get(key)), p.get(key)) for key, _, kind in METRIC_COLUMNS]
        for p in periods
    ]
    end = data["metrics"].get("coverage_end")
    footnote = (
        f.tr("metric.partial_footnote", end=f.date(end))
        if end is not None and any(not p.get("complete", True) for p in periods)
        else None
    )
    charts_ = []
    if periods:
        charts_ = [
            _chart(figures, "chart-rates", charts.rates_chart(periods, f.tr)),
            _chart(figures, "chart-buyers", charts.buyers_chart(periods, f.tr, f.currency)),
        ]
    return _section(
        "metrics",
        f.tr("sec.metrics.title"),
        f.tr("sec.metrics.intro"),
        charts=charts_,
        definitions=[
            f.tr("report.counted_note"),
            f.tr("def.buyers"),
            f.tr("def.in_period_repurchase_rate"),
            f.tr("def.customer_repurchase_rate"),
            f.tr("def.order_repurchase_rate"),
            f.tr("def.buyback_rate"),
            f.tr("def.returning_share"),
            f.tr("def.aov"),
        ],
        tables=[_table("table-metrics", columns, rows, scroll=len(rows) > 14, footnote=footnote)],
    )


def _cohort_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    c = data["cohorts"]
    charts_ = []
    if c["cohorts"]:
        charts_ = [
            _chart(
                figures,
                "chart-cohorts",
                charts.cohort_chart(
                    c["cohorts"], c["sizes"], c["k"], c["share"], c["revenue"], f.tr, f.currency
                ),
                "tall" if len(c["cohorts"]) > 12 else "",
            )
        ]
    return _section(
        "cohorts",
        f.tr("sec.cohorts.title"),
        f.tr("sec.cohorts.intro"),
        charts=charts_,
        notes=[] if charts_ else [f.tr("report.no_data")],
        definitions=[f.tr("def.cohorts")],
    )


def _ladder_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    steps = data["ladder"]
    columns = [
        ("step", f.tr("axis.step"), ""),
        ("reached_k", f.tr("ladder.customers_k"), ""),
        ("reached_k_plus_1", f.tr("ladder.customers_k1"), ""),
        ("share", f.tr("ladder.share"), ""),
        ("median_days", f.tr("ladder.median_days"), ""),
    ]
    rows = [
        [
            _cell(f.tr("ladder.step", k=s["k"], k1=s["k"] + 1), s["k"]),
            _cell(f.count(s["reached_k"]), s["reached_k"]),
            _cell(f.count(s["reached_k_plus_1"]), s["reached_k_plus_1"]),
            _cell(f.pct(s["share"]), s["share"]),
            _cell(f.days(s["median_days"]), s["median_days"]),
        ]
        for s in steps
    ]
    return _section(
        "ladder",
        f.tr("sec.ladder.title"),
        f.tr("sec.ladder.intro"),
        charts=[_chart(figures, "chart-ladder", charts.ladder_chart(steps, f.tr))] if steps else [],
        definitions=[f.tr("def.ladder")],
        tables=[_table("table-ladder", columns, rows)],
    )


def _cycle_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    c = data["cycle"]
    h = c["histogram"]
    stats = []
    charts_ = []
    if c["customers_with_cycle"]:
        stats.append(
            f.tr(
                "cycle.stats",
                n=f.count(c["customers_with_cycle"]),
                median=f.days(c["median"]),
                q1=f.days(c["q1"]),
                q3=f.days(c["q3"]),
            )
        )
        charts_ = [
            _chart(
                figures,
                "chart-cycle",
                charts.cycle_chart(h["edges"], h["counts"], h["width"], c["median"], f.tr),
            )
        ]
    else:
        stats.append(f.tr("report.no_data"))
    return _section(
        "cycle",
        f.tr("sec.cycle.title"),
        f.tr("sec.cycle.intro"),
        charts=charts_,
        stats=stats,
        definitions=[f.tr("def.cycle")],
    )


_FIRST_COLUMN = {
    "analytics.rfm": "rfm.segment",
    "analytics.layer": "layer.layer",
    "analytics.lifecycle": "lifecycle.stage",
}


def _segment_table(
    tid: str, rows_in: list[dict[str, Any]], f: _Fmt, label_prefix: str, *, strategy: bool
) -> dict[str, Any]:
    cur = f" ({f.currency})"
    columns = [
        ("key", f.tr("layer.layer" if strategy else _FIRST_COLUMN[label_prefix]), ""),
        ("customers", f.tr("rfm.customers"), ""),
        ("share", f.tr("rfm.customer_share"), ""),
        ("revenue", f.tr("rfm.spend") + cur, ""),
        ("revenue_share", f.tr("rfm.spend_share"), ""),
        ("avg_spend", f.tr("rfm.avg_spend") + cur, ""),
    ]
    if strategy:
        columns.append(("strategy", f.tr("layer.strategy"), "text"))
    rows = []
    for r in rows_in:
        row = [
            _cell(
                f.tr(f"{label_prefix}.{r['key']}"), r["key"], pill=r["key"] if strategy else None
            ),
            _cell(f.count(r["customers"]), r["customers"]),
            _cell(f.pct(r["share"]), r["share"]),
            _cell(f.num(r["revenue"]), r["revenue"]),
            _cell(f.pct(r["revenue_share"]), r["revenue_share"]),
            _cell(f.num(r["avg_spend"]), r["avg_spend"]),
        ]
        if strategy:
            row.append(_cell(r[f"strategy_{f.lang}"], None, "strategy"))
        rows.append(row)
    return _table(tid, columns, rows)


def _chart_rows(rows: list[dict[str, Any]], f: _Fmt, prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "key": r["key"],
            "label": f.tr(f"{prefix}.{r['key']}"),
            "customers": r["customers"],
            "customer_share": r["share"] or 0.0,
            "spend_share": r["revenue_share"] or 0.0,
        }
        for r in rows
    ]


def _two_news(data: dict[str, Any], f: _Fmt) -> str:
    """The RFM "new" and the layer "new" counts side by side, with what each means."""

    def count(rows: list[dict[str, Any]]) -> int:
        return next((int(r["customers"]) for r in rows if r["key"] == "new"), 0)

    return f.tr(
        "new.side_by_side",
        rfm=f.count(count(data["rfm"])),
        layer=f.count(count(data["layers"])),
        days=data["windows"]["new_days"],
    )


def _rfm_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    rows = data["rfm"]
    return _section(
        "rfm",
        f.tr("sec.rfm.title"),
        f.tr("sec.rfm.intro"),
        stats=[_two_news(data, f)],
        charts=[
            _chart(
                figures, "chart-rfm", charts.rfm_chart(_chart_rows(rows, f, "analytics.rfm"), f.tr)
            )
        ],
        definitions=[
            f.tr(
                "def.rfm",
                segments=f.tr("report.list_sep").join(
                    f.tr(f"analytics.rfm.{r['key']}") for r in rows
                ),
            )
        ],
        tables=[_segment_table("table-rfm", rows, f, "analytics.rfm", strategy=False)],
    )


def _layers_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    rows = data["layers"]
    w = data["windows"]
    return _section(
        "layers",
        f.tr("sec.layers.title"),
        f.tr("sec.layers.intro"),
        stats=[_two_news(data, f)],
        charts=[
            _chart(
                figures,
                "chart-layers",
                charts.layers_chart(_chart_rows(rows, f, "analytics.layer"), f.tr),
            )
        ],
        definitions=[
            f.tr(
                "def.layers",
                new=w["new_days"],
                cooling=w["cooling_days"],
                high=w["high_winback_days"],
                lost=w["lost_days"],
            )
        ],
        tables=[
            _segment_table("table-layers", rows, f, "analytics.layer", strategy=True),
            {
                **_segment_table(
                    "table-lifecycle", data["lifecycle"], f, "analytics.lifecycle", strategy=False
                ),
                "caption": f.tr("lifecycle.caption"),
                "note": f.tr(
                    "def.lifecycle",
                    factor=f.num(data["lifecycle_rules"]["overdue_factor"], 0),
                    new=w["new_days"],
                    cooling=w["cooling_days"],
                    lost=w["lost_days"],
                    mature=data["lifecycle_rules"]["maturity_orders"],
                    growth_max=data["lifecycle_rules"]["maturity_orders"] - 1,
                ),
            },
        ],
    )


def _due_section(data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]) -> dict[str, Any]:
    due = data["due"]
    cur = f" ({f.currency})"
    columns = [
        ("customer_id", f.tr("due.customer"), ""),
        ("next_expected_date", f.tr("due.expected"), ""),
        ("last_order_date", f.tr("due.last_order"), ""),
        ("cycle_days", f.tr("due.cycle"), ""),
        ("orders", f.tr("due.orders"), ""),
        ("spend", f.tr("due.spend") + cur, ""),
        ("layer", f.tr("due.layer"), ""),
    ]
    rows = [
        [
            _cell(c["customer_id"], c["customer_id"]),
            _cell(f.date(c["next_expected_date"]), c["next_expected_date"]),
            _cell(f.date(c["last_order_date"]), c["last_order_date"]),
            _cell(f.days(c["cycle_days"]), c["cycle_days"]),
            _cell(f.count(c["orders"]), c["orders"]),
            _cell(f.num(c["spend"]), c["spend"]),
            _cell(f.tr(f"analytics.layer.{c['layer']}"), c["layer"], pill=c["layer"]),
        ]
        for c in due["customers"]
    ]
    n = due["count"]
    if n == 0:
        note = f.tr("due.none")
    elif n > len(rows):
        note = (
            f.tr("due.truncated", n=f.count(n), shown=f.count(len(rows)))
            + " "
            + f.tr("report.download_hint")
        )
    else:
        note = f.tr("due.count", n=f.count(n))
    days = [f.short_date(d["date"]) for d in due["by_day"]]
    counts = [d["customers"] for d in due["by_day"]]
    return _section(
        "due",
        f.tr("sec.due.title"),
        f.tr("sec.due.intro", start=f.date(due["start"]), end=f.date(due["end"])),
        charts=[_chart(figures, "chart-due", charts.due_chart(days, counts, f.tr), "short")],
        definitions=[f.tr("def.due")],
        tables=[_table("table-due", columns, rows, note=note, scroll=len(rows) > 15)]
        if rows
        else [],
        stats=[] if rows else [note],
    )


_RISK_COLORS = {"low": "#16a34a", "medium": "#ca8a04", "high": "#ea580c", "lost": "#6b7280"}


def _predictions_section(
    data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]
) -> dict[str, Any] | None:
    pred = data.get("predictions")
    if pred is None:
        return None
    from huitouke.prediction import churn_risk_label

    title = f.tr("sec.pred.title")
    if pred["status"] != "ok":
        reason = pred.get("reason_zh" if f.lang == "zh" else "reason") or pred.get("reason", "")
        return _section("predictions", title, f.tr("sec.pred.failed", reason=reason))

    horizon = pred["horizon_days"]
    band_rows = [
        (
            churn_risk_label(b["band"], f.lang),
            b["customers"],
            _RISK_COLORS.get(b["band"], "#64748b"),
        )
        for b in pred["bands"]
    ]
    bins = pred["clv_bins"]
    charts_ = [
        _chart(
            figures, "chart-alive", charts.alive_chart(pred["p_alive_histogram"], band_rows, f.tr)
        ),
        _chart(
            figures,
            "chart-value",
            charts.value_chart(bins["edges"], bins["counts"], bins["width"], f.tr, f.currency),
        ),
    ]
    # calendar: Monday-start weeks as columns, weekdays as rows
    cal = pred["calendar"]
    if cal:
        first = date.fromisoformat(cal[0]["date"])
        monday = first - timedelta(days=first.weekday())
        last = date.fromisoformat(cal[-1]["date"])
        n_weeks = (last - monday).days // 7 + 1
        z: list[list[float | None]] = [[None] * n_weeks for _ in range(7)]
        labels: list[list[str]] = [[""] * n_weeks for _ in range(7)]
        for d in cal:
            day = date.fromisoformat(d["date"])
            col = (day - monday).days // 7
            z[day.weekday()][col] = d["customers"]
            labels[day.weekday()][col] = f.date(d["date"])
        week_labels = [
            f.short_date((monday + timedelta(days=7 * i)).isoformat()) for i in range(n_weeks)
        ]
        names = get_day_names("abbreviated", locale=_BABEL_LOCALE[f.lang])
        charts_.append(
            _chart(
                figures,
                "chart-calendar",
                charts.calendar_chart(week_labels, [names[i] for i in range(7)], z, labels, f.tr),
            )
        )
    alive = sum(b["customers"] for b in pred["bands"] if b["status"] == "alive")
    stats = [
        f.tr(
            "pred.summary",
            alive=f.count(alive),
            customers=f.count(pred["customers"]),
            orders=f.num(pred["expected_orders"], 0),
            revenue=f.money(pred["expected_spend"]),
            horizon=horizon,
            clv=f.money(pred["clv_total"]),
        )
    ]
    tracking = pred["tracking"]
    if tracking["status"] == "ok":
        charts_.append(
            _chart(
                figures,
                "chart-tracking",
                charts.tracking_chart(
                    [f.short_date(w) for w in tracking["weeks"]],
                    tracking["actual"],
                    tracking["predicted"],
                    tracking["calibration_weeks"],
                    f.tr,
                ),
            )
        )
        stats.append(
            f.tr(
                "pred.tracking_note",
                cal_end=f.date(tracking["calibration_end"]),
                model=tracking["model_label"],
                actual=f.count(tracking["holdout_actual"]),
                predicted=f.num(tracking["holdout_predicted"], 0),
            )
        )
    stats.append(f.tr("pred.calendar_note", n=f.count(pred["likely_to_order"])))
    holdout_tables = _holdout_tables(pred.get("evaluation"), f, stats)

    cur = f" ({f.currency})"
    columns = [
        ("customer_id", f.tr("pred.customer"), ""),
        ("p_alive", f.tr("pred.p_alive"), ""),
        ("expected_orders", f.tr("pred.expected_orders", horizon=horizon), ""),
        ("expected_spend", f.tr("pred.expected_revenue", horizon=horizon) + cur, ""),
        ("clv", f.tr("pred.clv") + cur, ""),
        ("next_order_median", f.tr("pred.next_median"), ""),
        ("next_order_interval", f.tr("pred.next_interval"), ""),
        ("churn_risk", f.tr("pred.churn_risk"), ""),
    ]
    rows = [
        [
            _cell(r["customer_id"], r["customer_id"]),
            _cell(f.pct(r["p_alive"]), r["p_alive"]),
            _cell(f.num(r["expected_orders"], 2), r["expected_orders"]),
            _cell(f.num(r["expected_spend"]), r["expected_spend"]),
            _cell(f.num(r["clv"]), r["clv"]),
            _cell(f.date(r["next_order_median"]), r["next_order_median"]),
            _cell(f"{f.date(r['next_order_low'])} – {f.date(r['next_order_high'])}", None),
            _cell(churn_risk_label(r["churn_risk"], f.lang), r["churn_risk"]),
        ]
        for r in pred["top"]
    ]
    params = ", ".join(f"{k} = {f.num(v, 4)}" for k, v in pred["params"].items())
    param_rows = [
        [
            _cell(pred["model_label"], pred["model"]),
            _cell(params, None, "text"),
            _cell(f.num(pred["log_likelihood"], 2), pred["log_likelihood"]),
        ]
    ]
    if pred.get("spend_model") == "gamma_gamma" and pred.get("spend_params"):
        gg = ", ".join(f"{k} = {f.num(v, 4)}" for k, v in pred["spend_params"].items())
        param_rows.append(
            [_cell("Gamma-Gamma", "gamma_gamma"), _cell(gg, None, "text"), _cell("", None)]
        )
    intro = f.tr("sec.pred.intro", model=pred["model_label"], horizon=horizon)
    if pred.get("comparison"):
        intro += " " + f.tr("sec.pred.auto")
        why = (pred.get("selection") or {}).get("reason_zh" if f.lang == "zh" else "reason")
        if why:
            intro += " " + f.tr("sec.pred.why", reason=why)
    return _section(
        "predictions",
        title,
        intro,
        charts=charts_,
        grid=True,
        stats=stats,
        definitions=[
            f.tr("def.pred"),
            f.tr(
                "def.pred_value",
                horizon=horizon,
                margin=f.pct(pred["margin"], 0),
                rate=f.pct(pred["annual_discount_rate"], 0),
            ),
            f.tr("def.pred_bands"),
            f.tr("def.pred_calendar"),
        ],
        tables=[
            _table("table-top", columns, rows, caption=f.tr("pred.top")),
            _table(
                "table-params",
                [
                    ("model", f.tr("pred.model"), ""),
                    ("params", f.tr("pred.params"), "text"),
                    ("ll", f.tr("pred.log_likelihood"), ""),
                ],
                param_rows,
                caption=f.tr("pred.params"),
            ),
            *holdout_tables,
        ],
    )


def _holdout_tables(ev: dict[str, Any] | None, f: _Fmt, stats: list[str]) -> list[dict[str, Any]]:
    """The holdout check as a table (one row per model), or a line saying why it is absent."""
    if not ev:
        return []
    if ev.get("status") != "ok" or ev.get("note"):
        reason = ev.get("reason_zh" if f.lang == "zh" else "reason") or ev.get(
            "note_zh" if f.lang == "zh" else "note"
        )
        stats.append(f.tr("prediction.eval.none", reason=reason or ""))
        return []
    rows = []
    for m in ev["models"]:
        err = m["error"]
        cov = m["coverage_observed"]
        rows.append(
            [
                _cell(m["model_label"] + (" *" if m["penalized"] else ""), m["model"]),
                _cell(f.tr(f"prediction.eval.status.{m['status']}"), m["status"]),
                _cell(f.num(m["predicted_repeat_orders"], 1), m["predicted_repeat_orders"]),
                _cell(f.count(m["actual_repeat_orders"]), m["actual_repeat_orders"]),
                _cell("—" if err is None else f"{err:+.1%}", err),
                _cell(
                    "—" if cov is None else f"{f.pct(cov)} ({f.pct(m['coverage_expected'])})",
                    cov,
                ),
                _cell((m["reason_zh"] if f.lang == "zh" else m["reason"]) or "", None, "text"),
            ]
        )
    caption = f.tr(
        "prediction.eval.title",
        cal_end=f.date(ev["calibration_end"]),
        end=f.date(ev["holdout_end"]),
        days=ev["holdout_days"],
        customers=f.count(ev["customers"]),
        actual=f.count(ev["actual_repeat_orders"]),
    )
    columns = [
        (key, f.tr(f"prediction.eval.{key}"), "text" if key == "reason" else "")
        for key in ("model", "status", "predicted", "actual", "error", "coverage", "reason")
    ]
    note = f.tr("prediction.eval.legend", coverage=f.pct(ev["coverage"], 0))
    return [_table("table-pred-holdout", columns, rows, caption=caption, note=note)]


# --- reminders: journeys and package-insert campaigns ---------------------------------------


def _journey_labels(rem: dict[str, Any], lang: str) -> dict[str, str]:
    """Display name per journey id; an id is added where two journeys share a name."""
    names = {
        jid: rem.get("journey_names", {}).get(jid, {}).get(lang, jid)
        for jid in (r["journey_id"] for r in rem["journeys"])
    }
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {jid: (n if counts[n] == 1 else f"{n} ({jid})") for jid, n in names.items()}


def _unit_price(v: str, f: _Fmt) -> str:
    """A price per SMS segment in full (0.045 CNY: cents would round it to 0.04)."""
    exp = Decimal(v).normalize().as_tuple().exponent
    digits = max(2, -exp) if isinstance(exp, int) else 2
    return f"{f.amount(v, digits)} {f.currency}"


def _sum_money(values: list[str | None]) -> str:
    return str(sum((Decimal(v) for v in values if v is not None), Decimal(0)))


def _reminders_section(
    data: dict[str, Any], f: _Fmt, figures: dict[str, go.Figure]
) -> dict[str, Any] | None:
    """Journey and insert-campaign results (:mod:`.reminders`); absent when the document
    has none (a report on a file or on the sample: nothing was sent from there)."""
    rem = data.get("reminders")
    if rem is None:
        return None
    window = rem["window_days"]
    title = f.tr("sec.rem.title")
    intro = f.tr("sec.rem.intro", as_of=f.date(rem["as_of"]), window=window)
    journeys = rem["journeys"]
    camps = rem["insert_campaigns"]
    definitions = [
        f.tr("def.rem.groups"),
        f.tr("def.rem.converted", window=window),
        f.tr("def.rem.uplift"),
        f.tr(
            "def.rem.cost",
            price=_unit_price(rem["sms_price_per_segment"], f),
            window=window,
        ),
        f.tr("def.rem.inserts", window=window),
    ]
    if not journeys and not camps:
        return _section("reminders", title, intro, notes=[f.tr("rem.none")])

    labels = _journey_labels(rem, f.lang)
    stats: list[str] = []
    charts_: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    if journeys:
        stats.append(
            f.tr(
                "rem.summary",
                journeys=f.count(len(journeys)),
                audience=f.count(sum(r["audience"] for r in journeys)),
                holdout=f.count(sum(r["holdout"] for r in journeys)),
                sent=f.count(sum(r["sent"] for r in journeys)),
                revenue=f.money_str(_sum_money([r["incremental_revenue"] for r in journeys])),
                cost=f.money_str(_sum_money([r["cost"] for r in journeys])),
                sms=f.money_str(_sum_money([r["sms_cost"] for r in journeys])),
                coupon=f.money_str(_sum_money([r["coupon_cost"] for r in journeys])),
            )
        )
        done = [r for r in journeys if r["incremental_repurchase"] is not None]
        if done:
            charts_.append(
                _chart(
                    figures,
                    "chart-uplift",
                    charts.uplift_chart(
                        [labels[r["journey_id"]] for r in done],
                        [r["incremental_repurchase"] for r in done],
                        [r["incremental_ci95"][0] for r in done],
                        [r["incremental_ci95"][1] for r in done],
                        [
                            f.tr(
                                "rem.hover",
                                t=f.pct(r["conversion_treatment"]),
                                xt=r["converted_treatment"],
                                nt=r["treatment_measured"],
                                h=f.pct(r["conversion_holdout"]),
                                xh=r["converted_holdout"],
                                nh=r["holdout_measured"],
                                low=f.pct(r["incremental_ci95"][0]),
                                high=f.pct(r["incremental_ci95"][1]),
                            )
                            for r in done
                        ],
                        f.tr,
                    ),
                    "short",
                )
            )
        else:
            stats.append(f.tr("rem.open", n=f.count(sum(r["in_window"] for r in journeys))))
        tables += _journey_tables(journeys, labels, f)
    else:
        stats.append(f.tr("rem.no_journeys"))
    if camps:
        tables.append(_inserts_table(camps, f))
    return _section(
        "reminders",
        title,
        intro,
        charts=charts_,
        stats=stats,
        definitions=definitions,
        tables=tables,
    )


def _journey_tables(
    journeys: list[dict[str, Any]], labels: dict[str, str], f: _Fmt
) -> list[dict[str, Any]]:
    cur = f" ({f.currency})"
    reach_cols = [
        ("journey_id", f.tr("rem.journey"), "text"),
        ("audience", f.tr("rem.audience"), ""),
        ("treatment", f.tr("rem.treatment"), ""),
        ("holdout", f.tr("rem.holdout"), ""),
        ("in_window", f.tr("rem.in_window"), ""),
        ("sent", f.tr("rem.sent"), ""),
        ("delivered", f.tr("rem.delivered"), ""),
        ("clicked", f.tr("rem.clicked"), ""),
        ("converted_treatment", f.tr("rem.converted_t"), ""),
        ("converted_holdout", f.tr("rem.converted_h"), ""),
        ("attributed_orders", f.tr("rem.attributed"), ""),
    ]
    effect_cols = [
        ("journey_id", f.tr("rem.journey"), "text"),
        ("conversion_treatment", f.tr("rem.conv_t"), ""),
        ("conversion_holdout", f.tr("rem.conv_h"), ""),
        ("incremental_repurchase", f.tr("rem.uplift"), ""),
        ("ci_low", f.tr("rem.ci_low"), ""),
        ("ci_high", f.tr("rem.ci_high"), ""),
        ("incremental_revenue", f.tr("rem.inc_revenue") + cur, ""),
        ("sms_cost", f.tr("rem.sms_cost") + cur, ""),
        ("coupon_cost", f.tr("rem.coupon_cost") + cur, ""),
        ("cost", f.tr("rem.cost") + cur, ""),
        ("roi", f.tr("rem.roi"), ""),
        ("cost_per_incremental_customer", f.tr("rem.cpic") + cur, ""),
    ]
    reach = []
    effect = []
    for r in journeys:
        name = _cell(labels[r["journey_id"]], r["journey_id"], "text")
        reach.append(
            [name]
            + [
                _cell(f.count(r[k]), r[k])
                for k, _, _ in reach_cols[1:]  # every other column is a count
            ]
        )
        ci = r["incremental_ci95"] or [None, None]
        effect.append(
            [
                name,
                _cell(f.pct(r["conversion_treatment"]), r["conversion_treatment"]),
                _cell(f.pct(r["conversion_holdout"]), r["conversion_holdout"]),
                _cell(f.pct(r["incremental_repurchase"]), r["incremental_repurchase"]),
                _cell(f.pct(ci[0]), ci[0]),
                _cell(f.pct(ci[1]), ci[1]),
                _cell(f.amount(r["incremental_revenue"]), r["incremental_revenue"]),
                _cell(f.amount(r["sms_cost"]), r["sms_cost"]),
                _cell(f.amount(r["coupon_cost"]), r["coupon_cost"]),
                _cell(f.amount(r["cost"]), r["cost"]),
                _cell(f.pct(r["roi"]), r["roi"]),
                _cell(
                    f.amount(r["cost_per_incremental_customer"]),
                    r["cost_per_incremental_customer"],
                ),
            ]
        )
    return [
        _table(
            "table-journeys-reach",
            reach_cols,
            reach,
            caption=f.tr("rem.reach.caption"),
            scroll=len(reach) > 15,
        ),
        _table(
            "table-journeys-effect",
            effect_cols,
            effect,
            caption=f.tr("rem.effect.caption"),
            scroll=len(effect) > 15,
        ),
    ]


def _inserts_table(camps: list[dict[str, Any]], f: _Fmt) -> dict[str, Any]:
    cur = f" ({f.currency})"
    cols = [
        ("campaign_id", f.tr("rem.campaign"), "text"),
        ("printed", f.tr("rem.printed"), ""),
        ("claimed", f.tr("rem.claimed"), ""),
        ("converted", f.tr("rem.converted"), ""),
        ("revenue", f.tr("rem.revenue") + cur, ""),
        ("coupons_redeemed", f.tr("rem.coupons_redeemed"), ""),
        ("coupon_cost", f.tr("rem.coupon_cost") + cur, ""),
    ]
    rows = [
        [
            _cell(c["campaign_id"], c["campaign_id"], "text"),
            _cell(f.count(c["printed"]), c["printed"]),
            _cell(f.count(c["claimed"]), c["claimed"]),
            _cell(f.count(c["converted"]), c["converted"]),
            _cell(f.amount(c["revenue"]), c["revenue"]),
            _cell(f.count(c["coupons_redeemed"]), c["coupons_redeemed"]),
            _cell(f.amount(c["coupon_cost"]), c["coupon_cost"]),
        ]
        for c in camps
    ]
    return _table(
        "table-inserts", cols, rows, caption=f.tr("rem.inserts.caption"), scroll=len(rows) > 15
    )
