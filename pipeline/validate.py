"""Validation: each source record becomes a `Response` or a `QuarantinedRow` with a reason code
and a PII-masked copy of what was read, so nothing is dropped and nothing personal is kept.

Scores, timestamps (ISO, slashes, Japanese 年月日; without an offset read in the configured
time zone) and ids are parsed here; the first occurrence of a response id wins.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.contracts import QuarantinedRow, Response, SourceRecord
from pipeline.errors import ReasonCode, Stage
from pipeline.normalize import clean_comment
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
    if len(masked) > PAYLOAD_VALUE_CHARS:
        return masked[:PAYLOAD_VALUE_CHARS] + f"…[cut at {PAYLOAD_VALUE_CHARS} of {len(masked)} characters]"
    return masked
