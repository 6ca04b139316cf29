"""The report's charts as image files for slides: PNG (at twice the size, for sharp projection) or
SVG, rendered by vl-convert without a browser.

vl-convert draws text with the fonts it is told about, and most servers have no Japanese font,
which turns every label into empty boxes. The project installs IPAexGothic (IPA Font License) with
the `matplotlib-fontja` package, and the charts name it.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Literal

import vl_convert

from pipeline.errors import VocError
from pipeline.html_report.charts import report_charts
from pipeline.html_report.data import ReportData

ImageFormat = Literal["png", "svg"]
JAPANESE_FONT = "IPAexGothic"
FONT_PACKAGE = "matplotlib_fontja"
IMAGE_WIDTH = 640  # pixels, for charts that take their container's width on the page
VEGA_LITE = "6.4"


@functools.cache
def register_japanese_font() -> Path:
    """Tell vl-convert where IPAexGothic is (the package is located, not imported: importing it
    would load matplotlib)."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VocError(f"the Japanese chart font is missing: pip install {FONT_PACKAGE.replace('_', '-')}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "fonts"
    vl_convert.register_font_directory(str(folder))
    return folder


def image_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A page chart's spec for an image: the Japanese font, and a fixed width instead of the page's."""
    spec = dict(spec, config=dict(spec.get("config", {}), font=JAPANESE_FONT))
    if spec.get("width") == "container":
        spec["width"] = IMAGE_WIDTH
    return spec


def render_image(spec: dict[str, Any], image_format: ImageFormat) -> bytes:
    register_japanese_font()
    options: dict[str, Any] = {"vl_version": VEGA_LITE, "allowed_base_urls": []}
    if image_format == "png":
        return bytes(vl_convert.vegalite_to_png(image_spec(spec), scale=2, **options))
    return str(vl_convert.vegalite_to_svg(image_spec(spec), **options)).encode("utf-8")


def write_chart_images(data: ReportData, folder: Path, image_format: ImageFormat) -> list[Path]:
    """One file per chart, named after its section (trend.png, drivers.png, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in report_charts(data).items():
        path = folder / f"{name}.{image_format}"
        path.write_bytes(render_image(chart.to_dict(), image_format))
        written.append(path)
    return written
