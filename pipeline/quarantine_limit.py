"""The loud failure: a run that quarantines most of its records for one reason publishes nothing.

A flood of one reason code means the export or the settings are wrong (scores written with a
scale label, the wrong column mapped), not that customers wrote bad rows; publishing would replace
a day's tables with the few rows that happened to pass. The run fails instead, with one line that
names the reason code, a masked example from the quarantine payload and the setting that fixes
it, and every result table stays as it was (the ``runs`` table records the failed run).

A reason code fails the run when it quarantines more than ``source.max_quarantine_share`` of the
records in scope and at least ``source.min_quarantined_to_fail`` records, so a small run with a
stray bad row (1 of 3 records) still publishes. A share of 1.0 turns the check off. The check
runs after staging and before publishing, over the reasons found while reading; a response id
that another run already published is found while publishing and is not counted.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import QuarantineLimitError, ReasonCode
from pipeline.settings import SourceSettings
from pipeline.summary import RunSummary

# what usually fixes a flood of each reason code
_FIXES: dict[str, str] = {
    ReasonCode.BAD_SCORE: "set source.score_pattern to read scores with a scale label",
    ReasonCode.SCORE_OUT_OF_RANGE: "check that source.columns.score names the 0-10 recommendation score",
    ReasonCode.MISSING_SCORE: "check that source.columns.score names the score column",
    ReasonCode.BAD_TIMESTAMP: "check that source.columns.responded_at names the response time column",
    ReasonCode.MISSING_TIMESTAMP: "check that source.columns.responded_at names the response time column",
    ReasonCode.MISSING_RESPONSE_ID: "check that source.columns.response_id names the response id column",
    ReasonCode.DUPLICATE_RESPONSE_ID: "check that source.columns.response_id names a unique id column",
    ReasonCode.UNDECODABLE_TEXT: "set source.encoding to the export's encoding",
    ReasonCode.MALFORMED_RECORD: "set source.format to the export's format",
    ReasonCode.RECORD_TOO_LARGE: "raise source.max_record_bytes",
    ReasonCode.FIELD_TOO_LONG: "raise source.max_comment_chars if the comments are that long",
    ReasonCode.BAD_FIELD_TYPE: "check the columns mapped in source.columns",
}
# the field whose value a reason code is about, shown as the example
_FIELDS: dict[str, str] = {
    ReasonCode.BAD_SCORE: "score",
    ReasonCode.SCORE_OUT_OF_RANGE: "score",
    ReasonCode.BAD_TIMESTAMP: "responded_at",
}
_EXAMPLE_CHARS = 60


def check_quarantine_share(summary: RunSummary, source: SourceSettings) -> None:
    """Raise `QuarantineLimitError` when one reason code took more of the run's records in
    scope than the settings allow (the reason with the most records, when several did)."""
    floods = sorted(
        (-count, reason)
        for reason, count in summary.quarantine_reasons.items()
        if count > source.max_quarantine_share * summary.rows_in and count >= source.min_quarantined_to_fail
    )
    if not floods:
        return
    count, reason = -floods[0][0], floods[0][1]
    example = _example(reason, summary.quarantine_examples.get(reason), source)
    raise QuarantineLimitError(
        f"{count} of {summary.rows_in} records ({count / summary.rows_in:.0%}) were quarantined as "
        f"{reason}{example}; {_FIXES.get(reason, 'check the source settings')}, "
        "or raise source.max_quarantine_share"
    )


def _example(reason: str, payload: str | None, source: SourceSettings) -> str:
    """The example part of the message (", e.g. score '10：非常に薦めたい'") from a quarantined
    record's masked payload: the value the reason is about, else the whole record."""
    try:
        fields: Any = json.loads(payload) if payload else None
    except ValueError:
        return ""
    if not isinstance(fields, dict):
        return ""
    field = _FIELDS.get(reason)
    value = fields.get(getattr(source.columns, field)) if field else None
    if value in (None, ""):
        field, value = "record", fields.get("_raw", json.dumps(fields, ensure_ascii=False))
    text = str(value)
    if len(text) > _EXAMPLE_CHARS:
        text = text[:_EXAMPLE_CHARS] + "…"
    return f", e.g. {field} {text!r}"
