"""Japanese tokenization with fugashi + unidic-lite: surface, lemma, part of speech.

fugashi's Tagger cannot be pickled, so each process creates its own lazily through
`get_tagger()`; never pass one between processes or into a Prefect task.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.metadata import version

import fugashi

from pipeline.normalize import PLACEHOLDERS

# Parts of speech that carry meaning for keywords (UniDic pos1 values).
_CONTENT_POS = frozenset({"名詞", "動詞", "形容詞", "形状詞", "副詞"})
# Numerals carry no topic. UniDic's 非自立可能 class is too broad to drop (遅れる is in it),
# so grammar-only words are listed by lemma instead.
_EXCLUDED_POS2 = frozenset({"数詞"})
_STOP_LEMMAS = frozenset(
    {"為る", "有る", "居る", "成る", "来る", "行く", "言う", "思う", "下さる", "頂く", "貰う",
     "呉れる", "遣る", "仕舞う", "置く", "見える", "出来る", "事", "物", "為", "様", "所", "時",
     "方", "其れ", "此れ", "今回", "特に", "大変", "本当", "とても", "ちょっと", "少し", "もう",
     "又", "何時も", "御", "さん", "様々", "等", "中", "無し", "よう", "ところ", "こと", "もの",
     "ない", "無い", "w", "笑", "欲しい", "過ぎる", "侭", "日"}
)  # fmt: skip
_LOANWORD_GLOSS = re.compile(r"-[A-Za-z][A-Za-z0-9_\-]*$")


@dataclass(frozen=True, slots=True)
class Token:
    surface: str
    lemma: str
    pos: str  # pos1-pos2, e.g. 名詞-普通名詞
    is_content: bool


@functools.cache
def get_tagger() -> fugashi.Tagger:
    """One Tagger per process, created on first use (unidic-lite is found automatically)."""
    try:
        return fugashi.Tagger()
    except RuntimeError as exc:  # fugashi's own message says which dictionary it looked for
        raise RuntimeError(
            f"fugashi could not start with unidic-lite ({exc}); reinstall with "
            "`pip install --force-reinstall unidic-lite==1.0.8 fugashi`"
        ) from exc


# Bump when the content-word rules above change: keywords and terms change with them.
KEYWORD_RULES_VERSION = "kw-2"


@functools.cache
def dictionary_version() -> str:
    """Stamped on rows: UniDic updates change lemmas and therefore keywords and drivers."""
    info = get_tagger().dictionary_info[0]
    return f"unidic-lite-{version('unidic-lite')}/sysdic-v{info['version']}/{KEYWORD_RULES_VERSION}"


def clean_lemma(lemma: str | None, surface: str) -> str:
    """UniDic lemma without the English gloss of loanwords (スタッフ-staff → スタッフ)."""
    if not lemma or lemma == "*":
        return surface
    return _LOANWORD_GLOSS.sub("", lemma) or surface


def tokenize(text: str) -> list[Token]:
    """The sentence's tokens.

    Surveys repeat sentences (「特になし」) and use a few thousand distinct words, so both are
    remembered per process: a repeated sentence is not parsed again, and each (surface,
    feature) pair becomes a `Token` once. Both memories are bounded.
    """
    known = _SENTENCES.get(text)
    if known is not None:
        return list(known)
    tokens: list[Token] = []
    for word in get_tagger()(text):
        key = (word.surface, word.feature_raw)
        token = _TOKENS.get(key)
        if token is None:
            if len(_TOKENS) >= _TOKEN_CACHE_LIMIT:
                _TOKENS.clear()
            token = _TOKENS[key] = _make_token(word)
        tokens.append(token)
    if len(_SENTENCES) >= _SENTENCE_CACHE_LIMIT:
        _SENTENCES.clear()
    _SENTENCES[text] = tuple(tokens)
    return tokens


_TOKENS: dict[tuple[str, str], Token] = {}
_TOKEN_CACHE_LIMIT = 200_000
_SENTENCES: dict[str, tuple[Token, ...]] = {}
_SENTENCE_CACHE_LIMIT = 50_000


def _make_token(word: fugashi.UnidicNode) -> Token:
    # UniDic's fields: pos1, pos2, pos3, pos4, cType, cForm, lForm, lemma, ... (later ones
    # such as aConType are often quoted CSV; only the first eight are read here)
    fields = word.feature_raw.split(",", 8)
    if any('"' in field for field in fields[:8]):  # a quoted field among them: let fugashi parse it
        feature = word.feature
        pos1, pos2, lemma = feature.pos1 or "", feature.pos2 or "", feature.lemma
    else:
        pos1 = fields[0]
        pos2 = fields[1] if len(fields) > 1 else ""
        lemma = fields[7] if len(fields) > 7 else None  # unknown words have no lemma
    surface = word.surface
    lemma = clean_lemma(lemma, surface)
    return Token(surface, lemma, f"{pos1}-{pos2}", is_content(surface, lemma, pos1, pos2))


def is_content(surface: str, lemma: str, pos1: str, pos2: str) -> bool:
    """Whether a word counts as a keyword: a content part of speech, not a numeral, a
    grammar-only lemma, a masked placeholder or noise."""
    return (
        pos1 in _CONTENT_POS
        and pos2 not in _EXCLUDED_POS2
        and lemma not in _STOP_LEMMAS
        and surface not in PLACEHOLDERS
        and not _is_noise(lemma)
    )


def noun_phrases(tokens: list[Token]) -> list[str]:
    """Runs of two or more nouns joined (配送 + 遅延 → 配送遅延, 解約 + 手続き → 解約手続き).

    Compound nouns name problems more precisely than their parts; numerals and masked
    placeholders break a run, and a run needs at least one content word."""
    phrases: list[str] = []
    run: list[Token] = []
    for token in [*tokens, None]:
        if (
            token is not None
            and token.pos.startswith("名詞-")
            and not token.pos.endswith("-数詞")
            and (token.surface not in PLACEHOLDERS)
        ):
            run.append(token)
            continue
        if len(run) >= 2 and any(t.is_content for t in run):
            phrases.append("".join(t.lemma for t in run))
        run = []
    return phrases


def _is_noise(lemma: str) -> bool:
    """Single kana, laughter (wwww) and bare symbols are not keywords."""
    if len(lemma) < 2:
        return lemma.isascii() or "\u3040" <= lemma <= "\u30ff"
    return set(lemma.lower()) <= {"w"} or not any(c.isalnum() for c in lemma)
