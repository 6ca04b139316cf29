"""The report's charts as Vega-Lite specs, built with Altair.

Colours come from the Okabe–Ito palette and the blue–orange diverging scheme, both readable with
the common colour-vision deficiencies; no chart tells two things apart by red against green.
Every mark has a tooltip with its numbers, and the page puts the same numbers in a table beside
each chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import altair as alt

from pipeline.html_report.data import Period, ReportData

# Okabe & Ito (2008), "Color Universal Design": distinguishable with any common colour deficiency
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
PULLS_DOWN, LIFTS = "#D55E00", "#0072B2"
PAGE_FONT = "'Hiragino Sans', 'Hiragino Kaku Gothic ProN', 'Noto Sans CJK JP', 'Noto Sans JP', 'Yu Gothic', Meiryo, sans-serif"  # noqa: E501
PERIOD_LABELS = {"day": "日", "week": "週（月曜始まり）", "month": "月"}
ROW_HEIGHT = 22


def report_charts(data: ReportData) -> dict[str, alt.TopLevelMixin]:
    """Chart name -> chart, for the sections that have data."""
    charts: dict[str, alt.TopLevelMixin] = {}
    if data.trend:
        charts["trend"] = trend_chart(data.trend, data.period, data.segment)
    if data.drivers:
        charts["drivers"] = forest_chart(data.drivers)
    if data.sentiment:
        charts["sentiment"] = sentiment_heatmap(data.sentiment, data.sentiment_segment)
    if data.themes:
        charts["themes"] = themes_chart(data.themes)
    elif data.uncovered_terms:
        charts["themes"] = terms_chart(data.uncovered_terms)
    return {
        name: chart.configure(font=PAGE_FONT).configure_view(strokeWidth=0) for name, chart in charts.items()
    }


def _values(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> alt.Data:
    """Only the columns a chart uses, dates as ISO text: the page inlines every value."""
    return alt.Data(
        values=[{c: v.isoformat() if isinstance(v, date) else v for c, v in r.items() if c in columns}
                for r in rows]
    )  # fmt: skip


def tooltips(*fields: tuple[str, str] | tuple[str, str, str]) -> list[alt.Tooltip]:
    """Tooltips from (field:type, Japanese title[, number format]) triples."""
    return [alt.Tooltip(f[0], title=f[1], format=f[2] if len(f) > 2 else alt.Undefined) for f in fields]


def trend_chart(rows: list[dict[str, Any]], period: Period, segment: str | None) -> alt.TopLevelMixin:
    """NPS per period as a line, its interval as a band; one colour per segment value."""
    data = _values(rows, ("period_start", "segment_value", "responses", "nps", "ci_low", "ci_high"))
    axis = alt.Axis(format="%Y/%m" if period == "month" else "%m/%d", tickCount=period, grid=False)
    x = alt.X("period_start:T", title=PERIOD_LABELS[period], axis=axis)
    colour: Any = (
        alt.Color("segment_value:N", title=segment, scale=alt.Scale(range=OKABE_ITO))
        if segment
        else alt.value(OKABE_ITO[0])
    )
    tooltip = tooltips(
        ("period_start:T", "期間開始"), ("segment_value:N", "区分"), ("responses:Q", "回答数"),
        ("nps:Q", "NPS", "+.1f"), ("ci_low:Q", "区間下限", "+.1f"), ("ci_high:Q", "区間上限", "+.1f"),
    )  # fmt: skip
    base = alt.Chart(data).encode(x=x, color=colour)
    band = base.mark_area(opacity=0.1 if segment else 0.18).encode(
        y=alt.Y("ci_low:Q", title="NPS"), y2="ci_high:Q"
    )
    line = base.mark_line(point=True).encode(y="nps:Q", tooltip=tooltip)
    return alt.layer(band, _zero_rule("y"), line).properties(width="container", height=260)


def _zero_rule(channel: str) -> alt.Chart:
    rule = alt.Chart(alt.Data(values=[{"zero": 0}])).mark_rule(color="#888", strokeDash=[3, 3])
    return rule.encode(**{channel: "zero:Q"})


def forest_chart(rows: list[dict[str, Any]]) -> alt.HConcatChart:
    """Each topic's impact on NPS with its interval, then its adjusted ΔNPS and its badges."""
    values = [
        dict(r, topic=topic_label(r), badges=badges(r), direction="下げる" if r["impact"] < 0 else "上げる",
             adjusted=_signed(r["adjusted_impact"]))
        for r in rows
    ]  # fmt: skip
    columns = ("topic", "mentions", "impact", "impact_ci_low", "impact_ci_high", "adjusted", "badges",
               "direction", "low_confidence", "nps_mentioning")  # fmt: skip
    base = alt.Chart(_values(values, columns)).encode(
        y=alt.Y("topic:N", sort=[v["topic"] for v in values], title=None, axis=alt.Axis(labelLimit=260))
    )
    tooltip = tooltips(
        ("topic:N", "トピック"), ("mentions:Q", "言及数"), ("nps_mentioning:Q", "言及者のNPS", "+.1f"),
        ("impact:Q", "影響", "+.1f"), ("impact_ci_low:Q", "区間下限", "+.1f"),
        ("impact_ci_high:Q", "区間上限", "+.1f"), ("adjusted:N", "調整後ΔNPS"), ("badges:N", "フラグ"),
    )  # fmt: skip
    scale = alt.Scale(domain=["下げる", "上げる"], range=[PULLS_DOWN, LIFTS])
    colour = alt.Color("direction:N", title="NPSを", scale=scale)
    rule = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("impact_ci_low:Q", title="NPSへの影響（ポイント）"), x2="impact_ci_high:Q", color=colour
    )
    point = base.mark_point(filled=True, size=70).encode(
        x="impact:Q",
        color=colour,
        tooltip=tooltip,
        opacity=alt.condition("datum.low_confidence", alt.value(0.35), alt.value(1.0)),
    )
    zero = alt.Chart(alt.Data(values=[{"zero": 0}])).mark_rule(color="#888").encode(x="zero:Q")
    forest = alt.layer(rule, point, zero).properties(width=300, height=ROW_HEIGHT * len(values))
    adjusted = _text_column(base, "adjusted", "調整後ΔNPS", 70)
    flags = _text_column(base, "badges", "フラグ", 120)
    return alt.hconcat(forest, adjusted, flags, spacing=4).resolve_scale(y="shared")


def topic_label(row: dict[str, Any]) -> str:
    return f"{row['label_ja']} ({row['label_en']})"


def _text_column(base: alt.Chart, column: str, title: str, width: int) -> alt.Chart:
    return (
        base.mark_text(align="left", baseline="middle", dx=4)
        .encode(text=f"{column}:N", x=alt.value(0), y=alt.Y("topic:N", sort=None, axis=None))
        .properties(width=width, title=alt.TitleParams(title, fontSize=11, anchor="start"))
    )


def badges(row: dict[str, Any]) -> str:
    names = [name for key, name in (("robust", "頑健"), ("rising", "増加"), ("emerging", "新興")) if row[key]]
    return " ".join(names + (["少数"] if row["low_confidence"] else []))


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def sentiment_heatmap(rows: list[dict[str, Any]], segment: str | None) -> alt.TopLevelMixin:
    """Net sentiment (share positive − share negative) of each topic's mentions, per segment value."""
    values = [
        dict(
            r,
            topic=topic_label(r),
            segment_label="全体" if r["segment_value"] == "all" else r["segment_value"],
        )
        for r in rows
    ]
    data = _values(values, ("topic", "segment_label", "mentions", "negative", "positive", "net_sentiment"))
    segments = ["全体", *sorted({v["segment_label"] for v in values} - {"全体"})]
    # topics in the order of their mentions by everyone, the most talked-about first
    overall = sorted(
        (v for v in values if v["segment_value"] == "all"), key=lambda v: (-v["mentions"], v["topic"])
    )
    base = alt.Chart(data).encode(
        x=alt.X("segment_label:N", sort=segments, title=segment or None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("topic:N", title=None, sort=[v["topic"] for v in overall], axis=alt.Axis(labelLimit=260)),
    )
    tooltip = tooltips(
        ("topic:N", "トピック"), ("segment_label:N", "区分"), ("mentions:Q", "言及数"),
        ("negative:Q", "ネガティブ"), ("positive:Q", "ポジティブ"), ("net_sentiment:Q", "ネット感情", "+.0%"),
    )  # fmt: skip
    scale = alt.Scale(scheme="blueorange", domain=[-1, 1], reverse=True)
    legend = alt.Legend(format="+.0%")
    cells = base.mark_rect().encode(
        color=alt.Color("net_sentiment:Q", title="ネット感情", scale=scale, legend=legend), tooltip=tooltip
    )
    counts = base.mark_text(fontSize=10).encode(
        text="mentions:Q",
        color=alt.condition("abs(datum.net_sentiment) > 0.6", alt.value("white"), alt.value("black")),
    )
    return alt.layer(cells, counts).properties(width=alt.Step(64), height=alt.Step(ROW_HEIGHT))


def themes_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """Mentions of each new or rising theme in the window."""
    values = [dict(r, flag="増加" if r["rising"] else "新規", share=r["prevalence"]) for r in rows]
    data = _values(values, ("theme_id", "label", "mentions", "share", "flag", "nps_mentioning"))
    tooltip = tooltips(
        ("theme_id:N", "テーマ"), ("label:N", "キーフレーズ"), ("mentions:Q", "言及数"),
        ("share:Q", "割合", ".1%"), ("nps_mentioning:Q", "言及者のNPS", "+.1f"),
    )  # fmt: skip
    colour = alt.Color("flag:N", title=None, scale=alt.Scale(domain=["新規", "増加"], range=OKABE_ITO[1:3]))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("mentions:Q", title="言及した回答数"),
            color=colour,
            tooltip=tooltip,
        )
        .properties(width=320, height=alt.Step(ROW_HEIGHT))
    )


def terms_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """Detractor terms no topic covers, by how strongly detractors lean to them."""
    data = _values(rows, ("term", "detractor_responses", "promoter_responses", "z"))
    tooltip = tooltips(
        ("term:N", "語"), ("detractor_responses:Q", "批判者"), ("promoter_responses:Q", "推奨者"),
        ("z:Q", "z", ".1f"),
    )  # fmt: skip
    return (
        alt.Chart(data)
        .mark_bar(color=PULLS_DOWN)
        .encode(
            y=alt.Y("term:N", sort="-x", title=None),
            x=alt.X("z:Q", title="批判者への偏り（z）"),
            tooltip=tooltip,
        )
        .properties(width=320, height=alt.Step(ROW_HEIGHT))
    )
