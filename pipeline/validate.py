"""Validation: each source record becomes a `Response` or a `QuarantinedRow` with a reason code
and a PII-masked copy of what was read, so nothing is dropped and nothing personal is kept.

Scores, timestamps (ISO, slashes, Japanese 年月日; without an offset read in the configured
time zone) and ids are parsed here; the first occurrence of a response id wins.

Personal data outside the comment is dealt with here too, before anything is stored: segment
values are masked like comments (`pipeline.normalize.mask_pii`), a response id that holds
personal data becomes its keyed pseudonym (`pipeline.pseudonyms`), and ``source.personal_columns``
are never read into a response or a quarantine payload.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.contracts import QuarantinedRow, Response, SourceRecord
from pipeline.errors import ReasonCode, Stage
from pipeline.normalize import clean_comment, mask_pii
from pipeline.pseudonyms import ResponseIds
from pipeline.settings import SourceSettings

_MAX_ID_CHARS = 200
_MAX_SEGMENT_CHARS = 200
PAYLOAD_VALUE_CHARS = 2000

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
        key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
        self._ids = ResponseIds(key)
        self._payload = PayloadMasker(settings.columns.response_id, settings.personal_columns, self._ids)

    def validate(self, record: SourceRecord) -> Response | QuarantinedRow:
        if record.fields is None:
            reason, detail = record.problem or (ReasonCode.MALFORMED_RECORD, "unreadable record")
            return self._quarantine(record, reason, detail)
        cols = self._settings.columns
        fields = record.fields

        source_id = _text(fields.get(cols.response_id))
        response_id = self._ids.stored(source_id, record.source_row)  # a pseudonym if it is personal
        responded_at = self._parse_timestamp(fields.get(cols.responded_at))
        response_date = (
            responded_at.astimezone(self._zone).date() if isinstance(responded_at, datetime) else None
        )

        def reject(reason: ReasonCode, detail: str) -> QuarantinedRow:
            return self._quarantine(record, reason, detail, response_id or None, response_date)

        if not response_id:
            return reject(ReasonCode.MISSING_RESPONSE_ID, f"column {cols.response_id!r} is empty")
        if len(source_id) > _MAX_ID_CHARS:
            return reject(ReasonCode.FIELD_TOO_LONG, f"response id longer than {_MAX_ID_CHARS} characters")
        if responded_at is None:
            return reject(ReasonCode.MISSING_TIMESTAMP, f"column {cols.responded_at!r} is empty")
        if isinstance(responded_at, str):
            return reject(ReasonCode.BAD_TIMESTAMP, f"cannot read {responded_at[:80]!r} as a date and time")
        score = _parse_score(fields.get(cols.score), self._settings.score_pattern)
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
        segments = self._read_segments(fields)
        if isinstance(segments, tuple):
            return reject(*segments)
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

    def _read_segments(self, fields: dict[str, Any]) -> dict[str, str | None] | tuple[ReasonCode, str]:
        """Segment values masked like comments: a segment may be a staff member's phone number."""
        segments: dict[str, str | None] = {}
        for name, column in self._settings.segments.items():
            value = _text(fields.get(column))
            if len(value) > _MAX_SEGMENT_CHARS:
                return ReasonCode.FIELD_TOO_LONG, f"segment {name!r} longer than {_MAX_SEGMENT_CHARS}"
            segments[name] = masked_segment(value) if value else None
        return segments

    def _quarantine(
        self,
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
            raw_payload=self._payload(record),
            response_id=response_id,
            response_date=response_date,
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


def _parse_score(value: Any, pattern: str | None = None) -> int | tuple[ReasonCode, str]:
    """``pattern`` (source.score_pattern) reads a score with a scale label: its one group
    captures the number of text that is not a plain number, after NFKC."""
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
        number = text
        if pattern and not _INTEGRAL.match(text):
            labelled = re.search(pattern, text)  # re caches the compiled pattern
            number = (labelled.group(1) or "").strip() if labelled else text
        if not _INTEGRAL.match(number):
            return ReasonCode.BAD_SCORE, f"score {text[:40]!r} is not a whole number"
        score = int(float(number))
    if not 0 <= score <= 10:
        return ReasonCode.SCORE_OUT_OF_RANGE, f"score {score} is outside 0-10"
    return score


def _text(value: Any) -> str:
    """NFKC and trimmed: "１０" is "10", a full-width space is a space."""
    if value is None:
        return ""
    return unicodedata.normalize("NFKC", str(value)).strip()


class PayloadMasker:
    """Quarantine payloads under the result tables' rules: values masked like comments, the
    response id as the tables store it, personal columns left out."""

    def __init__(self, id_column: str, personal_columns: list[str], ids: ResponseIds) -> None:
        self._id_column = id_column
        self._personal = frozenset(_column_key(c) for c in personal_columns)
        self._ids = ids

    def __call__(self, record: SourceRecord) -> str:
        """The record as JSON with PII masked and long values cut, so quarantine holds no PII."""
        payload: dict[str, Any]
        if record.fields is None and self._personal:
            # an unreadable record has no columns to leave out, so none of its text is kept
            payload = {"_raw_withheld": f"{len(record.raw)} characters (source.personal_columns is set)"}
        elif record.fields is None:
            payload = {"_raw": _mask_value(record.raw)}
        else:
            payload = {
                str(k): self._id_value(v, record.source_row) if k == self._id_column else _mask_value(v)
                for k, v in record.fields.items()
                if _column_key(str(k)) not in self._personal
            }
        return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)

    def _id_value(self, value: Any, source_row: int) -> Any:
        """The pseudonym as the quarantine's response_id holds it, so the two can be matched."""
        text = _text(value)
        stored = self._ids.stored(text, source_row)
        return stored if stored != text else _mask_value(value)


def _column_key(name: str) -> str:
    """Column names compared as the CSV reader cleans headers, so a full-width name still matches."""
    return unicodedata.normalize("NFKC", name).strip()


def _mask_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    masked = clean_comment(text).text  # mask first: a cut must not leave half a phone number
    if isinstance(value, int | float) and masked == text:
        return value  # a plain number (a score) stays a number
    if len(masked) > PAYLOAD_VALUE_CHARS:
        return masked[:PAYLOAD_VALUE_CHARS] + f"…[cut at {PAYLOAD_VALUE_CHARS} of {len(masked)} characters]"
    return masked


@functools.lru_cache(maxsize=4096)
def masked_segment(value: str) -> str:
    """A segment value as stored. Segments repeat a few values over every row (channels, plans), so
    each distinct value goes through the masker once."""
    return mask_pii(value).text
