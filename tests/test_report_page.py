"""The HTML report and its chart images: numbers from the result tables, escaping, the `voc report`
command, Japanese glyphs in the PNGs, and the page in a real browser (headless Chromium)."""

from __future__ import annotations

import io
import os
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from PIL import Image, ImageChops

from pipeline.html_report import build_report, gather_report
from pipeline.html_report.data import headline, trend_rows
from pipeline.html_report.images import render_image
from pipeline.job import run_job
from pipeline.settings import Settings
from pipeline.store import DuckDBStore, Store
from pipeline.taxonomy import Taxonomy
from tests.browser import PageVisit, find_chromium, visit
from tests.conftest import SAMPLE_CSV, make_settings
from tests.fakes import CuePredictor
from tests.test_cli import voc

MAX_REPORT_BYTES = 3_000_000


@pytest.fixture(scope="module")
def sample(taxonomy: Taxonomy, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("report") / "voc.duckdb")
    run_job(SAMPLE_CSV, settings, CuePredictor(taxonomy), taxonomy)
    return settings


@pytest.fixture(scope="module")
def page(sample: Settings) -> Path:
    with DuckDBStore(sample.store.duckdb_path) as store:
        _, [path] = build_report(store, sample, 28)
    return path


def window_from_nps_daily(db: Path, days: int = 28) -> tuple[int, int, int, int]:
    """Responses, promoters, passives, detractors of the latest ``days`` days, straight from SQL."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            "SELECT sum(responses), sum(promoters), sum(passives), sum(detractors) FROM nps_daily "
            "WHERE segment_name = 'all' AND response_date > (SELECT max(response_date) FROM nps_daily) - ?",
            [days],
        ).fetchone()
    finally:
        con.close()
    assert found is not None
    return found


def test_the_headline_is_the_windows_counts_from_nps_daily(sample: Settings) -> None:
    n, promoters, passives, detractors = window_from_nps_daily(sample.store.duckdb_path)
    with DuckDBStore(sample.store.duckdb_path) as store:
        data = gather_report(store, 28)
    current = data.headline.current
    assert (current.n, current.promoters, current.passives, current.detractors) == (n, promoters, passives,
                                                                                    detractors)  # fmt: skip
    assert current.nps == pytest.approx(100 * (promoters - detractors) / n)
    assert (data.headline.end - data.headline.start).days == 27


def test_data_quality_accounts_for_every_record_of_the_window(sample: Settings) -> None:
    with DuckDBStore(sample.store.duckdb_path) as store:
        data = gather_report(store, 28)
        window = [data.headline.start, data.headline.end]
        [(dated,)] = store.query(
            "SELECT count(*) FROM quarantine WHERE response_date BETWEEN ? AND ?", window
        )
        [(undated,)] = store.query("SELECT count(*) FROM quarantine WHERE response_date IS NULL")
    quality = data.quality
    assert (sum(quality.quarantined.values()), quality.quarantined_undated) == (dated, undated)
    assert undated > 0 and quality.rows_read == quality.published + dated + undated
    assert quality.published == data.headline.current.n == sum(r["responses"] for r in quality.runs)
    assert all(len(values) == 1 for values in quality.versions.values())  # one run wrote the window
    assert 0 < (quality.sentence_uncovered_share or 0) < 1


def _daily(store: Store, day: date, promoters: int, passives: int, detractors: int) -> None:
    row = {"response_date": day, "segment_name": "all", "segment_value": "all",
           "responses": promoters + passives + detractors, "promoters": promoters, "passives": passives,
           "detractors": detractors, "nps": 0.0, "nps_se": 0.0, "nps_ci_low": 0.0, "nps_ci_high": 0.0,
           "ci_method": "adjusted_wald"}  # fmt: skip
    store.insert("nps_daily", [row | {"run_id": "run-test", "config_hash": "test"}])


@pytest.mark.parametrize(
    ("previous", "current", "real"),
    [
        ((50, 30, 20), (20, 30, 50), True),
        ((50, 30, 20), (48, 30, 22), False),
        ((0, 0, 0), (20, 30, 50), None),
    ],
)
def test_a_change_is_more_than_noise_only_when_its_interval_excludes_zero(
    tmp_path: Path, previous: tuple[int, int, int], current: tuple[int, int, int], real: bool | None
) -> None:
    end = date(2026, 7, 28)
    with DuckDBStore(tmp_path / "voc.duckdb") as store:
        _daily(store, end - timedelta(days=40), *previous)  # in the 28 days before the window
        _daily(store, end - timedelta(days=3), *current)
        found = headline(store, end - timedelta(days=27), end, 0.95)
    if real is None:
        assert found.change is None and not found.change_is_real
        return
    assert found.change == pytest.approx(found.current.nps - found.previous.nps)  # type: ignore[operator]
    assert found.change is not None and found.change_ci is not None
    assert found.change_ci[0] < found.change < found.change_ci[1]
    assert found.change_is_real is real


def test_weekly_trend_sums_the_days_and_starts_on_a_monday(sample: Settings) -> None:
    with DuckDBStore(sample.store.duckdb_path) as store:
        end = gather_report(store, 28).headline.end
        weeks = trend_rows(store, end, 28, "week", None, 0.95)
        covered = (end - weeks[0]["period_start"]).days + 1
        days = trend_rows(store, end, covered, "day", None, 0.95)
    assert len(weeks) == 13 and all(w["period_start"].weekday() == 0 for w in weeks)
    assert sum(w["responses"] for w in weeks) == sum(d["responses"] for d in days)
    assert all(w["ci_low"] <= w["nps"] <= w["ci_high"] for w in weeks)


def test_the_trend_has_one_line_per_segment_value(sample: Settings) -> None:
    with DuckDBStore(sample.store.duckdb_path) as store:
        data = gather_report(store, 28, segment="channel", period="month")
    values = {r["segment_value"] for r in data.trend}
    assert {"Web", "アプリ", "店舗"} <= values and "all" not in values
    assert all(r["period_start"].day == 1 for r in data.trend)


def test_customer_text_cannot_become_markup(sample: Settings, tmp_path: Path) -> None:
    db = tmp_path / "hostile.duckdb"
    shutil.copy(sample.store.duckdb_path, db)
    hostile = '</script><script>alert("x")</script><img src=http://example.com/x>'
    con = duckdb.connect(str(db))
    con.execute("UPDATE driver_examples SET comment_masked = ?", [hostile])
    con.execute("UPDATE themes SET label = ?", [hostile])
    con.close()
    settings = make_settings(db)
    with DuckDBStore(db) as store:
        _, [path] = build_report(store, settings, 28, out=tmp_path / "hostile.html")
    text = path.read_text(encoding="utf-8")
    assert hostile not in text and "http://example.com" in text  # there, but only as text
    assert "&lt;/script&gt;&lt;script&gt;alert" in text
    assert text.count("<script") == 3  # the chart data, the Vega runtime, the page's own


def test_without_themes_the_page_shows_the_uncovered_detractor_terms(
    sample: Settings, tmp_path: Path
) -> None:
    db = tmp_path / "no-themes.duckdb"
    shutil.copy(sample.store.duckdb_path, db)
    with DuckDBStore(db) as store:
        store.delete_where("theme_windows", "TRUE", [])
        end = gather_report(store, 28).headline.end
        store.delete_where("detractor_terms", "window_end = ?", [end])
        terms = [("待たされる", None), ("配送", "delivery_speed"), ("説明不足", None)]
        store.insert("detractor_terms", [_term_row(end, rank, term, topic)
                                         for rank, (term, topic) in enumerate(terms, start=1)])  # fmt: skip
        data = gather_report(store, 28)
    assert data.themes == []
    assert [t["term"] for t in data.uncovered_terms] == ["待たされる", "説明不足"]


def _term_row(end: date, rank: int, term: str, topic: str | None) -> dict[str, Any]:
    return {"window_end": end, "window_days": 28, "window_start": end - timedelta(days=27),
            "segment_name": "all", "segment_value": "all", "term_kind": "lemma", "term": term, "rank": rank,
            "responses_using": 10, "detractor_responses": 8, "promoter_responses": 1, "log_odds": 1.0,
            "z": 3.0, "covered_by_topic_id": topic, "coverage": "seed_term" if topic else "none",
            "co_mention_share": None, "run_id": "run-test", "config_hash": "test", "model_version": "m",
            "taxonomy_version": "t", "dictionary_version": "d"}  # fmt: skip


@pytest.mark.slow
def test_voc_report_writes_the_page_and_the_chart_images(sample: Settings, tmp_path: Path) -> None:
    db = sample.store.duckdb_path
    page = voc("report", "--db", db, "--out", tmp_path / "r.html")
    assert page.returncode == 0, page.stderr
    assert "NPS " in page.stdout and f"Report written to {tmp_path / 'r.html'}" in page.stdout
    assert 0 < (tmp_path / "r.html").stat().st_size < MAX_REPORT_BYTES
    images = voc("report", "--db", db, "--format", "png", "--segment", "plan", "--out", tmp_path / "png")
    assert images.returncode == 0, images.stderr
    written = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert written == ["drivers.png", "sentiment.png", "themes.png", "trend.png"]
    assert all((tmp_path / "png" / n).read_bytes().startswith(b"\x89PNG") for n in written)
    wrong = voc("report", "--db", db, "--window", "5")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: no 5-day window")


def _text_png(text: str) -> Image.Image:
    spec: dict[str, Any] = {
        "data": {"values": [{"text": text}]},
        "mark": {"type": "text", "fontSize": 40},
        "encoding": {"text": {"field": "text"}},
        "width": 260,
        "height": 60,
    }
    return Image.open(io.BytesIO(render_image(spec, "png"))).convert("L")


def _differing_pixels(a: Image.Image, b: Image.Image) -> int:
    return int((np.asarray(ImageChops.difference(a, b)) > 64).sum())


def test_png_charts_draw_japanese_glyphs_not_tofu() -> None:
    """A missing glyph is drawn as the same empty box whatever the character, so two different
    kanji strings render identically as tofu, and like characters no font has."""
    customer, delivery = _text_png("顧客満足度"), _text_png("配送遅延対")
    tofu = _text_png("\ue000\ue001\ue002\ue003\ue004")  # private-use: no font draws these
    assert _differing_pixels(customer, delivery) > 500
    assert _differing_pixels(customer, tofu) > 500
    assert int((np.asarray(customer) < 128).sum()) > 500


# --- in a real browser ---------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("VOC_REQUIRE_BROWSER"),
    reason="no Chromium (bash .ci/run installs it and sets VOC_REQUIRE_BROWSER)",
)


@pytest.fixture(scope="module", params=[1280, 390], ids=["desktop", "phone"])
def seen(request: pytest.FixtureRequest, page: Path) -> PageVisit:
    return visit(page, request.param)


@pytest.mark.slow
@needs_browser
def test_the_page_loads_with_no_errors_and_no_requests_but_itself(seen: PageVisit, page: Path) -> None:
    assert seen.console_errors == []
    assert seen.requests == [page.resolve().as_uri()]


@pytest.mark.slow
@needs_browser
def test_every_chart_draws_a_mark_per_row(seen: PageVisit, sample: Settings) -> None:
    with DuckDBStore(sample.store.duckdb_path) as store:
        data = gather_report(store, 28, default_segment="channel")
    assert set(seen.marks) == {"chart-trend", "chart-drivers", "chart-sentiment", "chart-themes"}
    assert seen.marks["chart-drivers"]["mark-symbol"] == len(data.drivers)  # one point per topic
    assert seen.marks["chart-drivers"]["mark-rule"] == len(data.drivers) + 1  # intervals and zero
    assert seen.marks["chart-sentiment"]["mark-rect"] == len(data.sentiment)  # one cell per row
    assert seen.marks["chart-trend"]["mark-symbol"] == len(data.trend)
    assert seen.marks["chart-themes"]["mark-rect"] == len(data.themes)


@pytest.mark.slow
@needs_browser
def test_the_headline_shows_the_numbers_of_nps_daily(seen: PageVisit, sample: Settings) -> None:
    n, promoters, passives, detractors = window_from_nps_daily(sample.store.duckdb_path)
    assert seen.headline["nps"] == f"{100 * (promoters - detractors) / n:+.1f}"
    assert seen.headline["responses"] == f"{n:,}"
    assert (seen.headline["promoters"], seen.headline["passives"], seen.headline["detractors"]) == (
        str(promoters),
        str(passives),
        str(detractors),
    )


@pytest.mark.slow
@needs_browser
def test_the_screenshot_is_not_blank_and_nothing_overflows(seen: PageVisit) -> None:
    assert seen.scroll_width <= seen.viewport_width
    image = Image.open(io.BytesIO(seen.screenshot)).convert("RGB")
    assert image.width == seen.viewport_width
    colours = image.getcolors(maxcolors=1 << 20) or []
    background = max(colours)[0] / (image.width * image.height)
    assert len(colours) > 50 and background < 0.9  # text, charts and cards, not an empty page
