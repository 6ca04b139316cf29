"""Each export format gives exactly the tables its UTF-8 CSV original gives.

The bundled sample is converted to UTF-16 (Excel's 「Unicode テキスト」 and big-endian), old-Mac CR
line ends, mixed line ends and an .xlsx workbook, run through the whole job with the stand-in model,
and every documented table is compared with the UTF-8 original's, row for row (run ids and the
file's hash aside). Theme discovery is off and the drivers have one window: both are computed from
the published rows the comparison covers, and on by default they make each run take a minute.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from openpyxl import Workbook

from pipeline.contracts import QuarantinedRow, Response, SourceRecord
from pipeline.errors import InputError, ReasonCode
from pipeline.ingest import describe_source, read_records
from pipeline.job import run_job
from pipeline.progress import ReadProgress
from pipeline.schema import table_specs
from pipeline.settings import DriverSettings, Settings, SourceSettings, ThemeSettings
from pipeline.taxonomy import Taxonomy
from pipeline.validate import RowValidator
from tests.conftest import HEADER, RUN_STATS, SAMPLE_CSV, csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor

LINEAGE = {name: {"run_id", "source_sha256"} | RUN_STATS for name in table_specs()}
# the quarantined payload, where a format quotes what it read in its own way, is compared apart
PAYLOAD_APART = {**LINEAGE, "quarantine": LINEAGE["quarantine"] | {"raw_payload"}}
Snapshot = dict[str, list[tuple[Any, ...]]]


def quick_settings(db: Path) -> Settings:
    settings = make_settings(db, drivers=DriverSettings(windows=[7]))
    return settings.model_copy(update={"themes": ThemeSettings(enabled=False)})


def run(path: Path, taxonomy: Taxonomy) -> Path:
    """The job over ``path``; its store, beside it."""
    settings = quick_settings(path.with_suffix(".duckdb"))
    summary = run_job(path, settings, CuePredictor(taxonomy), taxonomy, source_name="sample")
    assert summary.rows_in == summary.rows_published + summary.rows_quarantined
    return settings.store.duckdb_path


def by_row(db: Path, table: str, column: str) -> dict[int, Any]:
    """``column`` of ``table`` by source_row."""
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute(f"SELECT source_row, {column} FROM {table}").fetchall())


def sample_records() -> list[SourceRecord]:
    settings = quick_settings(Path("unused.duckdb"))
    return list(read_records(describe_source(SAMPLE_CSV, settings.source), settings.source))


@pytest.fixture(scope="module")
def original(taxonomy: Taxonomy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of the UTF-8 sample's run."""
    path = tmp_path_factory.mktemp("original") / "sample.csv"
    path.write_bytes(SAMPLE_CSV.read_bytes())
    return run(path, taxonomy)


def test_utf16_big_endian_copy(original: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    path = tmp_path / "be.csv"
    path.write_bytes(codecs.BOM_UTF16_BE + SAMPLE_CSV.read_text(encoding="utf-8").encode("utf-16-be"))
    assert describe_source(path, quick_settings(tmp_path / "x").source).encoding == "utf-16"
    assert table_snapshot(run(path, taxonomy), LINEAGE) == table_snapshot(original, LINEAGE)


def test_old_mac_cr_line_ends(original: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    """Line numbers (source_row) count CR-ended lines as an editor does: the tables match."""
    path = tmp_path / "cr.csv"
    path.write_bytes(SAMPLE_CSV.read_bytes().replace(b"\n", b"\r"))
    assert table_snapshot(run(path, taxonomy), LINEAGE) == table_snapshot(original, LINEAGE)


def test_mixed_line_ends(original: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    lines = SAMPLE_CSV.read_text(encoding="utf-8").split("\n")
    ends = [("\r\n", "\r", "\n")[i % 3] for i in range(len(lines) - 1)]
    # CR then an empty line ended by LF would be one CRLF, one line fewer than the original
    ends = [e if e != "\r" or lines[i + 1] else "\r\n" for i, e in enumerate(ends)]
    path = tmp_path / "mixed.csv"
    text = "".join(line + end for line, end in zip(lines, ends, strict=False)) + lines[-1]
    path.write_bytes(text.encode())
    assert {"\r\n", "\r", "\n"} <= set(ends)
    assert table_snapshot(run(path, taxonomy), LINEAGE) == table_snapshot(original, LINEAGE)


def test_excel_unicode_text_export(original: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    """UTF-16 LE with a BOM, tabs and CRLF, as Excel's 「Unicode テキスト」 saves the sample. Each
    record starts on its original line. A malformed line is kept as it was, so its quarantined
    payload quotes the file's own delimiter: compared with delimiters and spaces made one space
    (masking turns a tab into a space)."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\r\n")
    line = 1
    writer.writerow(HEADER)
    for record in sample_records():
        text.write("\r\n" * (record.source_row - line - 1))  # blank lines between records
        if record.fields is None:
            text.write(record.raw.replace(",", "\t") + "\r\n")
        else:
            writer.writerow(record.fields.values())
        line = record.source_row + record.raw.count("\n")
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.getvalue().encode("utf-16-le"))
    assert describe_source(path, quick_settings(tmp_path / "x").source).encoding == "utf-16"
    found = run(path, taxonomy)
    assert table_snapshot(found, PAYLOAD_APART) == table_snapshot(original, PAYLOAD_APART)
    found_payloads, original_payloads = (by_row(db, "quarantine", "raw_payload") for db in (found, original))
    assert sum('"_raw"' in p for p in found_payloads.values()) == 2  # the two malformed lines
    assert {row: re.sub(r"[,\s]+", " ", p) for row, p in found_payloads.items()} == {
        row: re.sub(r"[,\s]+", " ", p) for row, p in original_payloads.items()
    }


# --- xlsx -----------------------------------------------------------------------------------

# source_row, and the quarantine's detail that quotes one (a duplicate id's first row), are sheet rows
NO_ROW = {name: skip | {"source_row"} for name, skip in PAYLOAD_APART.items()}
NO_ROW["quarantine"] |= {"detail"}
_SLASHED = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d(:\d\d)?")


def excel_cell(column: str, value: str) -> Any:
    """What Excel holds after a person types the CSV's text: whole scores are numbers, and valid
    timestamps without an offset are date-and-time cells; the rest (ISO text with an offset,
    2026/13/45, a full-width "１", 7.5, abc) stays text."""
    if column == "推奨度" and value.isascii() and value.isdigit():
        return int(value)
    if column == "回答日時" and _SLASHED.fullmatch(value):
        pattern = "%Y/%m/%d %H:%M:%S" if value.count(":") == 2 else "%Y/%m/%d %H:%M"
        with contextlib.suppress(ValueError):  # an impossible date stays text, as in Excel
            return datetime.strptime(value, pattern)
    return value


def write_workbook(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)


def test_xlsx_copy(taxonomy: Taxonomy, tmp_path: Path) -> None:
    """Without the sample's two malformed lines, which a spreadsheet cannot hold, the workbook and its
    CSV original give the same tables. Two columns differ by design and are checked apart:
    source_row (sheet rows, where the CSV counts the lines of multi-line comments) and the
    quarantined payload, which quotes typed cells (2026-09-10 12:00:00 for 2026/09/10 12:00)."""
    rows = [list(r.fields.values()) for r in sample_records() if r.fields is not None]
    csv_path, xlsx_path = tmp_path / "original.csv", tmp_path / "export.xlsx"
    csv_path.write_text(csv_text(rows), encoding="utf-8")
    cells = [[excel_cell(c, v) for c, v in zip(HEADER, r, strict=True)] for r in rows]
    assert (
        sum(isinstance(r[1], datetime) for r in cells) > 1000
        and sum(isinstance(r[2], int) for r in cells) > 1000
    )
    write_workbook(xlsx_path, cells)
    expected, found = run(csv_path, taxonomy), run(xlsx_path, taxonomy)
    found_tables = table_snapshot(found, NO_ROW)
    assert len(found_tables["responses"]) == 1200 and len(found_tables["quarantine"]) == 11
    assert found_tables == table_snapshot(expected, NO_ROW)

    # the same records on the same rows: the CSV's k-th record is on sheet row k + 1
    settings = quick_settings(tmp_path / "unused").source
    starts = [r.source_row for r in read_records(describe_source(csv_path, settings), settings)]
    sheet_row = {line: index + 2 for index, line in enumerate(starts)}

    def in_sheet_rows(table: str, column: str, value: Callable[[Any], Any]) -> dict[int, Any]:
        return {sheet_row[line]: value(v) for line, v in by_row(expected, table, column).items()}

    def as_found(table: str, column: str, value: Callable[[Any], Any]) -> dict[int, Any]:
        return {row: value(v) for row, v in by_row(found, table, column).items()}

    def same(value: Any) -> Any:
        return value

    def rows_quoted(detail: str) -> str:  # "response id already used on row 369"
        return re.sub(r"row (\d+)", lambda m: f"row {sheet_row[int(m[1])]}", detail)

    assert in_sheet_rows("responses", "response_id", same) == as_found("responses", "response_id", same)
    assert in_sheet_rows("quarantine", "detail", rows_quoted) == as_found("quarantine", "detail", same)
    assert in_sheet_rows("quarantine", "raw_payload", untyped) == as_found(
        "quarantine", "raw_payload", untyped
    )


def untyped(payload: str) -> dict[str, Any]:
    """A quarantined payload without the values that are typed cells in the workbook."""
    return {k: v for k, v in json.loads(payload).items() if k not in ("推奨度", "回答日時")}


# --- the details, record by record -----------------------------------------------------------

GOOD = ["R1", "2026/07/01 09:15:22", "10", "アプリ", "ライト", "20代", "スタッフが親切でした"]


def outcomes(path: Path, settings: Settings) -> list[Response | QuarantinedRow]:
    source = describe_source(path, settings.source)
    validator = RowValidator(settings.source)
    return [validator.validate(r) for r in read_records(source, settings.source)]


def with_source(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"source": settings.source.model_copy(update=changes)})


def test_xlsx_cells_keep_their_types(settings: Settings, tmp_path: Path) -> None:
    """A score 10.0 is 10, a numeric id or comment is its digits; date-and-time and date-only cells
    are read in source.timezone, exactly as the same text in a CSV is."""
    typed, written = tmp_path / "typed.xlsx", tmp_path / "typed.csv"
    write_workbook(typed, [
        ["R1", datetime(2026, 7, 1, 0, 30), 10.0, "Web", "ライト", "", 12345],
        [2.0, date(2026, 7, 1), 7, "Web", "ライト", "", "良い"],
        ["R3", datetime(2026, 7, 1, 0, 30), 7.5, "Web", "ライト", "", ""],
    ])  # fmt: skip
    written.write_text(csv_text([
        ["R1", "2026/07/01 00:30", "10", "Web", "ライト", "", "12345"],
        ["2", "2026/07/01", "7", "Web", "ライト", "", "良い"],
    ]), encoding="utf-8")  # fmt: skip

    def published(path: Path, zoned: Settings) -> list[tuple[object, ...]]:
        results = [r for r in outcomes(path, zoned) if isinstance(r, Response)]
        return [(r.response_id, r.responded_at, r.response_date, r.score, r.comment) for r in results]

    for zone in ("Asia/Tokyo", "America/New_York"):
        zoned = with_source(settings, timezone=zone)
        assert published(typed, zoned) == published(written, zoned)
    assert published(typed, settings) == [
        ("R1", datetime(2026, 6, 30, 15, 30, tzinfo=UTC), date(2026, 7, 1), 10, "12345"),
        ("2", datetime(2026, 6, 30, 15, 0, tzinfo=UTC), date(2026, 7, 1), 7, "良い"),
    ]
    [*_, third] = outcomes(typed, settings)
    assert isinstance(third, QuarantinedRow) and third.reason is ReasonCode.BAD_SCORE


def test_xlsx_rows_are_sheet_rows(settings: Settings, tmp_path: Path) -> None:
    """A table from B3, a blank row inside it and a note beside it: source_row is Excel's row number."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for column, name in enumerate([*HEADER, ""], start=2):
        sheet.cell(row=3, column=column, value=name or None)
    for row, values in ((4, GOOD), (7, ["R2", *GOOD[1:]])):
        for column, value in enumerate(values, start=2):
            sheet.cell(row=row, column=column, value=value)
    sheet["J7"] = "メモ: 確認済み"  # under a column without a header: not data
    path = tmp_path / "titled.xlsx"
    workbook.save(path)
    results = outcomes(path, settings)
    assert [(r.source_row, type(r).__name__) for r in results] == [(4, "Response"), (7, "Response")]


def test_xlsx_sheet_by_name_or_index(settings: Settings, tmp_path: Path) -> None:
    workbook = Workbook()
    first = workbook.active
    assert first is not None
    first.title = "集計"
    first.append(["合計", 2])
    answers = workbook.create_sheet("回答")
    for row in (HEADER, GOOD):
        answers.append(row)
    path = tmp_path / "two.xlsx"
    workbook.save(path)
    with pytest.raises(InputError, match=r"回答ID.*not found"):  # the first sheet is read by default
        outcomes(path, settings)
    for sheet in ("回答", 1):
        [result] = outcomes(path, with_source(settings, sheet=sheet))
        assert isinstance(result, Response) and result.comment == GOOD[6]
    with pytest.raises(InputError, match=r"no sheet '回答一覧' \(sheets: '集計', '回答'\)"):
        outcomes(path, with_source(settings, sheet="回答一覧"))
    with pytest.raises(InputError, match="no sheet 2"):
        outcomes(path, with_source(settings, sheet=2))


def test_sheet_setting(settings: Settings) -> None:
    """A chosen sheet is another input from the same file, so it changes the config hash (and run
    ids); without one the hash is what it was before the setting existed (the committed
    fingerprint of tests/test_sample.py holds it)."""
    assert with_source(settings, sheet=0).config_hash() != settings.config_hash()
    with pytest.raises(ValueError, match="negative"):
        SourceSettings(sheet=-1)


def test_broken_workbook_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match=r"not a readable \.xlsx workbook") as error:
        outcomes(path, settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_bad_code_unit_costs_one_line(codec: str, settings: Settings, tmp_path: Path) -> None:
    """A lone surrogate is quarantined as undecodable, like a bad byte in UTF-8; so is an odd last byte."""
    good = csv_text([GOOD]).encode(codec)
    bad = "R2,2026/07/01 10:00,5,Web,ライト,,".encode(codec) + "\ud800".encode(codec, "surrogatepass")
    after = "\n" + csv_text([["R3", *GOOD[1:]]], header=[]).lstrip("\n")
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    path = tmp_path / "bad16.csv"
    path.write_bytes(bom + good + bad + after.encode(codec) + b"\x00")
    results = outcomes(path, settings)
    assert [(r.source_row, type(r).__name__) for r in results] == [
        (2, "Response"), (3, "QuarantinedRow"), (4, "Response"), (5, "QuarantinedRow")
    ]  # fmt: skip
    assert {r.reason for r in results if isinstance(r, QuarantinedRow)} == {ReasonCode.UNDECODABLE_TEXT}
    assert "utf-16" in results[1].detail  # type: ignore[union-attr]


def test_utf16_setting_without_a_bom(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "plain16.csv"
    path.write_bytes(csv_text([GOOD]).encode("utf-16-le"))
    [result] = outcomes(path, with_source(settings, encoding="utf-16"))
    assert isinstance(result, Response) and result.comment == GOOD[6]


def test_crlf_split_between_two_reads(settings: Settings, tmp_path: Path) -> None:
    """The line reader reads 8 KiB at a time: a CRLF across that boundary is still one line end."""
    head = (",".join(HEADER) + "\r\n" + ",".join(GOOD[:6]) + ",").encode()
    data = head + b"x" * (8191 - len(head)) + b"\r\n" + (",".join(["R2", *GOOD[1:]]) + "\r").encode()
    assert data.index(b"\r\n", len(head)) == 8191
    path = tmp_path / "edge.csv"
    path.write_bytes(data)
    assert [(r.source_row, type(r).__name__) for r in outcomes(path, settings)] == [
        (2, "Response"),
        (3, "Response"),
    ]


def test_jsonl_with_cr_line_ends(settings: Settings, tmp_path: Path) -> None:
    lines = [
        json.dumps(dict(zip(HEADER, [f"R{i}", *GOOD[1:]], strict=True)), ensure_ascii=False) for i in (1, 2)
    ]
    path = tmp_path / "cr.jsonl"
    path.write_bytes("\r".join(lines).encode())
    assert [r.source_row for r in outcomes(path, settings)] == [1, 2]


def test_unclosed_quote_on_the_last_line(settings: Settings, tmp_path: Path) -> None:
    """Found by the property tests: a quote left open on the last line sends the reader to the end
    of the file and back, and the file must still be open for the progress it reports."""
    path = tmp_path / "last.csv"
    path.write_text(csv_text([GOOD]) + 'R2,2026/07/01 10:00,5,Web,ライト,,"配送が\n', encoding="utf-8")
    progress = ReadProgress()
    records = list(read_records(describe_source(path, settings.source), settings.source, progress))
    assert [(r.source_row, r.problem is None) for r in records] == [(2, True), (3, False)]
    assert progress.done == progress.total == path.stat().st_size
