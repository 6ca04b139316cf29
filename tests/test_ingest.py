"""Reading and validating exports: encodings, formats, and every kind of bad row."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts import QuarantinedRow, Response
from pipeline.errors import InputError, ReasonCode
from pipeline.ingest import describe_source, read_records
from pipeline.settings import Settings
from pipeline.validate import RowValidator
from tests.conftest import HEADER, csv_text

GOOD = ["R1", "2026/07/01 09:15:22", "10", "アプリ", "ライト", "20代", "スタッフが親切でした"]


def outcomes(path: Path, settings: Settings) -> list[Response | QuarantinedRow]:
    source = describe_source(path, settings.source)
    validator = RowValidator(settings.source)
    return [validator.validate(r) for r in read_records(source, settings.source)]


@pytest.mark.parametrize(
    ("encoding", "detected"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp932", "cp932")]
)
def test_encodings_are_detected(
    encoding: str, detected: str, settings: Settings, write_export: Callable[..., Path]
) -> None:
    path = write_export("export.csv", csv_text([GOOD]), encoding)
    assert describe_source(path, settings.source).encoding == detected
    [response] = outcomes(path, settings)
    assert isinstance(response, Response)
    assert response.comment == "スタッフが親切でした"
    assert response.segments == {"channel": "アプリ", "plan": "ライト"}


def test_naive_timestamps_are_tokyo_time(settings: Settings, write_export: Callable[..., Path]) -> None:
    rows = [
        ["R1", "2026/07/01 00:30:00", "9", "Web", "ライト", "", ""],
        ["R2", "2026-06-30T15:30:00Z", "9", "Web", "ライト", "", ""],
        ["R3", "2026-07-01T00:30:00+09:00", "9", "Web", "ライト", "", ""],
        ["R4", "2026/7/1 0:30", "9", "Web", "ライト", "", ""],
        ["R5", "2026年7月1日 0時30分", "9", "Web", "ライト", "", ""],
    ]
    results = outcomes(write_export("t.csv", csv_text(rows)), settings)
    expected = datetime(2026, 6, 30, 15, 30, tzinfo=UTC)
    for result in results:
        assert isinstance(result, Response), result
        assert result.responded_at == expected
        assert result.response_date == date(2026, 7, 1)


@pytest.mark.parametrize(
    ("score", "expected"),
    [("１０", 10), (" 7 ", 7), ("0", 0), ("8.0", 8),
     ("11", ReasonCode.SCORE_OUT_OF_RANGE), ("-1", ReasonCode.SCORE_OUT_OF_RANGE),
     ("abc", ReasonCode.BAD_SCORE), ("7.5", ReasonCode.BAD_SCORE), ("", ReasonCode.MISSING_SCORE)],
)  # fmt: skip
def test_scores(
    score: str, expected: int | ReasonCode, settings: Settings, write_export: Callable[..., Path]
) -> None:
    row = [*GOOD[:2], score, *GOOD[3:]]
    [result] = outcomes(write_export("s.csv", csv_text([row])), settings)
    if isinstance(expected, int):
        assert isinstance(result, Response) and result.score == expected
    else:
        assert isinstance(result, QuarantinedRow) and result.reason is expected


def test_bad_rows_are_quarantined_with_reasons(settings: Settings, write_export: Callable[..., Path]) -> None:
    rows = [
        GOOD,
        ["", "2026/07/01 10:00", "5", "Web", "ライト", "", "idなし"],
        ["R1", "2026/07/02 10:00", "5", "Web", "ライト", "", "重複"],
        ["R3", "2026/13/45 10:00", "5", "Web", "ライト", "", ""],
        ["R4", "", "5", "Web", "ライト", "", ""],
        ["R5", "昨日", "5", "Web", "ライト", "", ""],
    ]
    text = csv_text(rows) + "R6,2026/07/01 10:00\n"
    results = outcomes(write_export("bad.csv", text), settings)
    reasons = [r.reason if isinstance(r, QuarantinedRow) else "ok" for r in results]
    assert reasons == [
        "ok",
        ReasonCode.MISSING_RESPONSE_ID,
        ReasonCode.DUPLICATE_RESPONSE_ID,
        ReasonCode.BAD_TIMESTAMP,
        ReasonCode.MISSING_TIMESTAMP,
        ReasonCode.BAD_TIMESTAMP,
        ReasonCode.MALFORMED_RECORD,
    ]
    duplicate = results[2]
    assert isinstance(duplicate, QuarantinedRow)
    assert "row 2" in duplicate.detail and duplicate.response_date == date(2026, 7, 2)
    assert [r.source_row for r in results] == [2, 3, 4, 5, 6, 7, 8]


def test_unclosed_quote_costs_one_line_only(settings: Settings, write_export: Callable[..., Path]) -> None:
    text = (
        csv_text([GOOD])
        + 'R2,2026/07/01 10:00,3,Web,ライト,30代,"配送が遅い、最悪\n'
        + csv_text([["R3", "2026/07/01 11:00", "8", "Web", "ライト", "", "普通"]], header=[]).lstrip("\n")
        + csv_text(
            [["R4", "2026/07/01 12:00", "9", "店舗", "ライト", "", "複数行の\nコメント"]], header=[]
        ).lstrip("\n")
    )
    results = outcomes(write_export("q.csv", text), settings)
    kinds = [(r.source_row, type(r).__name__) for r in results]
    assert kinds == [(2, "Response"), (3, "QuarantinedRow"), (4, "Response"), (5, "Response")]
    assert isinstance(results[3], Response) and results[3].comment == "複数行の\nコメント"


def test_huge_field_and_huge_line(
    settings: Settings, write_export: Callable[..., Path], tmp_path: Path
) -> None:
    long_comment = "長" * (settings.source.max_comment_chars + 1)
    huge_line = "R9,2026/07/01 10:00,5,Web,ライト,," + "x" * (settings.source.max_record_bytes + 10) + "\n"
    text = (
        csv_text([[*GOOD[:6], long_comment]])
        + huge_line
        + csv_text([["R10", *GOOD[1:]]], header=[]).lstrip("\n")
    )
    results = outcomes(write_export("h.csv", text), settings)
    assert [r.reason if isinstance(r, QuarantinedRow) else "ok" for r in results] == [
        ReasonCode.FIELD_TOO_LONG,
        ReasonCode.RECORD_TOO_LARGE,
        "ok",
    ]
    assert all(len(r.raw_payload) < 10_000 for r in results if isinstance(r, QuarantinedRow))


def test_undecodable_bytes_cost_one_line(settings: Settings, write_export: Callable[..., Path]) -> None:
    good = csv_text([GOOD]).encode("utf-8")
    bad = "R2,2026/07/01 10:00,5,Web,ライト,,".encode() + b"\xff\xfe\n"
    after = csv_text([["R3", *GOOD[1:]]], header=[]).lstrip("\n").encode()
    path = write_export("u.csv", "")
    path.write_bytes(good + bad + after)
    results = outcomes(path, settings)
    assert [type(r).__name__ for r in results] == ["Response", "QuarantinedRow", "Response"]
    assert isinstance(results[1], QuarantinedRow) and results[1].reason is ReasonCode.UNDECODABLE_TEXT


def test_missing_column_is_one_clear_error(settings: Settings, write_export: Callable[..., Path]) -> None:
    path = write_export("m.csv", csv_text([GOOD[:6]], header=HEADER[:6]))
    with pytest.raises(InputError, match=r"ご意見・ご感想.*not found"):
        outcomes(path, settings)


def test_tsv_jsonl_and_parquet_give_the_same_responses(
    settings: Settings, write_export: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [GOOD, ["R2", "2026/07/02 10:00", "３", "Web", "プレミアム", "", "配送が遅い\n二度と使わない"]]
    csv_results = outcomes(write_export("a.csv", csv_text(rows)), settings)
    tsv_results = outcomes(write_export("a.tsv", csv_text(rows, delimiter="\t")), settings)
    jsonl = "\n".join(json.dumps(dict(zip(HEADER, r, strict=True)), ensure_ascii=False) for r in rows)
    jsonl_results = outcomes(write_export("a.jsonl", jsonl + "\n\n"), settings)
    parquet_path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([dict(zip(HEADER, r, strict=True)) for r in rows]), parquet_path)
    parquet_results = outcomes(parquet_path, settings)

    def key(results: list[Response | QuarantinedRow]) -> list[tuple[object, ...]]:
        return [
            (r.response_id, r.responded_at, r.score, r.comment, tuple(r.segments.items())) for r in results
        ]  # type: ignore[union-attr]

    assert key(csv_results) == key(tsv_results) == key(jsonl_results) == key(parquet_results)
    assert csv_results[1].score == 3  # type: ignore[union-attr]


def test_jsonl_bad_lines_and_wrong_types(settings: Settings, write_export: Callable[..., Path]) -> None:
    lines = [
        '{"回答ID": "R1", "回答日時": "2026-07-01T10:00:00", "推奨度": 9, "ご意見・ご感想": "良い"}',
        '{"回答ID": "R2", "回答日時": "2026-07-01T10:00:00", "推奨度": 9',
        "[1, 2, 3]",
        '{"回答ID": "R3", "回答日時": "2026-07-01T10:00:00", "推奨度": true, "ご意見・ご感想": ""}',
        '{"回答ID": "R4", "回答日時": "2026-07-01T10:00:00", "推奨度": 5, "ご意見・ご感想": {"a": 1}}',
        '{"回答ID": 5, "回答日時": "2026-07-01T10:00:00", "推奨度": 5.0, "ご意見・ご感想": null}',
    ]
    results = outcomes(write_export("b.jsonl", "\n".join(lines)), settings)
    assert [r.reason if isinstance(r, QuarantinedRow) else r.response_id for r in results] == [
        "R1",
        ReasonCode.MALFORMED_RECORD,
        ReasonCode.MALFORMED_RECORD,
        ReasonCode.BAD_SCORE,
        ReasonCode.BAD_FIELD_TYPE,
        "5",
    ]


def test_quarantine_payload_is_masked(settings: Settings, write_export: Callable[..., Path]) -> None:
    row = ["R1", "2026/07/01 10:00", "abc", "Web", "ライト", "", "電話は090-1234-5678、mail a.b@example.jp"]
    [result] = outcomes(write_export("p.csv", csv_text([row])), settings)
    assert isinstance(result, QuarantinedRow)
    assert "090-1234-5678" not in result.raw_payload and "a.b@example.jp" not in result.raw_payload
    assert json.loads(result.raw_payload)["推奨度"] == "abc"


def test_unknown_extension_and_missing_file(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        describe_source(tmp_path / "nope.csv", settings.source)
    odd = tmp_path / "export.xls"  # the binary Excel format before 2007: not read
    odd.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match=r"source\.format"):
        describe_source(odd, settings.source)


def test_hostile_values_are_quarantined_not_fatal(
    settings: Settings, write_export: Callable[..., Path]
) -> None:
    lines = [
        "[" * 100_000,
        '{"回答ID": "R1", "回答日時": "0001-01-01 00:00", "推奨度": 5, "ご意見・ご感想": ""}',
        '{"回答ID": "R2", "回答日時": "9999-12-31T23:00-05:00", "推奨度": 5, "ご意見・ご感想": ""}',
        '{"回答ID": "R3", "回答日時": "2026-07-01 10:00", "推奨度": 4111111111111111, "ご意見・ご感想": ""}',
        '{"回答ID": "R4", "回答日時": "taro@example.com 090-1234-5678", "推奨度": 5, "ご意見・ご感想": ""}',
    ]
    results = outcomes(write_export("h.jsonl", "\n".join(lines)), settings)
    reasons = [r.reason if isinstance(r, QuarantinedRow) else "ok" for r in results]
    assert reasons == [ReasonCode.MALFORMED_RECORD, ReasonCode.BAD_TIMESTAMP, ReasonCode.BAD_TIMESTAMP,
                       ReasonCode.SCORE_OUT_OF_RANGE, ReasonCode.BAD_TIMESTAMP]  # fmt: skip
    for result in results:
        assert isinstance(result, QuarantinedRow)
        for secret in ("4111111111111111", "taro@example.com", "090-1234-5678"):
            assert secret not in result.detail and secret not in result.raw_payload


def test_parquet_nanosecond_timestamps(settings: Settings, tmp_path: Path) -> None:
    stamp = pa.array([1_782_900_000_123_456_789], type=pa.timestamp("ns", tz="Asia/Tokyo"))
    table = pa.table({"回答ID": ["R1"], "回答日時": stamp, "推奨度": [9], "利用チャネル": ["Web"],
                      "ご契約プラン": ["ライト"], "ご意見・ご感想": ["良い"]})  # fmt: skip
    path = tmp_path / "ns.parquet"
    pq.write_table(table, path)
    [result] = outcomes(path, settings)
    assert isinstance(result, Response) and result.responded_at.microsecond == 123456


def test_unreadable_header_is_one_clear_error(settings: Settings, write_export: Callable[..., Path]) -> None:
    path = write_export("quote.csv", '"' + csv_text([GOOD]))  # the header's quote never closes
    with pytest.raises(InputError, match="unclosed quote"):
        outcomes(path, settings)


def test_shift_jis_setting_reads_cp932_characters(
    settings: Settings, write_export: Callable[..., Path]
) -> None:
    path = write_export("sj.csv", csv_text([[*GOOD[:6], "①㈱髙島屋で購入"]]), "cp932")
    sjis = settings.model_copy(
        update={"source": settings.source.model_copy(update={"encoding": "shift_jis"})}
    )
    [result] = outcomes(path, sjis)
    assert isinstance(result, Response) and "髙島屋" in result.comment
