"""The fast classify path: trimmed vocabulary + int8 ONNX Runtime, against the PyTorch reference.

Export, caching and versioning are tested on tiny random encoders (one WordPiece BERT like a
cl-tohoku model, which is exported untrimmed, and one E5-style Unigram encoder, which is trimmed
first). Agreement with the reference path is tested on the real default model (``slow``).
Timings belong to ``bench/``, not here.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from models import fast_encoder as fe
from models.classifier import TextClassifier
from models.embedding import PaddingStats, embed
from pipeline.normalize import clean_comment, split_sentences
from pipeline.taxonomy import Taxonomy
from tests.conftest import SAMPLE_CSV
from tests.tiny_model import build_tiny_bert, build_tiny_unigram

TEXTS = ["配送が遅い", "配送が遅いです", "遅い", "スタッフがとても親切でした", "アプリが落ちる。"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fast-cache")


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, Path]:
    source = build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")
    return source, fe.fast_encoder_folder(source, cache)


@pytest.fixture(scope="module")
def unigram(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, Path]:
    source = build_tiny_unigram(tmp_path_factory.mktemp("tiny-e5") / "tiny-e5")
    return source, fe.fast_encoder_folder(source, cache)


def _reference(source: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source)
    model.eval()
    return model, AutoTokenizer.from_pretrained(source)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_int8_vectors_follow_the_reference(kind: str, request: pytest.FixtureRequest) -> None:
    source, folder = request.getfixturevalue(kind)
    fast = fe.OnnxEncoder(folder, threads=1)
    expected = embed(TEXTS, *_reference(source), batch_size=2, prefix="")
    padding = PaddingStats()
    vectors = fast.embed(TEXTS, batch_size=2, padding=padding)
    assert vectors.shape == expected.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # pooled and normalised
    assert _cosines(vectors, expected).min() > 0.98
    # sorted by token count, so a batch pads little; the counts add up
    assert padding.real_tokens > 0 and padding.padded_tokens >= padding.real_tokens


def test_order_and_batching_do_not_change_vectors(unigram: tuple[Path, Path]) -> None:
    fast = fe.OnnxEncoder(unigram[1], threads=1)
    together = fast.embed(TEXTS, batch_size=8)
    one_by_one = np.vstack([fast.embed([text], batch_size=1) for text in TEXTS])
    reversed_order = fast.embed(TEXTS[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, reversed_order, atol=1e-5)


def test_unsigned_weights_give_the_same_vectors(unigram: tuple[Path, Path]) -> None:
    """The u8×u8 rewrite that CPUs without VNNI run computes the same integers: the vectors are
    bit-identical to this CPU's choice, so the model version need not say which kernel ran."""
    chosen = fe.OnnxEncoder(unigram[1], threads=1)
    unsigned = fe.OnnxEncoder(unigram[1], threads=1, kernel="u8u8")
    assert unsigned.version_suffix == chosen.version_suffix
    np.testing.assert_array_equal(unsigned.embed(TEXTS), chosen.embed(TEXTS))


def test_unigram_encoder_is_trimmed_first(unigram: tuple[Path, Path], cache: Path) -> None:
    _, folder = unigram
    marker = json.loads((folder / fe.FAST_MARKER_FILE).read_text(encoding="utf-8"))
    assert marker["trimmed"] is True
    assert folder.parent == cache and folder.name.endswith("-ja" + fe.FAST_FOLDER_SUFFIX)
    tokenizer = fe.OnnxEncoder(folder).tokenizer
    assert "▁안녕" not in tokenizer.get_vocab() and "配送" in tokenizer.get_vocab()
    assert fe.OnnxEncoder(folder).version_suffix.startswith("+ja-vocab+onnx-int8-")


def test_wordpiece_encoder_is_exported_untrimmed(wordpiece: tuple[Path, Path]) -> None:
    _, folder = wordpiece
    assert json.loads((folder / fe.FAST_MARKER_FILE).read_text(encoding="utf-8"))["trimmed"] is False
    suffix = fe.OnnxEncoder(folder).version_suffix
    # the int8 file's digest, and the runtime whose kernels compute with it
    assert re.fullmatch(rf"\+onnx-int8-[0-9a-f]{{8}}-ort{re.escape(ort.__version__)}", suffix), suffix


def test_built_once_then_reused(
    unigram: tuple[Path, Path], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, folder = unigram

    def no_rebuild(base: Path, staging: Path) -> str:
        raise AssertionError("a complete fast folder must not be rebuilt")

    monkeypatch.setattr(fe, "_export_int8", no_rebuild)
    assert fe.fast_encoder_folder(source, cache) == folder
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_folder_from_another_int8_rewrite_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    """A folder whose marker names an older quantizing rewrite is rebuilt, and the model version
    follows the new file."""
    source = build_tiny_unigram(tmp_path / "tiny-e5-copy", seed=1)
    folder = fe.fast_encoder_folder(source, cache)
    marker_path = folder / fe.FAST_MARKER_FILE
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    marker_path.write_text(json.dumps(marker | {"int8": marker["int8"] - 1}), encoding="utf-8")
    assert fe.fast_encoder_folder(source, cache) == folder
    assert json.loads(marker_path.read_text(encoding="utf-8"))["int8"] == marker["int8"]


def test_same_name_elsewhere_gets_its_own_folder(
    unigram: tuple[Path, Path], cache: Path, tmp_path: Path
) -> None:
    """Two fine-tuned models both keep their encoder in a folder called ``encoder``."""
    source, folder = unigram
    other = build_tiny_unigram(tmp_path / source.name, seed=2)
    assert fe.fast_encoder_folder(other, cache) != folder


def test_not_a_fast_folder(tmp_path: Path) -> None:
    with pytest.raises(fe.FastEncoderError, match="not a fast encoder folder"):
        fe.OnnxEncoder(tmp_path)


# --------------------------------------------------------------------------- the real default model


def _sample_sentences() -> list[str]:
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as handle:
        comments = [row["ご意見・ご感想"] or "" for row in csv.DictReader(handle)]
    return sorted({s for c in comments for s in split_sentences(clean_comment(c).text)})


@pytest.mark.slow
def test_fast_path_takes_the_reference_paths_decisions(
    default_model: TextClassifier, fast_default_model: TextClassifier
) -> None:
    """On the sample's 1,125 distinct sentences (measured with the default model's adapter: 99.4%
    the same sentiment label, 99.7% of topic decisions and 94.6% of whole topic sets the same,
    mean probability change 0.006): close to the float32 reference, and no topic's count moved
    much."""
    texts = _sample_sentences()
    assert len(texts) > 1000
    a, b = default_model.predict(texts), fast_default_model.predict(texts)
    topics_a, topics_b = a.topics >= a.topic_threshold, b.topics >= b.topic_threshold
    assert (a.sentiment.argmax(axis=1) == b.sentiment.argmax(axis=1)).mean() >= 0.97
    assert (topics_a == topics_b).mean() >= 0.99
    assert (topics_a == topics_b).all(axis=1).mean() >= 0.91
    assert np.abs(a.sentiment - b.sentiment).mean() < 0.02
    assert np.abs(a.sentiment - b.sentiment).max() < 0.25
    for count_a, count_b in zip(topics_a.sum(axis=0), topics_b.sum(axis=0), strict=True):
        assert abs(int(count_a) - int(count_b)) <= max(3, 0.2 * count_a)


@pytest.mark.slow
def test_fast_path_results_do_not_depend_on_the_batch(fast_default_model: TextClassifier) -> None:
    """A sentence's probabilities are the same whatever it is batched with (per-token int8);
    per-tensor dynamic quantization changed 7% of labels this way."""
    texts = _sample_sentences()[:400]
    together = fast_default_model.predict(texts, batch_size=32)
    alone = fast_default_model.predict(texts[::3], batch_size=5)
    np.testing.assert_allclose(together.sentiment[::3], alone.sentiment, atol=1e-5)
    np.testing.assert_allclose(together.topics[::3], alone.topics, atol=1e-5)


@pytest.mark.slow
def test_fast_model_version_names_the_path(
    default_model: TextClassifier, fast_default_model: TextClassifier, taxonomy: Taxonomy
) -> None:
    """Every row and cached prediction carries the model version, so the two paths never mix."""
    assert fast_default_model.model_version.startswith(default_model.model_version + "+ja-vocab+onnx-int8-")
    assert fast_default_model.taxonomy_version == default_model.taxonomy_version == taxonomy.version
