"""Temperature scaling, the expected calibration error and the topic threshold fitted on
calibration sentences (models/calibration.py), the heads applying their temperature, and a model
folder recalibrated (`voc calibrate`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.calibration import (
    TOPIC_THRESHOLDS,
    calibration_metrics,
    fit_temperature,
    fit_topic_threshold,
    micro_f1,
    softmax,
)
from models.classifier import Heads, TextClassifier, heads_version
from models.training import Example, TrainingArguments, calibrated_on, recalibrate_model, train_model
from pipeline.taxonomy import Taxonomy
from tests.conftest import TOPICS_EVAL, TOPICS_TRAIN
from tests.tiny_model import build_tiny_bert


def sampled(temperature: float, n: int = 20000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): the true temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(n, 3))
    probabilities = softmax(logits, temperature)
    gold = np.array([rng.choice(3, p=p) for p in probabilities])
    return logits, gold


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with(true_temperature: float) -> None:
    logits, gold = sampled(true_temperature)
    assert fit_temperature(logits, gold) == pytest.approx(true_temperature, rel=0.08)


def test_scaling_lowers_the_calibration_error_and_keeps_every_label() -> None:
    logits, gold = sampled(2.5)
    temperature = fit_temperature(logits, gold)
    before, after = softmax(logits), softmax(logits, temperature)
    assert (before.argmax(1) == after.argmax(1)).all()
    assert calibration_metrics(before, gold)["ece"] > 0.1
    assert calibration_metrics(after, gold)["ece"] < 0.02


def test_ece_by_hand() -> None:
    """Two sentences at 0.9 (one right) and two at 0.55 (both right): bins 0.87-0.93 and
    0.53-0.60 of 15, |0.5 - 0.9| and |1.0 - 0.55|, each weighted one half."""
    probabilities = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.55, 0.4, 0.05], [0.05, 0.4, 0.55]])
    gold = np.array([0, 1, 0, 2])
    metrics = calibration_metrics(probabilities, gold)
    assert metrics["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.45)
    assert [(b["n"], b["accuracy"]) for b in metrics["bins"]] == [(2, 1.0), (2, 0.5)]


def heads(temperature: float) -> Heads:
    rng = np.random.default_rng(3)
    return Heads(
        rng.normal(size=(3, 8)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
        rng.normal(size=(4, 8)).astype(np.float32),
        rng.normal(size=4).astype(np.float32),
        np.full(4, 0.5, dtype=np.float32),
        temperature,
    )


def test_heads_apply_their_temperature_and_keep_it_on_disk(tmp_path: Path) -> None:
    warm, plain = heads(2.0), heads(1.0)
    vectors = np.random.default_rng(4).normal(size=(5, 8)).astype(np.float32)
    expected = softmax(plain.sentiment_logits(vectors), 2.0)
    assert warm.apply(vectors)[0] == pytest.approx(expected, abs=1e-6)
    assert (warm.apply(vectors)[1] == plain.apply(vectors)[1]).all()  # topics are not scaled
    warm.save(tmp_path / "heads.npz")
    assert Heads.load(tmp_path / "heads.npz").sentiment_temperature == 2.0
    assert heads_version("m", warm, "e") != heads_version("m", plain, "e")


def test_heads_saved_without_a_temperature_load_with_none(tmp_path: Path) -> None:
    """Model folders trained before calibration existed keep working, unscaled."""
    plain = heads(1.0)
    np.savez(tmp_path / "old.npz", sentiment_W=plain.sentiment_w, sentiment_b=plain.sentiment_b,
             topic_W=plain.topic_w, topic_b=plain.topic_b, topic_threshold=plain.topic_threshold)  # fmt: skip
    assert Heads.load(tmp_path / "old.npz").sentiment_temperature == 1.0


def test_recalibrating_a_model_folder_keeps_its_sentiment_labels(taxonomy: Taxonomy, tmp_path: Path) -> None:
    """`voc calibrate`: a copy with the temperature refitted on the given sentences, a new model
    version that names where it came from, the same sentiment labels; the topic threshold is
    refitted on the lines that carry topics."""
    encoder = build_tiny_bert(tmp_path / "bert")
    arguments = TrainingArguments(name="tiny", encoder=str(encoder))
    original = TextClassifier.load(train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, arguments))
    copy = TextClassifier.load(recalibrate_model(original, [TOPICS_EVAL], tmp_path / "calibrated", taxonomy))
    record = copy.card["calibration"]
    assert record["fitted_on"] == ["topics_eval.jsonl"] and record["sentences"] == 325
    assert copy.heads.sentiment_temperature == record["temperature"] != original.heads.sentiment_temperature
    assert copy.card["calibrated_from"] == original.model_version != copy.model_version
    texts = ["配送が遅い", "スタッフが親切", "店舗を利用しました"]
    before, after = original.predict(texts).sentiment, copy.predict(texts).sentiment
    assert (before.argmax(1) == after.argmax(1)).all() and not np.allclose(before, after)
    topic_record = record["topic_threshold"]
    assert topic_record["fitted_on"] == ["topics_eval.jsonl"] and topic_record["sentences"] == 325
    expected = topic_record["threshold"] if topic_record["applied"] else original.heads.topic_threshold
    assert (copy.heads.topic_threshold == np.float32(expected)).all()


def test_micro_f1_by_hand() -> None:
    chosen = np.array([[1, 0], [1, 1]], dtype=bool)
    truth = np.array([[1, 1], [0, 1]], dtype=bool)
    assert micro_f1(chosen, truth) == pytest.approx(2 * 2 / (2 * 2 + 2))  # 2 right, 1 extra, 1 missed
    assert micro_f1(np.zeros((2, 2), dtype=bool), truth) == 0.0


def test_the_topic_threshold_is_the_grid_value_that_separates_the_topics() -> None:
    """Topics at 0.78 and others at 0.72: only 0.75 on the grid takes every topic and nothing else."""
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=bool)
    probabilities = np.where(truth, 0.78, 0.72)
    assert fit_topic_threshold(probabilities, truth) == (0.75, 1.0)


def test_on_a_tie_the_lowest_threshold_wins() -> None:
    truth = np.array([[1, 0], [0, 1]], dtype=bool)
    probabilities = np.where(truth, 0.95, 0.3)  # every grid value separates them
    assert fit_topic_threshold(probabilities, truth) == (TOPIC_THRESHOLDS[0], 1.0)


def test_training_fits_the_topic_threshold_on_calibration_sentences_with_topics(
    taxonomy: Taxonomy, tmp_path: Path
) -> None:
    encoder = build_tiny_bert(tmp_path / "bert")
    arguments = TrainingArguments(name="tiny", encoder=str(encoder))
    folder = train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, arguments, calibration=[TOPICS_EVAL])
    model = TextClassifier.load(folder)
    record = model.card["calibration"]
    assert record["fitted_on"] == ["topics_eval.jsonl"]
    assert record["topic_threshold"]["fitted_on"] == ["topics_eval.jsonl"]
    topic_record = record["topic_threshold"]
    assert topic_record["topics"] == len(taxonomy.leaf_ids)  # topics_eval names every topic
    expected = topic_record["threshold"] if topic_record["applied"] else TrainingArguments().topic_threshold
    assert (model.heads.topic_threshold == np.float32(expected)).all()


def _two_topic_heads(a_with: float, a_without: float, b: float) -> Heads:
    """Heads whose topic "a" has probability ``a_with`` on the vector [1, 0] and ``a_without`` on
    [0, 0], and whose topic "b" has ``b`` on both; thresholds 0.7."""

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    return Heads(
        sentiment_w=np.zeros((3, 2), dtype=np.float32),
        sentiment_b=np.zeros(3, dtype=np.float32),
        topic_w=np.array([[logit(a_with) - logit(a_without), 0.0], [0.0, 0.0]], dtype=np.float32),
        topic_b=np.array([logit(a_without), logit(b)], dtype=np.float32),
        topic_threshold=np.full(2, 0.7, dtype=np.float32),
    )


VECTORS = {"with a": np.array([1.0, 0.0]), "without": np.array([0.0, 0.0])}
ROWS = [Example("with a", "neutral", ("a",)), Example("without", "neutral", ())]


def test_only_the_topics_calibration_sentences_name_are_scored_and_refitted() -> None:
    """ "a" is 0.86 where the sentence has it and 0.72 where not: 0.75 separates it. "b" (learnt
    from examples, say) is 0.77 everywhere, and no row names it. Scored too, it would count as a
    false topic up to 0.75 and push the threshold to 0.80; it keeps its own 0.7."""
    heads = _two_topic_heads(0.86, 0.72, 0.77)
    fitted, record = calibrated_on(heads, VECTORS, ROWS, ("a", "b"), ["calibration.jsonl"])
    topic_record = record["topic_threshold"]
    assert (topic_record["threshold"], topic_record["applied"], topic_record["topics"]) == (0.75, True, 1)
    assert (topic_record["micro_f1_before"], topic_record["micro_f1_after"]) == (0.6667, 1.0)
    assert fitted.topic_threshold.tolist() == [np.float32(0.75), np.float32(0.7)]


def test_a_threshold_that_does_no_better_leaves_the_heads_as_they_are() -> None:
    """ "a" is less likely where the sentence has it: no threshold does better than none at all."""
    heads = _two_topic_heads(0.3, 0.6, 0.5)
    fitted, record = calibrated_on(heads, VECTORS, ROWS, ("a", "b"), ["calibration.jsonl"])
    assert record["topic_threshold"]["applied"] is False
    assert record["topic_threshold"]["micro_f1_after"] == record["topic_threshold"]["micro_f1_before"] == 0.0
    assert fitted.topic_threshold.tolist() == heads.topic_threshold.tolist()
