"""The HTML report: one self-contained page per window (`voc report`), built only from the result
tables, so it works on a BI team's PostgreSQL as well as on the local DuckDB file.

    data.py    the numbers, read from the result tables (no chart or HTML code)
    charts.py  Vega-Lite chart specs built with Altair, one per section
    page.py    the page: Jinja2 template, the Vega runtime inlined, charts compiled to Vega
    images.py  each chart as PNG or SVG for slides, with a Japanese font
    build.py   the one entry point `voc report` and the nightly flow share
"""

from pipeline.html_report.build import ReportFormat, build_report
from pipeline.html_report.data import ReportData, gather_report

__all__ = ["ReportData", "ReportFormat", "build_report", "gather_report"]
