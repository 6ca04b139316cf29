"""Errors a user can fix, and the reason codes that quarantined rows carry.

A `VocError` is printed by the CLI as one line (no traceback): it always says what to check.
Reason codes reach the quarantine table, so their string values are stable.
"""

from enum import StrEnum


class VocError(Exception):
    """A problem with the user's input, configuration or environment, with what to do about it."""


class ConfigError(VocError):
    """The configuration file or an override is invalid."""


class InputError(VocError):
    """The input file cannot be read as a survey export at all (as opposed to single bad rows)."""


class StoreError(VocError):
    """The result store cannot be opened or does not match the documented schema."""


class StoreBusyError(StoreError):
    """Another process held the store for longer than ``store.lock_timeout``."""


class QuarantineLimitError(VocError):
    """One reason code quarantined more of a run's records than ``source.max_quarantine_share``:
    the export or the settings are wrong, so the run publishes nothing."""


class Stage(StrEnum):
    """The stages of a run, in order (`pipeline.job`). The quarantine table names the one that
    rejected a record, and the runs table times each; the values are stable."""

    INGEST = "ingest"  # read and validate records, keep the run's dates
    NORMALIZE = "normalize"  # NFKC, PII masking, sentences
    TOKENIZE = "tokenize"
    CLASSIFY = "classify"
    TERMS = "terms"
    WRITE = "write"  # result rows built and staged, outside the store's lock
    PUBLISH = "publish"  # the run's partitions replaced, under the lock
    AGGREGATE = "aggregate"
    THEMES = "themes"  # theme discovery replayed from the run's first date
    DRIVERS = "drivers"


class ReasonCode(StrEnum):
    """Why a row was quarantined. Values are stable: BI filters and alerts use them."""

    UNDECODABLE_TEXT = "undecodable_text"
    MALFORMED_RECORD = "malformed_record"
    RECORD_TOO_LARGE = "record_too_large"
    FIELD_TOO_LONG = "field_too_long"
    MISSING_RESPONSE_ID = "missing_response_id"
    DUPLICATE_RESPONSE_ID = "duplicate_response_id"
    MISSING_TIMESTAMP = "missing_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    MISSING_SCORE = "missing_score"
    BAD_SCORE = "bad_score"
    SCORE_OUT_OF_RANGE = "score_out_of_range"
    BAD_FIELD_TYPE = "bad_field_type"
