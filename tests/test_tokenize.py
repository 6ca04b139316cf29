"""Tokenization on real fugashi + unidic-lite output (written against unidic-lite 1.0.8)."""

import csv

import pytest

from pipeline.tokenize import (
    Token,
    clean_lemma,
    dictionary_version,
    get_tagger,
    is_content,
    tokenize,
)
from tests.conftest import SAMPLE_CSV


def test_tokens_carry_surface_lemma_and_pos() -> None:
    tokens = tokenize("スタッフの対応が遅くて残念でした")
    assert [t.surface for t in tokens][:5] == ["スタッフ", "の", "対応", "が", "遅く"]
    by_surface = {t.surface: t for t in tokens}
    assert by_surface["遅く"].lemma == "遅い"
    assert by_surface["遅く"].pos == "形容詞-一般"
    assert by_surface["スタッフ"].lemma == "スタッフ"  # UniDic writes スタッフ-staff
    assert by_surface["対応"].pos.startswith("名詞")


@pytest.mark.parametrize(
    ("text", "lemmas"),
    [
        ("配送が3日も遅れた", ["配送", "遅れる"]),
        ("料金は高いけどスタッフは親切", ["料金", "高い", "スタッフ", "親切"]),
        ("アプリが落ちる。iPhoneで", ["アプリ", "落ちる", "iPhone"]),
        ("特になし", []),
        ("[EMAIL]に連絡してください", ["連絡"]),
        ("wwwww", []),
    ],
)
def test_content_words(text: str, lemmas: list[str]) -> None:
    assert [t.lemma for t in tokenize(text) if t.is_content] == lemmas


def test_one_tagger_per_process() -> None:
    assert get_tagger() is get_tagger()


def test_dictionary_version_is_recorded() -> None:
    assert dictionary_version().startswith("unidic-lite-1.0.8/")


@pytest.mark.parametrize(
    ("lemma", "surface", "expected"),
    [
        ("スタッフ-staff", "スタッフ", "スタッフ"),
        (None, "ｗ", "ｗ"),
        ("*", "謎", "謎"),
        ("遅い", "遅く", "遅い"),
    ],
)
def test_clean_lemma(lemma: str | None, surface: str, expected: str) -> None:
    assert clean_lemma(lemma, surface) == expected


def _token_from_parsed_features(word) -> Token:  # type: ignore[no-untyped-def]
    """The slow, obviously right way: fugashi's own parse of every feature field."""
    feature = word.feature
    lemma = clean_lemma(feature.lemma, word.surface)
    pos1, pos2 = feature.pos1 or "", feature.pos2 or ""
    return Token(word.surface, lemma, f"{pos1}-{pos2}", is_content(word.surface, lemma, pos1, pos2))


def test_reused_tokens_match_fugashis_own_feature_parse() -> None:
    """Tokens are built from the raw feature string and cached; on every sample comment, and on
    quoted fields (the lemma of ","), unknown words and placeholders, they equal the tokens built
    from fugashi's parsed features."""
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as handle:
        texts = [row["ご意見・ご感想"] or "" for row in csv.DictReader(handle)]
    texts += ['a,b,"c"です', "，、。", "ｱﾌﾟﾘﾟﾟが落ちる", "𠮷野家ゞゞ", "[PHONE]に電話", "😀👍 wwww"]
    tagger = get_tagger()
    for text in texts:
        expected = [_token_from_parsed_features(word) for word in tagger(text)]
        assert tokenize(text) == expected, text
        assert tokenize(text) == expected, text  # again, from the cache
