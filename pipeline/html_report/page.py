"""The report as one self-contained HTML file: nothing is fetched when it opens.

Charts are compiled from Vega-Lite to Vega here (vl-convert), so a broken spec fails when the
report is built, not when someone opens it. The page inlines vl-convert's copy of Vega and
vega-embed (about 0.9 MB; vega-embed brings the hover tooltips) with the data. A
Content-Security-Policy forbids every request the page could make, so a chart that tried to load
anything would fail loudly in the tests instead of phoning out from a mailed file. Text is escaped
by Jinja2's autoescaping: comments are customers' words and must never become markup.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import vl_convert

from pipeline import __version__
from pipeline.html_report import charts as chart_specs
from pipeline.html_report.data import ReportData
from pipeline.schema import table_specs

TEMPLATE = "report.html.j2"
# the tables the numbers come from, listed in the page's methods section
SOURCE_TABLES = ("nps_daily", "drivers", "driver_examples", "response_topics", "theme_windows", "themes",
                 "detractor_terms", "coverage", "quarantine", "runs", "sentences")  # fmt: skip


@functools.cache
def vega_runtime() -> str:
    """Vega and vega-embed as one script, from the copy vl-convert carries (no network)."""
    bundle = str(vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;"))
    return bundle.replace("</script", "<\\/script")


def compiled_charts(data: ReportData) -> dict[str, Any]:
    """Chart name -> Vega spec, ready for the runtime."""
    return {
        name: vl_convert.vegalite_to_vega(chart.to_dict(), vl_version="6.4")
        for name, chart in chart_specs.report_charts(data).items()
    }


def render_report(data: ReportData, store_location: str) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.html_report", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(signed=_signed, percent=_percent, number=_number)
    labels_en = {d["topic_id"]: d["label_en"] for d in data.drivers}
    return environment.get_template(TEMPLATE).render(
        data=data,
        h=data.headline,
        q=data.quality,
        labels_en=labels_en,
        badges=chart_specs.badges,
        specs_json=_script_json(compiled_charts(data)),
        vega_runtime=vega_runtime(),
        tables={name: table_specs()[name] for name in SOURCE_TABLES},
        store_location=store_location,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )


def write_report(data: ReportData, store_location: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(data, store_location), encoding="utf-8")
    return out


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<' can close it early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _signed(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


def _percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"
