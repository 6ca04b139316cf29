"""Ingest: read a survey export in chunks and validate every row.

Formats: CSV/TSV (UTF-8, UTF-8 with BOM, or CP932/Shift_JIS as Japanese Excel writes it;
detected automatically), JSONL and Parquet. Each record either becomes a `Response` or a
`QuarantinedRow` with a reason code: nothing is dropped. Only blank lines are skipped.

Text files are read line by line as bytes, so memory is bounded by the chunk size and the
largest allowed record, and one broken record (an unclosed quote, an undecodable byte)
costs only that record: reading resumes at the next line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from pipeline.contracts import QuarantinedRow, Response, SourceRecord
from pipeline.errors import InputError, ReasonCode, Stage
from pipeline.normalize import clean_comment
from pipeline.settings import SourceSettings

_ENCODING_SNIFF_BYTES = 1 << 20
_MAX_ID_CHARS = 200
_MAX_SEGMENT_CHARS = 200
_PAYLOAD_VALUE_CHARS = 2000

FORMAT_BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl",
                    ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceInfo:
    path: Path
    format: str
    encoding: str | None  # None for Parquet
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
                "set source.format to csv, tsv, jsonl or parquet"
            )
    encoding = None if fmt == "parquet" else _detect_encoding(path, settings.encoding)
    return SourceInfo(path=path, format=fmt, encoding=encoding, sha256=_sha256(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _detect_encoding(path: Path, configured: str) -> str:
    with path.open("rb") as handle:
        head = handle.read(_ENCODING_SNIFF_BYTES)
    if configured == "shift_jis":
        return "cp932"  # what Japanese Windows and Excel call Shift_JIS (①, ㈱ and 髙 included)
    if configured != "auto":
        return "utf-8-sig" if configured == "utf-8" and head.startswith(b"\xef\xbb\xbf") else configured
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    # CP932 read as UTF-8 fails on nearly every Japanese character, so a file whose
    # non-ASCII bytes are almost all valid UTF-8 is UTF-8 with a few broken bytes (those
    # lines are quarantined later), not CP932. The last bytes may be a character cut in two.
    non_ascii = sum(1 for b in head if b >= 0x80)
    tolerated = max(1, non_ascii // 100)
    for encoding in ("utf-8", "cp932"):
        errors = head[:-4].decode(encoding, errors="replace").count("\ufffd") if len(head) > 4 else 0
        if errors <= tolerated and (encoding == "utf-8" or errors < non_ascii // 2):
            return encoding
    raise InputError(
        f"{path.name} is neither UTF-8 nor CP932 (Shift_JIS); re-export it as UTF-8 or set source.encoding"
    )


# --- reading records ----------------------------------------------------------------------


def read_records(source: SourceInfo, settings: SourceSettings) -> Iterator[SourceRecord]:
    """Yield every record of the source in file order."""
    if source.format in ("csv", "tsv"):
        yield from _read_delimited(source, settings, "\t" if source.format == "tsv" else ",")
    elif source.format == "jsonl":
        yield from _read_jsonl(source, settings)
    elif source.format == "parquet":
        yield from _read_parquet(source, settings)
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


def _check_header(header: list[str], settings: SourceSettings, name: str) -> None:
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError(f"{name}: column {column!r} appears twice in the header")
        seen.add(column)
    missing = [c for c in required_columns(settings) if c not in seen]
    if missing:
        found = ", ".join(header[:20]) or "(none)"
        raise InputError(
            f"{name}: column(s) {', '.join(missing)} not found (columns found: {found}); "
            "map your columns in the config under source.columns / source.segments"
        )


def _physical_lines(handle: BinaryIO, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, bytes without newline, too_long); too-long lines are cut at ``limit``."""
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        too_long = len(line) > limit and not line.endswith(b"\n")
        if too_long:  # skip the rest of this line without holding it in memory
            while (rest := handle.readline(limit)) and not rest.endswith(b"\n"):
                pass
        yield number, line.rstrip(b"\r\n"), too_long


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


def _read_delimited(source: SourceInfo, settings: SourceSettings, delimiter: str) -> Iterator[SourceRecord]:
    assert source.encoding is not None
    limit = settings.max_record_bytes
    csv.field_size_limit(max(csv.field_size_limit(), limit))  # our own record limit is the one that counts
    header: list[str] | None = None
    with source.path.open("rb") as handle:
        lines = _physical_lines(handle, limit)
        pending: list[tuple[int, bytes, bool]] = []  # lines pushed back after a broken record

        def next_line() -> tuple[int, bytes, bool] | None:
            if pending:
                return pending.pop(0)
            return next(lines, None)

        while (first := next_line()) is not None:
            start, data, too_long = first
            if too_long:
                yield _broken(
                    start,
                    data,
                    source.encoding,
                    ReasonCode.RECORD_TOO_LARGE,
                    f"line longer than {limit} bytes (source.max_record_bytes)",
                )
                continue
            record_lines = [first]
            try:
                text = data.decode(source.encoding)
            except UnicodeDecodeError as exc:
                yield _broken(
                    start,
                    data,
                    source.encoding,
                    ReasonCode.UNDECODABLE_TEXT,
                    f"bytes not valid {source.encoding} at offset {exc.start}",
                )
                continue
            if header is None and not text.strip():
                continue
            # a quoted field may span lines: gather them until the quote closes
            size = len(data)
            broken = False
            while _ends_inside_quotes(text, delimiter):
                following = next_line()
                if following is None or following[2] or size + len(following[1]) > limit:
                    if following is not None:
                        pending.insert(0, following)
                    broken = True
                    break
                record_lines.append(following)
                size += len(following[1])
                try:
                    text += "\n" + following[1].decode(source.encoding)
                except UnicodeDecodeError:
                    broken = True
                    break
            if header is None:
                if broken:
                    raise InputError(f"{source.path.name}: the header line has an unclosed quote")
                try:
                    header = [_clean_header(h) for h in next(csv.reader([text], delimiter=delimiter))]
                except csv.Error as exc:
                    raise InputError(f"{source.path.name}: cannot read the header line ({exc})") from exc
                if header and header[0].startswith("\ufeff"):
                    header[0] = header[0][1:]
                _check_header(header, settings, source.path.name)
                continue
            if not text.strip() and len(record_lines) == 1:
                continue  # blank line: not a record
            values = None if broken else _parse_csv_record(text, delimiter)
            if values is None or len(values) != len(header):
                if len(record_lines) > 1:
                    # an unclosed quote swallowed the following lines: reject only the first
                    # line and read the others again as records of their own
                    pending[0:0] = record_lines[1:]
                    detail = "unclosed quote: the quoted field does not end on this line"
                    yield _broken(start, data, source.encoding, ReasonCode.MALFORMED_RECORD, detail)
                    continue
                found = "unparseable" if values is None else f"{len(values)}"
                detail = f"expected {len(header)} fields, found {found}"
                yield _broken(start, data, source.encoding, ReasonCode.MALFORMED_RECORD, detail)
                continue
            yield SourceRecord(source_row=start, fields=dict(zip(header, values, strict=True)), raw=text)


def _parse_csv_record(text: str, delimiter: str) -> list[str] | None:
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def _clean_header(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lstrip("\ufeff")


def _broken(row: int, data: bytes, encoding: str, reason: ReasonCode, detail: str) -> SourceRecord:
    raw = data[: _PAYLOAD_VALUE_CHARS * 4].decode(encoding, errors="backslashreplace")
    return SourceRecord(source_row=row, fields=None, raw=raw, problem=(reason, detail))


def _read_jsonl(source: SourceInfo, settings: SourceSettings) -> Iterator[SourceRecord]:
    assert source.encoding is not None
    limit = settings.max_record_bytes
    with source.path.open("rb") as handle:
        for number, data, too_long in _physical_lines(handle, limit):
            if too_long:
                yield _broken(
                    number,
                    data,
                    source.encoding,
                    ReasonCode.RECORD_TOO_LARGE,
                    f"line longer than {limit} bytes (source.max_record_bytes)",
                )
                continue
            try:
                text = data.decode(source.encoding).lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                yield _broken(
                    number,
                    data,
                    source.encoding,
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
                    source.encoding,
                    ReasonCode.MALFORMED_RECORD,
                    f"not valid JSON: {exc.msg} at column {exc.colno}",
                )
                continue
            except RecursionError:
                detail = "JSON nested too deeply to read"
                yield _broken(number, data, source.encoding, ReasonCode.MALFORMED_RECORD, detail)
                continue
            if not isinstance(value, dict):
                yield _broken(
                    number,
                    data,
                    source.encoding,
                    ReasonCode.MALFORMED_RECORD,
                    f"expected a JSON object, found {type(value).__name__}",
                )
                continue
            yield SourceRecord(source_row=number, fields=value, raw=text)


def _read_parquet(source: SourceInfo, settings: SourceSettings) -> Iterator[SourceRecord]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{source.path.name} is not a readable Parquet file ({exc})") from exc
    _check_header(parquet.schema_arrow.names, settings, source.path.name)
    columns = required_columns(settings)
    row = 0
    for batch in parquet.iter_batches(batch_size=settings.chunk_rows, columns=columns):
        batch = _microsecond_timestamps(batch)
        for values in batch.to_pylist():
            row += 1
            yield SourceRecord(source_row=row, fields=values)


def _microsecond_timestamps(batch: Any) -> Any:
    """Python datetimes hold microseconds; nanosecond columns are truncated rather than refused."""
    import pyarrow as pa

    for i, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            column = batch.column(i).cast(pa.timestamp("us", tz=field.type.tz), safe=False)
            batch = batch.set_column(i, field.name, column)
    return batch


# --- validation ---------------------------------------------------------------------------

_DATE_SLASH = re.compile(
    r"^(\d{4})[/\-.](\d{1,2})[/\-.](\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d+)?)?)?$"
)
_DATE_KANJI = re.compile(
    r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*(?:(\d{1,2})[時:](\d{1,2})分?(?:(\d{1,2})秒?)?)?$"
)
_INTEGRAL = re.compile(r"^[+-]?\d+(?:\.0+)?$")


class RowValidator:
    """Turns source records into responses or quarantine rows.

    It remembers the response ids it has accepted, so the first occurrence of an id wins and
    later ones are quarantined; that memory is the only state that grows with the input.
    """

    def __init__(self, settings: SourceSettings) -> None:
        self._settings = settings
        self._zone = ZoneInfo(settings.timezone)
        self._first_row_of_id: dict[str, int] = {}

    def validate(self, record: SourceRecord) -> Response | QuarantinedRow:
        if record.fields is None:
            reason, detail = record.problem or (ReasonCode.MALFORMED_RECORD, "unreadable record")
            return _quarantine(record, reason, detail)
        cols = self._settings.columns
        fields = record.fields

        response_id = _text(fields.get(cols.response_id))
        responded_at = self._parse_timestamp(fields.get(cols.responded_at))
        response_date = (
            responded_at.astimezone(self._zone).date() if isinstance(responded_at, datetime) else None
        )

        def reject(reason: ReasonCode, detail: str) -> QuarantinedRow:
            return _quarantine(record, reason, detail, response_id or None, response_date)

        if not response_id:
            return reject(ReasonCode.MISSING_RESPONSE_ID, f"column {cols.response_id!r} is empty")
        if len(response_id) > _MAX_ID_CHARS:
            return reject(ReasonCode.FIELD_TOO_LONG, f"response id longer than {_MAX_ID_CHARS} characters")
        if responded_at is None:
            return reject(ReasonCode.MISSING_TIMESTAMP, f"column {cols.responded_at!r} is empty")
        if isinstance(responded_at, str):
            return reject(ReasonCode.BAD_TIMESTAMP, f"cannot read {responded_at[:80]!r} as a date and time")
        score = _parse_score(fields.get(cols.score))
        if isinstance(score, tuple):
            return reject(*score)
        comment = fields.get(cols.comment)
        if comment is None:
            comment = ""
        elif isinstance(comment, int | float) and not isinstance(comment, bool):
            comment = str(comment)
        elif not isinstance(comment, str):
            return reject(ReasonCode.BAD_FIELD_TYPE, f"comment is a {type(comment).__name__}, not text")
        if len(comment) > self._settings.max_comment_chars:
            return reject(
                ReasonCode.FIELD_TOO_LONG,
                f"comment has {len(comment)} characters (source.max_comment_chars is "
                f"{self._settings.max_comment_chars})",
            )
        segments: dict[str, str | None] = {}
        for name, column in self._settings.segments.items():
            value = _text(fields.get(column))
            if len(value) > _MAX_SEGMENT_CHARS:
                return reject(ReasonCode.FIELD_TOO_LONG, f"segment {name!r} longer than {_MAX_SEGMENT_CHARS}")
            segments[name] = value or None
        first_row = self._first_row_of_id.get(response_id)
        if first_row is not None:
            return reject(ReasonCode.DUPLICATE_RESPONSE_ID, f"response id already used on row {first_row}")
        self._first_row_of_id[response_id] = record.source_row
        assert response_date is not None
        return Response(
            response_id=response_id,
            source_row=record.source_row,
            responded_at=responded_at,
            response_date=response_date,
            score=score,
            comment=comment,
            segments=segments,
        )

    def _parse_timestamp(self, value: Any) -> datetime | str | None:
        """An aware UTC datetime; the original text when it cannot be read; None when empty."""
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, date):
            parsed = datetime(value.year, value.month, value.day)
        else:
            text = _text(value)
            if not text:
                return None
            parsed_or_none = _parse_timestamp_text(text)
            if parsed_or_none is None:
                return text
            parsed = parsed_or_none
        if parsed.tzinfo is None:  # naive timestamps are local time in the configured zone
            parsed = parsed.replace(tzinfo=self._zone)
        try:
            utc = parsed.astimezone(UTC)
            utc.astimezone(self._zone)  # the local date must exist too
        except (OverflowError, ValueError):
            return str(value)  # years 1 and 9999 cannot move between zones
        return utc


def _parse_timestamp_text(text: str) -> datetime | None:
    for pattern in (_DATE_SLASH, _DATE_KANJI):
        match = pattern.match(text)
        if match:
            parts = [int(p) if p else 0 for p in match.groups()]
            try:
                return datetime(*parts)  # type: ignore[arg-type]
            except ValueError:
                return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse_score(value: Any) -> int | tuple[ReasonCode, str]:
    if isinstance(value, bool):
        return ReasonCode.BAD_SCORE, f"score {value!r} is not a number"
    if isinstance(value, int):
        score = value
    elif isinstance(value, float):
        if not value.is_integer():
            return ReasonCode.BAD_SCORE, f"score {value!r} is not a whole number"
        score = int(value)
    else:
        text = _text(value)
        if not text:
            return ReasonCode.MISSING_SCORE, "score is empty"
        if not _INTEGRAL.match(text):
            return ReasonCode.BAD_SCORE, f"score {text[:40]!r} is not a whole number"
        score = int(float(text))
    if not 0 <= score <= 10:
        return ReasonCode.SCORE_OUT_OF_RANGE, f"score {score} is outside 0-10"
    return score


def _text(value: Any) -> str:
    """NFKC and trimmed: "１０" is "10", a full-width space is a space."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip()


def _quarantine(
    record: SourceRecord,
    reason: ReasonCode,
    detail: str,
    response_id: str | None = None,
    response_date: date | None = None,
) -> QuarantinedRow:
    return QuarantinedRow(
        source_row=record.source_row,
        stage=Stage.INGEST,
        reason=reason,
        detail=clean_comment(detail).text,  # details quote the offending value
        raw_payload=masked_payload(record),
        response_id=response_id,
        response_date=response_date,
    )


def masked_payload(record: SourceRecord) -> str:
    """The record as JSON with PII masked and long values cut, so quarantine holds no PII."""
    if record.fields is None:
        payload: Any = {"_raw": _mask_value(record.raw)}
    else:
        payload = {str(k): _mask_value(v) for k, v in record.fields.items()}
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


def _mask_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    masked = clean_comment(text).text  # mask first: a cut must not leave half a phone number
    if isinstance(value, int | float) and masked == text:
        return value  # a plain number (a score) stays a number
    if len(masked) > _PAYLOAD_VALUE_CHARS:
        return masked[:_PAYLOAD_VALUE_CHARS] + f"…[cut at {_PAYLOAD_VALUE_CHARS} of {len(masked)} characters]"
    return masked


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
