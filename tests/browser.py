"""Opening a report in a real browser: Debian's Chromium, driven headless by Playwright.

Playwright is used for its events (every console message and every request the page makes) and
its screenshots; it runs the system Chromium (`/usr/bin/chromium`, which `.ci/run` installs), so
no browser is downloaded. Also a command, for the README's screenshot:

    .venv/bin/python -m tests.browser output/reports/nps-28d-2026-10-31.html docs/report.png 1280 1900
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
RENDER_TIMEOUT_MS = 30_000


def find_chromium() -> str | None:
    """$VOC_CHROMIUM, else the first Chromium on the PATH."""
    configured = os.environ.get("VOC_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@dataclass
class PageVisit:
    """What one load of the page did and showed."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)  # chart -> mark type -> items
    headline: dict[str, str] = field(default_factory=dict)
    scroll_width: int = 0
    viewport_width: int = 0
    screenshot: bytes = b""


# per chart, the items each Vega mark group drew (vega-embed's SVG: <g class="mark-rect role-mark">)
MARKS_SCRIPT = """
() => Object.fromEntries(Array.from(document.querySelectorAll('.chart')).map(chart => {
  const counts = {};
  chart.querySelectorAll('svg g.role-mark').forEach(group => {
    const type = Array.from(group.classList).find(c => c.startsWith('mark-')) || 'mark-?';
    counts[type] = (counts[type] || 0) + group.children.length;
  });
  return [chart.id, counts];
}))
"""
HEADLINE_SCRIPT = """
() => Object.fromEntries(Array.from(document.querySelectorAll('[data-test]'))
                           .map(e => [e.dataset.test, e.textContent.trim()]))
"""
ALL_CHARTS_DRAWN = (
    "document.querySelectorAll('.chart[data-rendered]').length === document.querySelectorAll('.chart').length"
)


def visit(path: Path, width: int, height: int = 900, full_page: bool = True) -> PageVisit:
    """Load ``path`` at ``width`` CSS pixels, wait for every chart, and record what happened."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found: apt-get install chromium, or set VOC_CHROMIUM")
    result = PageVisit()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: _console(result, m))
            page.on("pageerror", lambda e: result.console_errors.append(f"page error: {e}"))
            page.on("request", lambda r: result.requests.append(r.url))
            page.goto(path.resolve().as_uri())
            page.wait_for_function(ALL_CHARTS_DRAWN, timeout=RENDER_TIMEOUT_MS)
            result.marks = page.evaluate(MARKS_SCRIPT)
            result.headline = page.evaluate(HEADLINE_SCRIPT)
            result.scroll_width = page.evaluate("document.documentElement.scrollWidth")
            result.viewport_width = page.evaluate("window.innerWidth")
            result.screenshot = page.screenshot(full_page=full_page)
        finally:
            browser.close()
    return result


def _console(result: PageVisit, message: Any) -> None:
    if message.type in ("error", "warning"):
        result.console_errors.append(f"{message.type}: {message.text}")


def main(argv: list[str]) -> int:
    page, out = Path(argv[0]), Path(argv[1])
    width = int(argv[2]) if len(argv) > 2 else 1280
    height = int(argv[3]) if len(argv) > 3 else None
    shot = visit(page, width, height or 900, full_page=height is None).screenshot
    out.write_bytes(shot)
    print(f"{out} ({width} px wide)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
