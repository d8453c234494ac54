"""Plotly figures of the report, built from the report's plain data (never from raw orders).

Every function takes the already computed numbers (the same ones the tables show and the
``report-data`` block carries) and a translator ``tr(key, **params)``, and returns a
``plotly.graph_objects.Figure``. Per-customer series are binned here so a report on two
million customers still embeds a few kilobytes per chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "COLORS",
    "Translator",
    "alive_chart",
    "buyers_chart",
    "calendar_chart",
    "cohort_chart",
    "cycle_chart",
    "due_chart",
    "figure_json",
    "ladder_chart",
    "layers_chart",
    "rates_chart",
    "rfm_chart",
    "tracking_chart",
    "uplift_chart",
    "value_chart",
]

Translator = Callable[..., str]

COLORS = {
    "teal": "#0f766e",
    "teal_light": "#5eead4",
    "orange": "#ea580c",
    "indigo": "#4f46e5",
    "rose": "#e11d48",
    "slate": "#64748b",
    "amber": "#d97706",
    "sky": "#0284c7",
    "green": "#16a34a",
    "grey": "#9ca3af",
}

LAYER_COLORS = {
    "new": "#0284c7",
    "active": "#16a34a",
    "cooling": "#ca8a04",
    "high_winback": "#ea580c",
    "low_winback": "#dc2626",
    "lost": "#6b7280",
}

_FONT = (
    '"Inter", "Segoe UI", "Helvetica Neue", "PingFang SC", "Noto Sans CJK SC", '
    '"Microsoft YaHei", Arial, sans-serif'
)


def _base_layout(title: str, *, height: int = 380, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        # An empty template: plotly.py would otherwise embed its default theme (~10 kB)
        # in every figure; the look comes from the settings below.
        "template": go.layout.Template(),
        "title": {
            "text": title,
            "x": 0.0,
            "xanchor": "left",
            "font": {"size": 15, "color": "#1b2430"},
        },
        "font": {"family": _FONT, "size": 12, "color": "#4a5565"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "height": height,
        "margin": {"l": 56, "r": 24, "t": 56, "b": 48},
        "hoverlabel": {"font": {"family": _FONT}},
        "legend": {
            "orientation": "h",
            "y": -0.26,
            "yanchor": "top",
            "x": 0.0,
            "font": {"size": 11.5},
        },
        "colorway": [
            COLORS["teal"],
            COLORS["orange"],
            COLORS["indigo"],
            COLORS["rose"],
            COLORS["slate"],
            COLORS["amber"],
        ],
        "separators": ".,",
    }
    layout.update(extra)
    return layout


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    axis: dict[str, Any] = {
        "title": {"text": title},
        "gridcolor": "#eef1f5",
        "linecolor": "#cfd6df",
        "zeroline": False,
        "automargin": True,
    }
    axis.update(extra)
    return axis


def figure_json(fig: go.Figure) -> str:
    """The figure as JSON that is safe inside ``<script type="application/json">``."""
    text = fig.to_json(validate=False, remove_uids=True)
    return text.replace("</", "<\\/")


def _f(v: Any) -> float | None:
    if v is None:
        return None
    x = float(v)
    return None if math.isnan(x) else x


# --- monthly metrics --------------------------------------------------------------------


def _partial_from(periods: Sequence[dict[str, Any]]) -> int | None:
    """Index of the first incomplete period (they are always the last ones), or None."""
    for i, p in enumerate(periods):
        if not p.get("complete", True):
            return i
    return None


def _mark_partial(fig: go.Figure, first: int | None, n: int, tr: Translator) -> None:
    """Shade the incomplete periods of a category x axis and label them."""
    if first is None:
        return
    fig.add_shape(
        type="rect",
        xref="x",
        yref="paper",
        x0=first - 0.5,
        x1=n - 0.5,
        y0=0,
        y1=1,
        fillcolor="#94a3b8",
        opacity=0.12,
        line={"width": 0},
        layer="below",
        name="partial",
    )
    fig.add_annotation(
        x=first - 0.5,
        y=1.0,
        xref="x",
        yref="paper",
        text=tr("chart.partial"),
        showarrow=False,
        xanchor="left",
        yanchor="bottom",
        font={"color": COLORS["slate"], "size": 11},
    )


def rates_chart(periods: Sequence[dict[str, Any]], tr: Translator) -> go.Figure:
    """The monthly rates as lines; the part over incomplete months is dashed (its own trace,
    in the same legend group) so a month still running never reads as a drop."""
    labels = [p["period"] for p in periods]
    series = [
        ("in_period_repurchase_rate", COLORS["teal"], "solid"),
        ("buyback_rate", COLORS["orange"], "solid"),
        ("returning_buyer_share", COLORS["indigo"], "solid"),
        ("returning_revenue_share", COLORS["indigo"], "dot"),
        ("order_repurchase_rate", COLORS["slate"], "dash"),
    ]
    first = _partial_from(periods)
    fig = go.Figure(layout=_base_layout(tr("chart.rates.title"), height=400))
    for key, color, dash in series:
        values = [_f(p.get(key)) for p in periods]
        name = tr(f"metric.{key}")
        solid = (
            values if first is None else [v if i < first else None for i, v in enumerate(values)]
        )
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=solid,
                name=name,
                legendgroup=key,
                mode="lines+markers",
                line={"color": color, "width": 2.4, "dash": dash},
                marker={"size": 5},
                hovertemplate="%{x}: %{y:.1%}<extra>" + name + "</extra>",
            )
        )
        if first is None or all(v is None for v in values[first:]):
            continue
        # from the last complete month on, dashed and with open markers
        tail = [v if i >= first - 1 else None for i, v in enumerate(values)]
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=tail,
                name=name + tr("series.partial"),
                legendgroup=key,
                showlegend=False,
                mode="lines+markers",
                line={"color": color, "width": 2.0, "dash": "dash"},
                marker={"size": 6, "symbol": "circle-open"},
                opacity=0.75,
                meta="partial",
                hovertemplate="%{x}: %{y:.1%}<extra>" + name + tr("series.partial") + "</extra>",
            )
        )
    _mark_partial(fig, first, len(periods), tr)
    fig.update_layout(
        xaxis=_axis(tr("axis.month"), type="category"),
        yaxis=_axis(tr("axis.rate"), tickformat=".0%", rangemode="tozero"),
        hovermode="x unified",
    )
    return fig


def buyers_chart(periods: Sequence[dict[str, Any]], tr: Translator, currency: str) -> go.Figure:
    labels = [p["period"] for p in periods]
    # new (first order ever in the month) + earlier customers = buyers; a new customer who
    # buys twice in the month is a returning buyer too, so returning_buyers would overlap
    new = [int(p["new_buyers"]) for p in periods]
    earlier = [int(p["buyers"]) - int(p["new_buyers"]) for p in periods]
    revenue = [float(p["revenue"]) for p in periods]
    ret_rev = [float(p["revenue"]) * (_f(p.get("returning_revenue_share")) or 0.0) for p in periods]
    new_rev = [r - rr for r, rr in zip(revenue, ret_rev, strict=True)]
    # bars of incomplete months are hatched: they are not comparable with the others
    first = _partial_from(periods)
    hatch = ["/" if first is not None and i >= first else "" for i in range(len(periods))]
    fig = go.Figure(layout=_base_layout(tr("chart.buyers.title"), height=400))
    fig.add_trace(
        go.Bar(
            x=labels,
            y=new,
            name=tr("series.new_buyers"),
            marker={"color": COLORS["teal_light"], "pattern": {"shape": hatch, "solidity": 0.5}},
        )
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=earlier,
            name=tr("series.earlier_buyers"),
            marker={"color": COLORS["teal"], "pattern": {"shape": hatch, "solidity": 0.5}},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=ret_rev,
            name=tr("series.returning_revenue") + f" ({currency})",
            yaxis="y2",
            mode="lines",
            line={"color": COLORS["orange"], "width": 2},
            hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=new_rev,
            name=tr("series.new_revenue") + f" ({currency})",
            yaxis="y2",
            mode="lines",
            line={"color": COLORS["amber"], "width": 2, "dash": "dot"},
            hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
        )
    )
    _mark_partial(fig, first, len(periods), tr)
    fig.update_layout(
        barmode="stack",
        xaxis=_axis(tr("axis.month"), type="category"),
        yaxis=_axis(tr("axis.buyers"), rangemode="tozero"),
        yaxis2=_axis(
            f"{tr('axis.revenue')} ({currency})",
            overlaying="y",
            side="right",
            showgrid=False,
            rangemode="tozero",
            tickmode="auto",
        ),
        hovermode="x unified",
        margin={"l": 56, "r": 64, "t": 56, "b": 48},
    )
    return fig


# --- cohorts ----------------------------------------------------------------------------


def cohort_chart(
    cohorts: Sequence[str],
    sizes: Sequence[int],
    ks: Sequence[int],
    share: Sequence[Sequence[float | None]],
    revenue: Sequence[Sequence[float | None]] | None,
    tr: Translator,
    currency: str,
) -> go.Figure:
    y = [f"{c} ({n:,})" for c, n in zip(cohorts, sizes, strict=True)]

    def text(m: Sequence[Sequence[float | None]], pct: bool) -> list[list[str]]:
        out = []
        for row in m:
            out.append(
                [
                    ""
                    if v is None
                    else (
                        f"{v * 100:.0f}%"
                        if pct
                        else (f"{v / 1000:,.1f}k" if v >= 1000 else f"{v:,.0f}")
                    )
                    for v in row
                ]
            )
        return out

    show_text = len(ks) <= 30 and len(cohorts) <= 40
    height = max(320, min(900, 120 + 26 * len(cohorts)))
    fig = go.Figure(layout=_base_layout(tr("chart.cohorts.title"), height=height))
    fig.add_trace(
        go.Heatmap(
            x=[str(k) for k in ks],
            y=y,
            z=[list(r) for r in share],
            text=text(share, True) if show_text else None,
            texttemplate="%{text}" if show_text else None,
            textfont={"size": 10},
            colorscale=[[0, "#f0fdfa"], [0.15, "#99f6e4"], [0.4, "#2dd4bf"], [1, "#134e4a"]],
            zmin=0,
            zmax=max(
                [
                    v
                    for row in share
                    for k, v in zip(ks, row, strict=True)
                    if k > 0 and v is not None
                ]
                or [1.0]
            ),
            colorbar={"title": {"text": tr("axis.share")}, "tickformat": ".0%", "thickness": 12},
            hovertemplate="%{y} · k=%{x}: %{z:.1%}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        xaxis=_axis(tr("axis.month_k"), type="category", side="bottom", showgrid=False),
        yaxis=_axis(tr("axis.cohort"), autorange="reversed", type="category", showgrid=False),
        margin={"l": 110, "r": 24, "t": 64, "b": 48},
    )
    if revenue is not None:
        rev_max = max([v for row in revenue for v in row if v is not None] or [1.0])
        fig.update_layout(
            updatemenus=[
                {
                    "type": "buttons",
                    "direction": "right",
                    "x": 1.0,
                    "xanchor": "right",
                    "y": 1.02,
                    "yanchor": "bottom",
                    "showactive": True,
                    "bgcolor": "#f4f6fa",
                    "bordercolor": "#cfd6df",
                    "font": {"size": 11},
                    "buttons": [
                        {
                            "label": tr("axis.share"),
                            "method": "update",
                            "args": [
                                {
                                    "z": [[list(r) for r in share]],
                                    "text": [text(share, True) if show_text else None],
                                    "zmax": [
                                        max(
                                            [
                                                v
                                                for row in share
                                                for k, v in zip(ks, row, strict=True)
                                                if k > 0 and v is not None
                                            ]
                                            or [1.0]
                                        )
                                    ],
                                    "colorbar.tickformat": [".0%"],
                                    "colorbar.title.text": [tr("axis.share")],
                                    "hovertemplate": ["%{y} · k=%{x}: %{z:.1%}<extra></extra>"],
                                },
                                {"title.text": tr("chart.cohorts.title")},
                            ],
                        },
                        {
                            "label": tr("axis.revenue"),
                            "method": "update",
                            "args": [
                                {
                                    "z": [[list(r) for r in revenue]],
                                    "text": [text(revenue, False) if show_text else None],
                                    "zmax": [rev_max],
                                    "colorbar.tickformat": [",.0f"],
                                    "colorbar.title.text": [f"{tr('axis.revenue')} ({currency})"],
                                    "hovertemplate": ["%{y} · k=%{x}: %{z:,.2f}<extra></extra>"],
                                },
                                {"title.text": tr("chart.cohorts_revenue.title")},
                            ],
                        },
                    ],
                }
            ]
        )
    return fig


# --- ladder and cycle -------------------------------------------------------------------


def ladder_chart(steps: Sequence[dict[str, Any]], tr: Translator) -> go.Figure:
    labels = [tr("ladder.step", k=s["k"], k1=s["k"] + 1) for s in steps]
    fig = go.Figure(layout=_base_layout(tr("chart.ladder.title"), height=380))
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[_f(s["share"]) for s in steps],
            name=tr("ladder.share"),
            marker_color=[COLORS["teal"] if s["k"] <= 3 else COLORS["teal_light"] for s in steps],
            text=[("" if s["share"] is None else f"{float(s['share']) * 100:.1f}%") for s in steps],
            textposition="outside",
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=[_f(s.get("median_days")) for s in steps],
            name=tr("ladder.median_days"),
            yaxis="y2",
            mode="lines+markers",
            line={"color": COLORS["orange"], "width": 2},
            marker={"size": 7},
            hovertemplate="%{x}: %{y:.0f}<extra></extra>",
        )
    )
    top = max([_f(s["share"]) or 0.0 for s in steps] or [1.0])
    fig.update_layout(
        xaxis=_axis(tr("axis.step"), type="category"),
        yaxis=_axis(tr("ladder.share"), tickformat=".0%", range=[0, min(1.0, top * 1.2 + 0.02)]),
        yaxis2=_axis(
            tr("axis.median_days"),
            overlaying="y",
            side="right",
            showgrid=False,
            rangemode="tozero",
            tickmode="auto",
        ),
        margin={"l": 56, "r": 64, "t": 56, "b": 48},
    )
    return fig


def _bin_labels(edges: Sequence[float], width: float, fmt: str) -> list[str]:
    """Hover labels of histogram bars: "a–b", and "≥ a" for the last bar, which collects
    every value above the 98th percentile (so "a–b" would hide the long tail)."""
    out = [f"{e:{fmt}}–{e + width:{fmt}}" for e in edges]
    if out:
        out[-1] = f"≥ {edges[-1]:{fmt}}"
    return out


def _open_last_bar(edges: Sequence[float], fmt: str) -> list[str]:
    """Bar texts: only the last bar is labelled, "≥ a"."""
    return [""] * (len(edges) - 1) + [f"≥ {edges[-1]:{fmt}}"] if edges else []


def cycle_chart(
    edges: Sequence[float],
    counts: Sequence[int],
    width: float,
    median: float | None,
    tr: Translator,
) -> go.Figure:
    fig = go.Figure(layout=_base_layout(tr("chart.cycle.title"), height=380))
    fig.add_trace(
        go.Bar(
            x=[e + width / 2 for e in edges],
            y=list(counts),
            width=[width * 0.92] * len(edges),
            marker_color=COLORS["teal"],
            name=tr("axis.customers"),
            customdata=_bin_labels(edges, width, ".0f"),
            text=_open_last_bar(edges, ".0f"),
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{customdata}: %{y:,}<extra></extra>",
        )
    )
    if median is not None:
        fig.add_vline(x=median, line_dash="dash", line_color=COLORS["orange"], line_width=2)
        fig.add_annotation(
            x=median,
            y=1.0,
            yref="paper",
            text=f"{tr('cycle.median_line')} {median:.0f}",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"color": COLORS["orange"]},
        )
    fig.update_layout(
        xaxis=_axis(tr("axis.cycle_days"), rangemode="tozero"),
        yaxis=_axis(tr("axis.customers"), rangemode="tozero"),
        bargap=0.05,
        showlegend=False,
    )
    return fig


# --- segments ---------------------------------------------------------------------------


def rfm_chart(rows: Sequence[dict[str, Any]], tr: Translator) -> go.Figure:
    names = [r["label"] for r in rows]
    fig = go.Figure(
        layout=_base_layout(tr("chart.rfm.title"), height=max(360, 60 + 34 * len(rows)))
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=[r["customer_share"] for r in rows],
            orientation="h",
            name=tr("rfm.customer_share"),
            marker_color=COLORS["teal"],
            customdata=[r["customers"] for r in rows],
            hovertemplate="%{y}: %{x:.1%} (%{customdata:,})<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=[r["spend_share"] for r in rows],
            orientation="h",
            name=tr("rfm.spend_share"),
            marker_color=COLORS["orange"],
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    fig.update_layout(
        barmode="group",
        xaxis=_axis("", tickformat=".0%", rangemode="tozero"),
        yaxis=_axis("", autorange="reversed", type="category", showgrid=False),
        margin={"l": 120, "r": 24, "t": 56, "b": 48},
        legend={"orientation": "h", "y": 1.02, "x": 1.0, "xanchor": "right", "yanchor": "bottom"},
    )
    return fig


def layers_chart(rows: Sequence[dict[str, Any]], tr: Translator) -> go.Figure:
    names = [r["label"] for r in rows]
    fig = go.Figure(layout=_base_layout(tr("chart.layers.title"), height=360))
    fig.add_trace(
        go.Bar(
            x=names,
            y=[r["customers"] for r in rows],
            name=tr("rfm.customers"),
            marker_color=[LAYER_COLORS.get(r["key"], COLORS["slate"]) for r in rows],
            text=[f"{r['customer_share'] * 100:.1f}%" for r in rows],
            textposition="outside",
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[r["spend_share"] for r in rows],
            name=tr("rfm.spend_share"),
            yaxis="y2",
            mode="markers+lines",
            line={"color": COLORS["indigo"], "width": 1.5, "dash": "dot"},
            marker={"size": 9, "symbol": "diamond"},
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )
    top = max([r["customers"] for r in rows] or [1])
    fig.update_layout(
        xaxis=_axis("", type="category"),
        yaxis=_axis(tr("rfm.customers"), range=[0, top * 1.18 + 1]),
        yaxis2=_axis(
            tr("rfm.spend_share"),
            overlaying="y",
            side="right",
            showgrid=False,
            tickformat=".0%",
            rangemode="tozero",
            tickmode="auto",
        ),
        margin={"l": 64, "r": 64, "t": 56, "b": 48},
    )
    return fig


def due_chart(days: Sequence[str], counts: Sequence[int], tr: Translator) -> go.Figure:
    fig = go.Figure(layout=_base_layout(tr("chart.due.title"), height=300))
    fig.add_trace(
        go.Bar(
            x=list(days),
            y=list(counts),
            marker_color=COLORS["orange"],
            text=[f"{c:,}" for c in counts],
            textposition="outside",
            hovertemplate="%{x}: %{y:,}<extra></extra>",
            name=tr("axis.customers"),
        )
    )
    top = max(list(counts) or [1])
    fig.update_layout(
        xaxis=_axis(tr("axis.date"), type="category"),
        yaxis=_axis(tr("axis.customers"), range=[0, top * 1.2 + 1]),
        showlegend=False,
        margin={"l": 56, "r": 24, "t": 56, "b": 48},
    )
    return fig


# --- predictions ------------------------------------------------------------------------


def alive_chart(
    histogram: Sequence[int], bands: Sequence[tuple[str, int, str]], tr: Translator
) -> go.Figure:
    """Donut of the alive / uncertain / dormant bands next to a histogram of P(alive)
    (``histogram``: customers in 20 equal bins over [0, 1])."""
    nb = len(histogram)
    fig = go.Figure(layout=_base_layout(tr("chart.alive.title"), height=380))
    fig.add_trace(
        go.Pie(
            labels=[b[0] for b in bands],
            values=[b[1] for b in bands],
            marker={"colors": [b[2] for b in bands]},
            hole=0.55,
            sort=False,
            domain={"x": [0.0, 0.36], "y": [0.05, 0.95]},
            textinfo="percent",
            hovertemplate="%{label}: %{value:,} (%{percent})<extra></extra>",
        )
    )
    centers = [(i + 0.5) / nb for i in range(nb)]
    fig.add_trace(
        go.Bar(
            x=centers,
            y=list(histogram),
            width=[0.92 / nb] * nb,
            # the churn-risk bands: lost < 0.1, high < 0.3, medium < 0.7, low
            marker_color=[
                "#6b7280"
                if c < 0.1
                else "#ea580c"
                if c < 0.3
                else "#ca8a04"
                if c < 0.7
                else "#16a34a"
                for c in centers
            ],
            showlegend=False,
            hovertemplate="P≈%{x:.3f}: %{y:,}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis=_axis(tr("axis.p_alive"), domain=[0.46, 1.0], range=[0, 1], tickformat=".1f"),
        # no y title: it would sit on the donut; the hover gives the counts
        yaxis=_axis("", rangemode="tozero"),
    )
    return fig


def value_chart(
    edges: Sequence[float], counts: Sequence[int], width: float, tr: Translator, currency: str
) -> go.Figure:
    fig = go.Figure(layout=_base_layout(tr("chart.value.title"), height=380))
    fig.add_trace(
        go.Bar(
            x=[e + width / 2 for e in edges],
            y=list(counts),
            width=[width * 0.92] * len(edges),
            marker_color=COLORS["indigo"],
            customdata=_bin_labels(edges, width, ",.0f"),
            text=_open_last_bar(edges, ",.0f"),
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{customdata}: %{y:,}<extra></extra>",
            showlegend=False,
        )
    )
    positive = sorted(c for c in counts if c > 0)
    skewed = bool(positive) and positive[-1] > 50 * positive[len(positive) // 2]
    fig.update_layout(
        xaxis=_axis(f"{tr('axis.value')} ({currency})", rangemode="tozero"),
        yaxis=_axis(tr("axis.customers"), type="log", dtick=1)
        if skewed
        else _axis(tr("axis.customers"), rangemode="tozero"),
    )
    return fig


def calendar_chart(
    week_starts: Sequence[str],
    weekday_names: Sequence[str],
    z: Sequence[Sequence[float | None]],
    dates: Sequence[Sequence[str]],
    tr: Translator,
) -> go.Figure:
    """A calendar heatmap: rows are weekdays, columns weeks; a cell is the expected number
    of customers whose median next order falls on that day."""
    fig = go.Figure(layout=_base_layout(tr("chart.calendar.title"), height=320))
    fig.add_trace(
        go.Heatmap(
            x=list(week_starts),
            y=list(weekday_names),
            z=[list(r) for r in z],
            customdata=[list(r) for r in dates],
            colorscale=[[0, "#fff7ed"], [0.3, "#fdba74"], [1, "#9a3412"]],
            xgap=2,
            ygap=2,
            hovertemplate="%{customdata}: %{z:,}<extra></extra>",
            colorbar={"title": {"text": tr("axis.customers")}, "thickness": 12},
            hoverongaps=False,
        )
    )
    fig.update_layout(
        xaxis=_axis(tr("axis.week"), type="category", showgrid=False),
        yaxis=_axis("", autorange="reversed", type="category", showgrid=False),
    )
    return fig


def tracking_chart(
    weeks: Sequence[str],
    actual: Sequence[float],
    predicted: Sequence[float],
    calibration_end_index: int,
    tr: Translator,
) -> go.Figure:
    fig = go.Figure(layout=_base_layout(tr("chart.tracking.title"), height=380))
    fig.add_trace(
        go.Scatter(
            x=list(weeks),
            y=list(actual),
            name=tr("series.actual"),
            mode="lines",
            line={"color": COLORS["teal"], "width": 2.2},
            hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(weeks),
            y=list(predicted),
            name=tr("series.predicted"),
            mode="lines",
            line={"color": COLORS["orange"], "width": 2.2, "dash": "dash"},
            hovertemplate="%{x}: %{y:,.1f}<extra></extra>",
        )
    )
    if 0 <= calibration_end_index < len(weeks):
        fig.add_shape(
            type="line",
            xref="x",
            yref="paper",
            x0=calibration_end_index - 0.5,
            x1=calibration_end_index - 0.5,
            y0=0,
            y1=1,
            line={"color": COLORS["slate"], "dash": "dot", "width": 1.5},
        )
        fig.add_annotation(
            x=calibration_end_index - 0.5,
            y=1.0,
            yref="paper",
            text=tr("series.calibration_end"),
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"color": COLORS["slate"], "size": 11},
        )
    fig.update_layout(
        xaxis=_axis(tr("axis.week"), type="category", nticks=8, tickangle=0),
        yaxis=_axis(tr("axis.repeat_purchases"), rangemode="tozero"),
        hovermode="x unified",
    )
    return fig


def uplift_chart(
    labels: Sequence[str],
    diffs: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    hover: Sequence[str],
    tr: Translator,
) -> go.Figure:
    """Incremental repurchase (treatment − holdout) per journey: a point and its 95%
    interval, with the zero line; green where the whole interval is above zero, red where
    it is below, grey where it includes zero (not shown to work or fail yet)."""
    colors = [
        COLORS["green"] if lo > 0 else COLORS["rose"] if hi < 0 else COLORS["slate"]
        for lo, hi in zip(lows, highs, strict=True)
    ]
    height = max(300, 130 + 46 * len(labels))
    fig = go.Figure(layout=_base_layout(tr("chart.uplift.title"), height=height))
    fig.add_trace(
        go.Scatter(
            x=list(diffs),
            y=list(labels),
            mode="markers",
            name=tr("series.uplift"),
            marker={"size": 11, "color": colors, "symbol": "diamond"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [h - d for d, h in zip(diffs, highs, strict=True)],
                "arrayminus": [d - lo for d, lo in zip(diffs, lows, strict=True)],
                "color": COLORS["slate"],
                "thickness": 2,
                "width": 6,
            },
            customdata=list(hover),
            hovertemplate="%{y}: %{x:+.1%}<br>%{customdata}<extra></extra>",
        )
    )
    fig.add_shape(
        type="line",
        xref="x",
        yref="paper",
        x0=0,
        x1=0,
        y0=0,
        y1=1,
        line={"color": COLORS["grey"], "dash": "dot", "width": 1.5},
    )
    span = max([abs(v) for v in (*lows, *highs)] or [0.1])
    fig.update_layout(
        xaxis=_axis(tr("axis.uplift"), tickformat="+.0%", range=[-span * 1.15, span * 1.15]),
        yaxis=_axis("", type="category", autorange="reversed"),
        showlegend=False,
        margin={"l": 56, "r": 24, "t": 56, "b": 56},
    )
    return fig
