"""Property-based tests of ingest (Hypothesis): whatever bytes arrive, reading ends in records or in
one documented error, and every record read is published or quarantined.

Hypothesis writes exports with random fields, quoting, delimiters, line ends (LF, CRLF, CR, mixed)
and encodings (UTF-8, UTF-8 with BOM, CP932, UTF-16 LE/BE with BOM), damages some with random bytes,
and reads them with ``source.encoding`` auto or set, right or wrong. The last tests plant a bug
each and check that the property finds it. The file runs in about half a minute.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
import string
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from pipeline import job, text_lines
from pipeline.contracts import QuarantinedRow, Response, SourceRecord
from pipeline.errors import InputError, ReasonCode, VocError
from pipeline.ingest import describe_source, read_records
from pipeline.job import run_job
from pipeline.settings import DriverSettings, SourceSettings, ThemeSettings
from pipeline.taxonomy import Taxonomy
from pipeline.validate import RowValidator
from tests.conftest import HEADER, make_settings
from tests.fakes import CuePredictor

# how each file encoding is written: byte-order mark, codec
WRITERS = {
    "utf-8": (b"", "utf-8"),
    "utf-8-sig": (codecs.BOM_UTF8, "utf-8"),
    "cp932": (b"", "cp932"),
    "utf-16": (codecs.BOM_UTF16_LE, "utf-16-le"),
    "utf-16-be": (codecs.BOM_UTF16_BE, "utf-16-be"),
}
# source.encoding settings that read each correctly (CP932 auto-detection needs more text than a few
# random characters, so it is set)
READERS = {"utf-8": ["auto", "utf-8"], "utf-8-sig": ["auto", "utf-8", "utf-8-sig"],
           "cp932": ["cp932", "shift_jis"], "utf-16": ["auto", "utf-16"],
           "utf-16-be": ["auto", "utf-16"]}  # fmt: skip
SETTINGS_ENCODINGS = ["auto", "utf-8", "utf-8-sig", "cp932", "shift_jis", "utf-16"]
# what survey answers hold and what trips parsers: delimiters, quotes, every line end, NUL, a BOM,
# Unicode spaces and line separators, Japanese, half-width kana, emoji
CANDIDATES = (string.ascii_letters + string.digits + string.punctuation + " \t\r\n\x00\x0b\x1c\x85\xa0"
              "\u2028\u3000\ufeffあ髙﨑①㈱ｶﾅ１０、。「」〜～−😀🙏é")  # fmt: skip
# per column of HEADER, what an export holds: the first three of each are valid (a comment of 1,200
# UTF-8 bytes is over the smallest max_record_bytes)
ANSWERS = [
    ["R1", "R2", " R3 ", "R1", ""],
    ["2026/07/01 10:00", "2026-07-02T10:00:00+09:00", "2026/07/03", "2026/13/45 10:00", "昨日", ""],
    ["0", "10", "１０", "11", "7.5", "abc", ""],
    ["Web", "アプリ", ""],
    ["ライト", "プレミアム", ""],
    ["20代", "", "30代"],
    ["配送が遅い", "スタッフが親切でした", "電話は090-1234-5678", "", "長" * 400],
]
LINE_END = re.compile(r"\r\n|\r|\n")
CI = settings(deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Export:
    data: bytes
    suffix: str  # .csv, .tsv, .jsonl or .xlsx
    encoding: str  # source.encoding to read it with
    max_record_bytes: int = 1_000_000
    expected: list[tuple[int, dict[str, str]]] | None = None  # (source_row, fields) when well formed


def answers(codec: str) -> st.SearchStrategy[list[str]]:
    """A row of HEADER's width: a valid answer, or each field a typical value or random text."""
    text = st.text(st.sampled_from([c for c in CANDIDATES if _round_trips(c, codec)]), max_size=8)
    valid = [st.sampled_from([v for v in values[:3] if _round_trips(v, codec)]) for values in ANSWERS]
    typical = [st.sampled_from([v for v in values if _round_trips(v, codec)]) | text for values in ANSWERS]
    return (st.tuples(*valid) | st.tuples(*typical)).map(list)


def _round_trips(text: str, codec: str) -> bool:
    try:
        return text.encode(codec).decode(codec) == text
    except UnicodeError:
        return False


@st.composite
def well_formed_exports(draw: st.DrawFn) -> Export:
    """Rows of HEADER's width, each field quoted at random (always when it must be), random line ends
    and blank lines; ``expected`` is what a reader must give back, line numbers included."""
    file_encoding = draw(st.sampled_from(sorted(WRITERS)))
    bom, codec = WRITERS[file_encoding]
    delimiter = draw(st.sampled_from([",", "\t"]))
    rows = draw(st.lists(answers(codec), max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    parts, line, expected = [delimiter.join(HEADER) + end], 2, []
    for row in rows:
        blanks = draw(st.integers(0, 2))
        parts.append(end * blanks)  # the line end before repeated: CR, then LF alone, would be one CRLF
        line += blanks
        text = delimiter.join(_quoted(v, delimiter, draw(st.booleans())) for v in row)
        if text.strip():  # a line of only delimiters and spaces reads as a blank line
            expected.append((line, {h: LINE_END.sub("\n", v) for h, v in zip(HEADER, row, strict=True)}))
        end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        parts.append(text + end)
        line += len(LINE_END.findall(text)) + 1
    text = "".join(parts)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no line end after the last line
    reader = draw(st.sampled_from(READERS[file_encoding]))
    return Export(
        bom + text.encode(codec), ".tsv" if delimiter == "\t" else ".csv", reader, expected=expected
    )


def _quoted(value: str, delimiter: str, anyway: bool) -> str:
    if anyway or any(c in value for c in (delimiter, '"', "\r", "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def damaged_exports(draw: st.DrawFn, text_only: bool = False) -> Export:
    """Random bytes; or rows of random width, with quotes that may never close, written in one
    encoding, perhaps cut short or with random bytes spliced in, and read as any encoding."""
    limit = draw(st.sampled_from([1024, 1_000_000]))  # the smallest allowed: long lines are too large
    if not text_only and draw(st.integers(0, 3)) == 0:
        suffix = draw(st.sampled_from([".csv", ".tsv", ".jsonl", ".xlsx"]))
        return Export(draw(st.binary(max_size=300)), suffix, draw(st.sampled_from(SETTINGS_ENCODINGS)), limit)
    file_encoding = draw(st.sampled_from(sorted(WRITERS)))
    bom, codec = WRITERS[file_encoding]
    setting = draw(st.sampled_from(READERS[file_encoding]) | st.sampled_from(SETTINGS_ENCODINGS))  # or wrong
    delimiter, suffix = draw(st.sampled_from([(",", ".csv"), ("\t", ".tsv"), (",", ".jsonl")]))
    lines = [delimiter.join(HEADER)]
    for row in draw(st.lists(answers(codec), max_size=6)):
        if suffix == ".jsonl":
            lines.append(json.dumps(dict(zip(HEADER, row, strict=True)), ensure_ascii=False))
        elif draw(st.booleans()):  # fields missing or one too many, quotes that may not close
            width = draw(st.integers(len(HEADER) - 2, len(HEADER) + 1))
            lines.append(delimiter.join(draw(st.sampled_from(QUOTINGS))(v) for v in (row * 2)[:width]))
        else:
            lines.append(delimiter.join(_quoted(v, delimiter, draw(st.booleans())) for v in row))
    lines = lines[1:] if suffix == ".jsonl" else lines
    text = "".join(line + draw(st.sampled_from(["\n", "\r\n", "\r"])) for line in lines)
    data = bom + text.encode(codec)
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()):
        data = data[:cut] + draw(st.binary(min_size=1, max_size=8)) + data[cut:]
    elif draw(st.booleans()):
        data = data[:cut]
    return Export(data, suffix, setting, limit)


QUOTINGS: list[Callable[[str], str]] = [
    lambda v: v,  # bare, even when it holds a delimiter, a quote or a line end
    lambda v: '"' + v.replace('"', '""') + '"',
    lambda v: '"' + v,  # a quote that never closes
    lambda v: v + '"',
    lambda v: '"' + v + '"x',  # text after the closing quote
]


def read(export: Export) -> tuple[list[SourceRecord], SourceSettings]:
    """The records of the export, written to a file and read as ``voc run`` reads it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("export" + export.suffix)
        path.write_bytes(export.data)
        config = make_settings(
            Path(folder) / "voc.duckdb", encoding=export.encoding, max_record_bytes=export.max_record_bytes
        ).source
        return list(read_records(describe_source(path, config), config)), config


def check_reads_or_refuses(export: Export) -> None:
    """Only the documented error, on one line; else every record is published or quarantined, each
    once, on a line of the file, in file order."""
    try:
        records, config = read(export)
    except VocError as error:
        assert str(error) and "\n" not in str(error), repr(error)
        event("refused with an InputError")
        return
    event("read: some records" if records else "read: no records")
    validator = RowValidator(config)
    outcomes = [validator.validate(r) for r in records]
    published = [o for o in outcomes if isinstance(o, Response)]
    quarantined = [o for o in outcomes if isinstance(o, QuarantinedRow)]
    assert len(published) + len(quarantined) == len(records)
    rows = [o.source_row for o in outcomes]
    lines = len(LINE_END.findall(export.data.decode("latin-1"))) + 1  # UTF-16 has fewer, not more
    assert rows == sorted(set(rows)) and all(1 <= row <= lines for row in rows)
    assert len({r.response_id for r in published}) == len(published)
    for row in quarantined:
        assert row.reason in ReasonCode and isinstance(json.loads(row.raw_payload), dict)


def check_read_back(export: Export) -> None:
    """A well-formed export reads back exactly: its rows, on their lines."""
    records, _ = read(export)
    assert [(r.source_row, r.fields) for r in records] == export.expected


@settings(CI, max_examples=150)
@given(well_formed_exports())
def test_well_formed_exports_read_back_exactly(export: Export) -> None:
    check_read_back(export)


@settings(CI, max_examples=300)
@given(damaged_exports())
def test_any_bytes_give_records_or_one_input_error(export: Export) -> None:
    check_reads_or_refuses(export)


@settings(CI, max_examples=20, deadline=timedelta(seconds=60))
@given(export=damaged_exports(text_only=True))
def test_every_run_publishes_or_quarantines_each_record(export: Export, taxonomy: Taxonomy) -> None:
    check_run_accounts_for_every_record(export, taxonomy)


def check_run_accounts_for_every_record(export: Export, taxonomy: Taxonomy) -> None:
    """The whole job: rows_in = published + quarantined, as many as ingest reads, all in the tables."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("export" + export.suffix)
        path.write_bytes(export.data)
        config = make_settings(
            Path(folder) / "voc.duckdb",
            drivers=DriverSettings(windows=[7]),
            encoding=export.encoding,
            max_record_bytes=export.max_record_bytes,
        )
        # a run that quarantines too much fails on purpose; here every record must be accounted for
        source = config.source.model_copy(update={"max_quarantine_share": 1.0})
        config = config.model_copy(update={"source": source, "themes": ThemeSettings(enabled=False)})
        try:
            summary = run_job(path, config, CuePredictor(taxonomy), taxonomy)
        except VocError as error:
            assert str(error) and "\n" not in str(error), repr(error)
            event("run refused")
            return
        event("run published" if summary.rows_published else "run without a published row")
        records = list(read_records(describe_source(path, config.source), config.source))
        assert summary.rows_read == len(records) == summary.rows_in
        assert summary.rows_in == summary.rows_published + summary.rows_quarantined
        with duckdb.connect(str(config.store.duckdb_path), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM responses").fetchone() == (summary.rows_published,)
            assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (summary.rows_quarantined,)


# --- planted bugs: each property above fails on a plausible regression ----------------------

# no shrinking (the first failure is proof enough) and nothing saved to replay in the real tests
PLANTED = settings(CI, max_examples=300, database=None, phases=[Phase.generate], report_multiple_bugs=False)


def lines_ending_only_at_lf(handle: BinaryIO, limit: int) -> Iterator[text_lines.Line]:
    """The line reader before CR line ends were read: readline splits at LF only."""
    number = 0
    while line := handle.readline(limit + 1):
        number += 1
        yield number, line.rstrip(b"\r\n"), len(line) > limit and not line.endswith(b"\n")


def test_read_back_catches_a_reader_that_ends_lines_only_at_lf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_lines, "physical_lines", lines_ending_only_at_lf)

    @PLANTED
    @given(well_formed_exports())
    def read_back(export: Export) -> None:
        check_read_back(export)

    with pytest.raises((AssertionError, InputError)):
        read_back()


def test_one_input_error_catches_strict_utf16_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_lines, "_NOT_UTF16", "strict")  # a lone surrogate raises instead

    @PLANTED
    @given(damaged_exports())
    def reads_or_refuses(export: Export) -> None:
        check_reads_or_refuses(export)

    with pytest.raises(UnicodeDecodeError):
        reads_or_refuses()


def test_accounting_catches_a_job_that_drops_records(
    monkeypatch: pytest.MonkeyPatch, taxonomy: Taxonomy
) -> None:
    def every_other_record(*args: Any, **kwargs: Any) -> Iterator[SourceRecord]:
        return itertools.islice(read_records(*args, **kwargs), 0, None, 2)

    monkeypatch.setattr(job, "read_records", every_other_record)

    @settings(PLANTED, max_examples=30, deadline=None)
    @given(damaged_exports(text_only=True))
    def accounts(export: Export) -> None:
        check_run_accounts_for_every_record(export, taxonomy)

    with pytest.raises(AssertionError):
        accounts()
