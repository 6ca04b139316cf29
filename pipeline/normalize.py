"""Text normalisation: NFKC, whitespace, Japanese PII masking and sentence splitting.

Masking runs before anything is stored: the result tables only ever see masked text.
Bump ``NORMALIZER_VERSION`` whenever a rule here changes what comes out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

NORMALIZER_VERSION = "ja-norm-1"


class PiiKind(StrEnum):
    """Placeholder names; the masked text carries them as ``[EMAIL]``, ``[PHONE]``…"""

    URL = "URL"
    EMAIL = "EMAIL"
    CARD = "CARD"
    PHONE = "PHONE"
    POSTCODE = "POSTCODE"
    ID = "ID"


PLACEHOLDERS = frozenset(kind.value for kind in PiiKind)

# Characters people type between digit groups. NFKC already maps full-width "－" to "-";
# the long-vowel mark, minus sign and dashes come from Japanese IMEs and survive NFKC.
_SEP = r"[-‐‑‒–—―−ー]"
_SEP_OR_SPACE = r"[-‐‑‒–—―−ー ]"
_PHONE_SEP = r"[-‐‑‒–—―−ー .]"

# Python's \w and \d also match kana and kanji, so boundaries name ASCII explicitly:
# "折り返しは090-1234-5678" must match right after は.
_NOT_AFTER = r"(?<![0-9A-Za-z])"
_NOT_BEFORE = r"(?![0-9])"
_ID_LABELS = r"(?:(?:注文|受付|会員|オーダー|問い?合わ?せ|伝票|追跡|予約|顧客|契約|管理|お客様)番号|ID|No\.)"

# Order matters: URLs and e-mails contain digits that the number patterns would eat, and a
# labelled order number must not be taken for a card or phone number.
_PII_PATTERNS: list[tuple[PiiKind, re.Pattern[str]]] = [
    (PiiKind.URL, re.compile(r"(?:https?://|www\.)[^\s<>\"'「」()（）]+", re.IGNORECASE)),
    (PiiKind.EMAIL, re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")),
    (
        PiiKind.ID,
        re.compile(rf"(?P<keep>{_ID_LABELS}[\s:：は#]*)[A-Za-z]{{0,4}}\d[0-9A-Za-z\-]{{3,}}"),
    ),
    # 13-19 digits in groups of four: card numbers (no Luhn check: masking too much is safe)
    (
        PiiKind.CARD,
        re.compile(
            rf"{_NOT_AFTER}\d{{4}}(?:{_SEP_OR_SPACE}?\d{{4}}){{2}}{_SEP_OR_SPACE}?\d{{1,7}}{_NOT_BEFORE}"
        ),
    ),
    (
        PiiKind.PHONE,
        re.compile(
            rf"{_NOT_AFTER}(?:"
            rf"\+81{_PHONE_SEP}?\(?0?\)?\d{{1,4}}{_PHONE_SEP}?\d{{1,4}}{_PHONE_SEP}?\d{{3,4}}"
            rf"|0\d{{1,4}}{_PHONE_SEP}\d{{1,4}}{_PHONE_SEP}\d{{3,4}}"  # 03-1234-5678, 090 1234 5678
            rf"|\(0\d{{1,4}}\){_PHONE_SEP}?\d{{1,4}}{_PHONE_SEP}?\d{{3,4}}"  # (03)1234-5678
            r"|0\d{1,4}\(\d{1,4}\)\d{3,4}"  # 03(1234)5678
            r"|0\d{9,10}"  # 09012345678
            rf"){_NOT_BEFORE}"
        ),
    ),
    (
        PiiKind.POSTCODE,
        re.compile(rf"〒\s*\d{{3}}{_SEP}?\d{{4}}|{_NOT_AFTER}\d{{3}}{_SEP}\d{{4}}{_NOT_BEFORE}"),
    ),
    # any other long run of digits could identify someone (member or order numbers)
    (PiiKind.ID, re.compile(rf"{_NOT_AFTER}\d{{7,}}{_NOT_BEFORE}")),
]

_DIGIT = re.compile(r"\d")  # the same digits the patterns' \d matches
_POSTCODE_AFTER_LABEL = re.compile(r"(?P<keep>郵便番号[\s:：は]*)\d{7}(?![0-9])")

# Characters that Unicode-to-Shift_JIS conversions map differently (the "wave dash problem"):
# the same comment exported from a Mac, a web form or Japanese Excel must give the same text.
_CP932_VARIANTS = str.maketrans({"\u301c": "~", "\u2212": "-", "\u2016": "\u2225", "\u2014": "\u2015"})
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{2,}")


@dataclass(frozen=True, slots=True)
class MaskedText:
    text: str
    pii_kinds: tuple[PiiKind, ...]  # sorted, unique: which kinds were found


def normalize_text(raw: str) -> str:
    """NFKC, one form for CP932 look-alikes, unified line breaks, single spaces, no control characters."""
    text = unicodedata.normalize("NFKC", raw).translate(_CP932_VARIANTS)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", text).strip()


def mask_pii(text: str) -> MaskedText:
    """Replace personal data with typed placeholders. Expects normalised (NFKC) text."""
    found: set[PiiKind] = set()

    def masker(kind: PiiKind) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            found.add(kind)
            # a labelled number keeps its label: "注文番号：[ID]" still says what it was
            keep = match.groupdict().get("keep") or ""
            return f"{keep}[{kind.value}]"

        return replace

    # Most comments hold no digit, "@" or web address: skip the patterns that could not match
    # (masking adds none of these, so the result is the same as running every pattern).
    has_digit = _DIGIT.search(text) is not None
    lowered = text.lower()
    has_url = "http" in lowered or "www." in lowered
    if has_digit:
        text = _POSTCODE_AFTER_LABEL.sub(masker(PiiKind.POSTCODE), text)
    for kind, pattern in _PII_PATTERNS:
        if has_digit or (kind is PiiKind.URL and has_url) or (kind is PiiKind.EMAIL and "@" in text):
            text = pattern.sub(masker(kind), text)
    return MaskedText(text=text, pii_kinds=tuple(sorted(found)))


def clean_comment(raw: str | None) -> MaskedText:
    """Normalise then mask: the only text form that may reach a result table."""
    if raw is None:
        return MaskedText(text="", pii_kinds=())
    return mask_pii(normalize_text(raw))


# --- sentence splitting -------------------------------------------------------------------

_OPENING = "「『（(【〔［[〈《"
_CLOSING = "」』）)】〕］]〉》"
_TERMINATORS = "。!?！？.…"
_TRAILERS = "」』）)】〕］]〉》\"'〜~ーw笑"


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        0x1F000 <= code <= 0x1FAFF
        or 0x2600 <= code <= 0x27BF
        or code in (0xFE0F, 0x200D)
        or 0x1F3FB <= code <= 0x1F3FF
    )


def split_sentences(text: str) -> list[str]:
    """Split normalised text into sentences.

    Boundaries: 。 ! ? and ellipses (runs count once), line breaks, and emoji followed by
    more text (casual comments often end a sentence with an emoji instead of 。). Nothing
    splits inside 「」 or brackets, so 「少々お待ちください。」と言われた stays one sentence.
    A dot between digits or letters (3.5, example.co.jp) is not a boundary.
    """
    sentences: list[str] = []
    current: list[str] = []
    depth = 0
    i, n = 0, len(text)

    def flush() -> None:
        sentence = "".join(current).strip()
        if sentence:
            sentences.append(sentence)
        current.clear()

    while i < n:
        char = text[i]
        if char == "\n":
            if depth == 0 or _unbalanced_to_end(text, i):
                depth = 0
                flush()
            else:
                current.append(" ")
            i += 1
            continue
        current.append(char)
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING and depth > 0:
            depth -= 1
        if depth == 0 and char in _TERMINATORS and not _is_inner_dot(text, i):
            i += 1
            while i < n and (text[i] in _TERMINATORS or text[i] in _TRAILERS or _is_emoji(text[i])):
                current.append(text[i])
                i += 1
            flush()
            continue
        if depth == 0 and _is_emoji(char):
            i += 1
            while i < n and (_is_emoji(text[i]) or text[i] in _TERMINATORS):
                current.append(text[i])
                i += 1
            flush()
            continue
        i += 1
    flush()
    return sentences


def _is_inner_dot(text: str, i: int) -> bool:
    if text[i] != ".":
        return False
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    return before.isascii() and before.isalnum() and after.isascii() and after.isalnum()


def _unbalanced_to_end(text: str, i: int) -> bool:
    """True when an open bracket before ``i`` never closes: then a line break still splits."""
    rest = text[i:]
    return not any(c in _CLOSING for c in rest)
