"""Keyed pseudonyms for response ids that carry personal data.

Some exports use an e-mail address, a phone number or a member number as the response id. The
comment masker (`pipeline.normalize.mask_pii`) decides whether an id holds such data, so ids
and comments follow one definition of personal data. Such an id is stored as
HMAC-SHA256(key, id): the same id gives the same pseudonym on every run, so duplicates are
still caught and a re-run replaces the same rows, yet someone holding only the tables cannot
test a guessed address or number against them. Ordinary ids (R20260701-0001) stay as they are.

The key comes from ``$VOC_PSEUDONYM_KEY`` (or ``source.pseudonym_key``) and is never stored:
the config hash covers only `key_id`. Without a key a run stops at the first id that needs
one, naming the setting. There is no fallback: an unkeyed hash of a phone number is undone by
hashing every phone number, and a key generated beside the store travels with its backups.
Exports whose ids hold nothing personal need no key at all.
"""

from __future__ import annotations

import hashlib
import hmac

from pipeline.errors import ConfigError
from pipeline.normalize import PiiKind, mask_pii

PSEUDONYM_KEY_ENV = "VOC_PSEUDONYM_KEY"
PSEUDONYM_KEY_MIN_CHARS = 16
# the scheme's version: a pseudonym says which rules made it, and another scheme gets another prefix
PSEUDONYM_PREFIX = "pid1-"
_PSEUDONYM_HEX_CHARS = 32  # 128 bits: two ids of one store never meet by chance
_KEY_ID_MESSAGE = b"voc pseudonym key id"
_ID_DOMAIN = b"response_id\x00"  # the key could sign other fields one day; their pseudonyms must differ


def key_id(key: str) -> str:
    """Names a key without revealing it; a new key gives a new config hash, as it gives new pseudonyms."""
    return hmac.new(key.encode(), _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:12]


class ResponseIds:
    """Response ids as the tables store them."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    def stored(self, response_id: str, source_row: int) -> str:
        """The id itself, or its pseudonym when the masker finds personal data in it. Raises
        `ConfigError` (without quoting the id) when it needs a pseudonym and there is no key."""
        found = mask_pii(response_id).pii_kinds
        if not found or _respondent_number(response_id, found):
            return response_id
        if self._key is None:
            kinds = ", ".join(kind.value for kind in found)
            raise ConfigError(
                f"the response id on row {source_row} holds personal data ({kinds}) and no pseudonym "
                f"key is set: set {PSEUDONYM_KEY_ENV} (or source.pseudonym_key) to a secret of at least "
                f"{PSEUDONYM_KEY_MIN_CHARS} characters, e.g. from `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`, and keep it: the same key gives the same pseudonyms"
            )
        digest = hmac.new(self._key, _ID_DOMAIN + response_id.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:_PSEUDONYM_HEX_CHARS]


def _respondent_number(response_id: str, found: tuple[PiiKind, ...]) -> bool:
    """A bare number that only the catch-all long-digits rule flags is the survey tool's own
    respondent number (SurveyMonkey's are 11 digits), not a person's; a number shaped like a phone,
    card or postcode still counts as personal."""
    return response_id.isdigit() and set(found) == {PiiKind.ID}
