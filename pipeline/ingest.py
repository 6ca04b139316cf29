"""Ingest: read a survey export in chunks (validating each record is `pipeline.validate`).

Formats: CSV/TSV (UTF-8, UTF-8 with BOM, CP932/Shift_JIS as Japanese Excel writes it, or
UTF-16 with a byte-order mark as Excel's 「Unicode テキスト」 is; detected automatically), JSONL,
Parquet and Excel workbooks (`pipeline.xlsx`). Each record either becomes a `Response` or a
`QuarantinedRow` with a reason code: nothing is dropped. Only blank lines are skipped.

Text files are read line by line as bytes (`pipeline.text_lines`: LF, CRLF and CR line ends), so
memory is bounded by the chunk size and the largest allowed record, and one broken record (an
unclosed quote, an undecodable byte) costs only that record: reading resumes at the next line.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.checksums import file_sha256
from pipeline.contracts import SourceRecord
from pipeline.errors import InputError, ReasonCode
from pipeline.progress import ReadProgress
from pipeline.settings import SourceSettings
from pipeline.text_lines import Line, detect_encoding, text_lines
from pipeline.validate import PAYLOAD_VALUE_CHARS

FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl",
                    ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
                    ".xlsx": "xlsx"}  # fmt: skip
BINARY_FORMATS = ("parquet", "xlsx")  # formats without a text encoding


@dataclass(frozen=True, slots=True)
class SourceInfo:
    path: Path
    format: str
    encoding: str | None  # None for Parquet and xlsx
    sha256: str


def describe_source(path: Path, settings: SourceSettings) -> SourceInfo:
    """Check the file exists, work out its format and encoding, and fingerprint it."""
    if not path.exists():
        raise InputError(f"input file {path} does not exist")
    if not path.is_file():
        raise InputError(f"input {path} is not a file")
    fmt: str = settings.format
    if fmt == "auto":
        fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower(), "")
        if not fmt:
            raise InputError(
                f"cannot tell the format of {path.name} from its extension; "
                "set source.format to csv, tsv, jsonl, parquet or xlsx"
            )
    encoding = None if fmt in BINARY_FORMATS else detect_encoding(path, settings.encoding)
    return SourceInfo(path=path, format=fmt, encoding=encoding, sha256=file_sha256(path))


# --- reading records ----------------------------------------------------------------------


def read_records(
    source: SourceInfo, settings: SourceSettings, progress: ReadProgress | None = None
) -> Iterator[SourceRecord]:
    """Yield every record of the source in file order; ``progress`` follows how far it has read."""
    progress = progress or ReadProgress()
    if source.format in ("csv", "tsv"):
        yield from _read_delimited(source, settings, "\t" if source.format == "tsv" else ",", progress)
    elif source.format == "jsonl":
        yield from _read_jsonl(source, settings, progress)
    elif source.format == "parquet":
        yield from _read_parquet(source, settings, progress)
    elif source.format == "xlsx":
        from pipeline.xlsx import read_xlsx  # its reader is loaded only for workbooks

        yield from read_xlsx(source, settings, progress)
    else:  # pragma: no cover - formats are validated in settings
        raise InputError(f"unsupported format {source.format}")


def required_columns(settings: SourceSettings) -> list[str]:
    cols = settings.columns
    return [
        cols.response_id,
        cols.responded_at,
        cols.score,
        cols.comment,
        *settings.segments.values(),
    ]


def check_header(header: list[str], settings: SourceSettings, name: str) -> None:
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError(f"{name}: column {_shown(column)!r} appears twice in the header")
        seen.add(column)
    missing = [c for c in required_columns(settings) if c not in seen]
    if missing:
        found = ", ".join(_shown(column) for column in header[:20]) or "(none)"
        raise InputError(
            f"{name}: column(s) {', '.join(missing)} not found (columns found: {found}); "
            "map your columns in the config under source.columns / source.segments"
        )


def _shown(column: str) -> str:
    """A column name as an error quotes it: on one line (errors are printed as one) and short."""
    flat = " ".join(column.split())
    return flat if len(flat) <= 40 else flat[:40] + "…"


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """RFC 4180 state: a quote opens a field only at its start; "" inside is an escaped quote."""
    in_quotes = False
    at_field_start = True
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if in_quotes:
            if char == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 1
                else:
                    in_quotes = False
        elif char == '"' and at_field_start:
            in_quotes = True
        at_field_start = char in (delimiter, "\n") and not in_quotes
        i += 1
    return in_quotes


def _read_delimited(
    source: SourceInfo, settings: SourceSettings, delimiter: str, progress: ReadProgress
) -> Iterator[SourceRecord]:
    csv.field_size_limit(
        max(csv.field_size_limit(), settings.max_record_bytes)
    )  # ours is the one that counts
    with source.path.open("rb") as handle:
        yield from _tracked(_DelimitedReader(source, settings, delimiter, handle).records(), handle, progress)


def _tracked(
    records: Iterator[SourceRecord], handle: BinaryIO, progress: ReadProgress
) -> Iterator[SourceRecord]:
    """The records of a text file, ``progress`` following the bytes read of its size."""
    progress.unit, progress.total = "bytes", os.fstat(handle.fileno()).st_size
    for record in records:
        progress.done = handle.tell()
        yield record
    progress.done = progress.total


class _DelimitedReader:
    """Records of a CSV/TSV file: the header first, then one record per (possibly multi-line) row."""

    def __init__(
        self, source: SourceInfo, settings: SourceSettings, delimiter: str, handle: BinaryIO
    ) -> None:
        assert source.encoding is not None
        self.source, self.settings, self.delimiter = source, settings, delimiter
        self.limit = settings.max_record_bytes
        self.lines, self.encoding = text_lines(handle, source.encoding, self.limit)  # bytes' encoding
        self.pending: list[Line] = []  # lines pushed back after a broken record
        self.header: list[str] | None = None

    def next_line(self) -> Line | None:
        return self.pending.pop(0) if self.pending else next(self.lines, None)

    def records(self) -> Iterator[SourceRecord]:
        while (first := self.next_line()) is not None:
            start, data, too_long = first
            if too_long:
                detail = f"line longer than {self.limit} bytes (source.max_record_bytes)"
                yield _broken(start, data, self.encoding, ReasonCode.RECORD_TOO_LARGE, detail)
                continue
            try:
                text = data.decode(self.encoding)
            except UnicodeDecodeError as exc:
                detail = f"bytes not valid {self.source.encoding} at offset {exc.start}"
                yield _broken(start, data, self.encoding, ReasonCode.UNDECODABLE_TEXT, detail)
                continue
            if self.header is None and not text.strip():
                continue
            text, record_lines, broken = self.gather(first, text)
            if self.header is None:
                self.read_header(text, broken)
            elif text.strip() or len(record_lines) > 1:  # a blank line is not a record
                yield self.record(text, record_lines, broken)

    def gather(self, first: Line, text: str) -> tuple[str, list[Line], bool]:
        """A quoted field may span lines: gather them until the quote closes (broken: it did not)."""
        record_lines, size = [first], len(first[1])
        while _ends_inside_quotes(text, self.delimiter):
            following = self.next_line()
            if following is None or following[2] or size + len(following[1]) > self.limit:
                if following is not None:
                    self.pending.insert(0, following)
                return text, record_lines, True
            record_lines.append(following)
            size += len(following[1])
            try:
                text += "\n" + following[1].decode(self.encoding)
            except UnicodeDecodeError:
                return text, record_lines, True
        return text, record_lines, False

    def read_header(self, text: str, broken: bool) -> None:
        name = self.source.path.name
        if broken:
            raise InputError(f"{name}: the header line has an unclosed quote")
        try:
            header = [clean_header(h) for h in next(csv.reader([text], delimiter=self.delimiter))]
        except csv.Error as exc:
            raise InputError(f"{name}: cannot read the header line ({exc})") from exc
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        check_header(header, self.settings, name)
        self.header = header

    def record(self, text: str, record_lines: list[Line], broken: bool) -> SourceRecord:
        assert self.header is not None
        start, data, _ = record_lines[0]
        values = None if broken else _parse_csv_record(text, self.delimiter)
        if values is not None and len(values) == len(self.header):
            return SourceRecord(
                source_row=start, fields=dict(zip(self.header, values, strict=True)), raw=text
            )
        if len(record_lines) > 1:
            # an unclosed quote swallowed the following lines: reject only the first line and
            # read the others again as records of their own
            self.pending[0:0] = record_lines[1:]
            detail = "unclosed quote: the quoted field does not end on this line"
        else:
            found = "unparseable" if values is None else f"{len(values)}"
            detail = f"expected {len(self.header)} fields, found {found}"
        return _broken(start, data, self.encoding, ReasonCode.MALFORMED_RECORD, detail)


def _parse_csv_record(text: str, delimiter: str) -> list[str] | None:
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def clean_header(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lstrip("\ufeff")


def _broken(row: int, data: bytes, encoding: str, reason: ReasonCode, detail: str) -> SourceRecord:
    raw = data[: PAYLOAD_VALUE_CHARS * 4].decode(encoding, errors="backslashreplace")
    return SourceRecord(source_row=row, fields=None, raw=raw, problem=(reason, detail))


def _read_jsonl(
    source: SourceInfo, settings: SourceSettings, progress: ReadProgress
) -> Iterator[SourceRecord]:
    with source.path.open("rb") as handle:
        yield from _tracked(_jsonl_records(source, settings, handle), handle, progress)


def _jsonl_records(source: SourceInfo, settings: SourceSettings, handle: BinaryIO) -> Iterator[SourceRecord]:
    assert source.encoding is not None
    limit = settings.max_record_bytes
    lines, encoding = text_lines(handle, source.encoding, limit)  # UTF-8 for a recoded UTF-16 file
    for number, data, too_long in lines:
        if too_long:
            yield _broken(
                number,
                data,
                encoding,
                ReasonCode.RECORD_TOO_LARGE,
                f"line longer than {limit} bytes (source.max_record_bytes)",
            )
            continue
        try:
            text = data.decode(encoding).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            yield _broken(
                number,
                data,
                encoding,
                ReasonCode.UNDECODABLE_TEXT,
                f"bytes not valid {source.encoding} at offset {exc.start}",
            )
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield _broken(
                number,
                data,
                encoding,
                ReasonCode.MALFORMED_RECORD,
                f"not valid JSON: {exc.msg} at column {exc.colno}",
            )
            continue
        except RecursionError:
            detail = "JSON nested too deeply to read"
            yield _broken(number, data, encoding, ReasonCode.MALFORMED_RECORD, detail)
            continue
        if not isinstance(value, dict):
            yield _broken(
                number,
                data,
                encoding,
                ReasonCode.MALFORMED_RECORD,
                f"expected a JSON object, found {type(value).__name__}",
            )
            continue
        yield SourceRecord(source_row=number, fields=value, raw=text)


def _read_parquet(
    source: SourceInfo, settings: SourceSettings, progress: ReadProgress
) -> Iterator[SourceRecord]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{source.path.name} is not a readable Parquet file ({exc})") from exc
    check_header(parquet.schema_arrow.names, settings, source.path.name)
    columns = required_columns(settings)
    progress.unit, progress.total = "records", parquet.metadata.num_rows
    row = 0
    for batch in parquet.iter_batches(batch_size=settings.chunk_rows, columns=columns):
        batch = _microsecond_timestamps(batch)
        for values in batch.to_pylist():
            row += 1
            progress.done = row
            yield SourceRecord(source_row=row, fields=values)


def _microsecond_timestamps(batch: Any) -> Any:
    """Python datetimes hold microseconds; nanosecond columns are truncated rather than refused."""
    import pyarrow as pa

    for i, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            column = batch.column(i).cast(pa.timestamp("us", tz=field.type.tz), safe=False)
            batch = batch.set_column(i, field.name, column)
    return batch


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
