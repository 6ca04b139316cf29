import csv

import pytest

from pipeline.normalize import (
    _PII_PATTERNS,
    _POSTCODE_AFTER_LABEL,
    PiiKind,
    clean_comment,
    mask_pii,
    normalize_text,
    split_sentences,
)
from tests.conftest import SAMPLE_CSV, SAMPLE_PII


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ｱﾌﾟﾘが使いにくい", "アプリが使いにくい"),  # half-width katakana with voicing marks
        ("ＡＰＰで１０日待った", "APPで10日待った"),  # full-width alphanumerics
        ("  前後の空白\u3000と　全角スペース  ", "前後の空白 と 全角スペース"),
        ("一行目\r\n\r\n\r\n二行目", "一行目\n二行目"),
        ("ゼロ幅\u200bスペース\ufeff", "ゼロ幅スペース"),
        ("", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("連絡は taro.yamada@example.co.jp まで", PiiKind.EMAIL, "taro.yamada@example.co.jp"),
        ("折り返しは090-1234-5678までお願いします", PiiKind.PHONE, "090-1234-5678"),
        ("折り返しは０９０－１２３４－５６７８まで", PiiKind.PHONE, "０９０－１２３４－５６７８"),
        ("店舗 03-1234-5678 に電話", PiiKind.PHONE, "03-1234-5678"),
        ("フリーダイヤル0120-123-456", PiiKind.PHONE, "0120-123-456"),
        ("携帯09012345678です", PiiKind.PHONE, "09012345678"),
        ("+81-90-1234-5678 です", PiiKind.PHONE, "+81-90-1234-5678"),
        ("03(1234)5678へ", PiiKind.PHONE, "03(1234)5678"),
        ("090ー1234ー5678", PiiKind.PHONE, "090ー1234ー5678"),  # long-vowel mark from an IME
        ("〒123-4567 東京都", PiiKind.POSTCODE, "123-4567"),
        ("〒１２３－４５６７", PiiKind.POSTCODE, "１２３－４５６７"),
        ("郵便番号1234567です", PiiKind.POSTCODE, "1234567"),
        ("カード 4111 1111 1111 1111 で払った", PiiKind.CARD, "4111 1111 1111 1111"),
        ("https://example.com/order?id=1 を見た", PiiKind.URL, "example.com/order"),
        ("注文番号：A12345678 の件", PiiKind.ID, "A12345678"),
        ("ご注文番号 20260812-55555", PiiKind.ID, "20260812-55555"),
        ("会員番号12345678", PiiKind.ID, "12345678"),
    ],
)
def test_pii_is_masked_with_its_kind(raw: str, kind: PiiKind, value: str) -> None:
    masked = clean_comment(raw)
    assert f"[{kind.value}]" in masked.text
    assert kind in masked.pii_kinds
    assert normalize_text(value) not in masked.text
    assert value not in masked.text


@pytest.mark.parametrize(
    "text",
    ["30分待った", "3.5点くらい", "2026年8月15日に注文", "1万2000円は高い", "10日かかった", "第2位"],
)
def test_ordinary_numbers_are_not_masked(text: str) -> None:
    assert mask_pii(normalize_text(text)).text == normalize_text(text)


def test_labelled_number_keeps_its_label() -> None:
    assert clean_comment("注文番号：A12345678 です").text == "注文番号:[ID] です"


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("配送が遅い。スタッフは親切でした。", ["配送が遅い。", "スタッフは親切でした。"]),
        ("最悪です！！また来ない", ["最悪です!!", "また来ない"]),
        (
            "店員さんに「少々お待ちください。」と言われて30分待った。",
            ["店員さんに「少々お待ちください。」と言われて30分待った。"],
        ),
        ("美味しかった😋また行きます", ["美味しかった😋", "また行きます"]),
        ("遅い…ほんとに。", ["遅い...", "ほんとに。"]),
        ("一行目\n二行目", ["一行目", "二行目"]),
        ("料金は高いけどスタッフは親切", ["料金は高いけどスタッフは親切"]),
        ("example.co.jp を見た。3.5点", ["example.co.jp を見た。", "3.5点"]),
        ("え？？本当に？", ["え??", "本当に?"]),
        ("", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(normalize_text(text)) == sentences


def test_unclosed_bracket_does_not_swallow_line_breaks() -> None:
    assert split_sentences("「閉じない括弧\n次の行") == ["「閉じない括弧", "次の行"]


@pytest.mark.parametrize("wave", ["2〜3日", "2～3日", "2~3日"])
def test_wave_dash_variants_are_one_character(wave: str) -> None:
    # Mac, Windows and CP932 round trips write this dash three ways
    assert normalize_text(wave) == "2~3日"


@pytest.mark.parametrize(
    "phone", ["090 1234 5678", "03 1234 5678", "(03)1234-5678", "(090)1234-5678", "090.1234.5678"]
)
def test_phone_numbers_with_spaces_dots_and_brackets(phone: str) -> None:
    masked = clean_comment(f"連絡先は{phone}です")
    assert masked.text == "連絡先は[PHONE]です"


def _mask_with_every_pattern(text: str) -> tuple[str, tuple[PiiKind, ...]]:
    """mask_pii without its shortcut: every pattern runs on every comment."""
    found: set[PiiKind] = set()

    def masker(kind: PiiKind):  # type: ignore[no-untyped-def]
        def replace(match):  # type: ignore[no-untyped-def]
            found.add(kind)
            return f"{match.groupdict().get('keep') or ''}[{kind.value}]"

        return replace

    text = _POSTCODE_AFTER_LABEL.sub(masker(PiiKind.POSTCODE), text)
    for kind, pattern in _PII_PATTERNS:
        text = pattern.sub(masker(kind), text)
    return text, tuple(sorted(found))


def test_skipping_patterns_that_cannot_match_changes_nothing() -> None:
    """Patterns are skipped for comments without a digit, "@" or web address; on the sample's
    comments and PII values, and on edge cases, the result is that of running them all."""
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as handle:
        texts = [row["ご意見・ご感想"] or "" for row in csv.DictReader(handle)]
    texts += SAMPLE_PII.read_text(encoding="utf-8").splitlines()
    texts += ["HTTPS://EXAMPLE.COM/a", "WWW.example.jp を見て", "A.B@EXAMPLE.CO.JP", "〒１２３－４５６７",
              "郵便番号1234567", "注文番号：AB12345", "tel:+81-3-1234-5678", "٣٤٥٦٧٨٩٠ (Arabic-Indic digits)",
              "特になし", "http://例え.jp/パス?x=1"]  # fmt: skip
    for raw in texts:
        text = normalize_text(raw)
        masked = mask_pii(text)
        assert (masked.text, masked.pii_kinds) == _mask_with_every_pattern(text), raw
