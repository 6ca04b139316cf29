"""The tiny Japanese BERT fixture: loads the ordinary way, tokenizes like cl-tohoku, is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tiny_model import SENTENCES, SPECIAL_TOKENS, build_tiny_bert, build_vocab


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_folder)


@pytest.fixture(scope="module")
def tiny_model(tiny_folder: Path) -> Any:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_folder)
    model.eval()
    return model


def test_folder_is_small_and_complete(tiny_folder: Path) -> None:
    names = {p.name for p in tiny_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"} <= names
    assert sum(p.stat().st_size for p in tiny_folder.iterdir()) < 1_000_000


def test_loads_through_auto_classes(tiny_model: Any, tiny_tokenizer: Any) -> None:
    from transformers import BertModel

    assert isinstance(tiny_model, BertModel)
    assert tiny_model.config.hidden_size == 32
    assert tiny_model.config.num_hidden_layers == 2
    assert tiny_model.config.vocab_size == len(tiny_tokenizer.get_vocab()) == len(build_vocab())


def test_tokenizer_is_japanese_bert_with_fugashi(tiny_tokenizer: Any) -> None:
    import fugashi
    from transformers import BertJapaneseTokenizer
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

    assert isinstance(tiny_tokenizer, BertJapaneseTokenizer)
    assert tiny_tokenizer.word_tokenizer_type == "mecab"
    assert tiny_tokenizer.subword_tokenizer_type == "wordpiece"
    word_tokenizer: Any = tiny_tokenizer.word_tokenizer
    assert isinstance(word_tokenizer, MecabTokenizer)
    assert isinstance(word_tokenizer.mecab, fugashi.GenericTagger)
    # Word-level pieces from MeCab + unidic-lite, not single characters.
    assert tiny_tokenizer.tokenize("配送が遅い") == ["配送", "が", "遅い"]


def test_vocabulary_covers_the_built_in_sentences(tiny_tokenizer: Any) -> None:
    vocab = build_vocab()
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab[len(SPECIAL_TOKENS) :] == sorted(vocab[len(SPECIAL_TOKENS) :])
    assert len(SENTENCES) >= 100
    for sentence in SENTENCES:
        assert "[UNK]" not in tiny_tokenizer.tokenize(sentence), sentence
    # Known characters in an unseen word fall back to ## pieces rather than [UNK].
    assert tiny_tokenizer.tokenize("遅配") == ["遅", "##配"]


def test_forward_pass_shape(tiny_model: Any, tiny_tokenizer: Any) -> None:
    import torch

    texts = ["配送が遅い", "スタッフの対応が親切でした", "アプリが使いやすい"]
    batch = tiny_tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert batch["input_ids"][0, 0].item() == tiny_tokenizer.cls_token_id
    with torch.no_grad():
        output = tiny_model(**batch)
    assert output.last_hidden_state.shape == (len(texts), batch["input_ids"].shape[1], 32)
    assert torch.isfinite(output.last_hidden_state).all()


def test_same_seed_same_model(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel

    first = build_tiny_bert(tmp_path / "a", seed=7)
    second = build_tiny_bert(tmp_path / "b", seed=7)
    other = build_tiny_bert(tmp_path / "c", seed=8)
    assert (first / "vocab.txt").read_bytes() == (second / "vocab.txt").read_bytes()
    assert (first / "tokenizer_config.json").read_bytes() == (second / "tokenizer_config.json").read_bytes()

    states = [AutoModel.from_pretrained(folder).state_dict() for folder in (first, second, other)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
    assert not torch.equal(
        states[0]["embeddings.word_embeddings.weight"], states[2]["embeddings.word_embeddings.weight"]
    )
