"""Calibrated sentiment probabilities (one temperature for the sentiment head), and the topic
threshold fitted on the same held-out sentences.

A logistic head fitted to its training sentences is over-confident on other text: it says 0.95
where it is right 80% of the time. Temperature scaling (Guo et al., "On Calibration of Modern
Neural Networks", 2017) divides the head's logits by one number T, fitted by minimising the
negative log-likelihood on labelled sentences the head was not fitted on. It never changes a
label (the most probable class stays the most probable), only how sure the probabilities say
the model is, so a low-confidence flag on them means what it says (`pipeline.classify`).

The expected calibration error (ECE) measures what is left: sentences binned by the
probability of their label (15 equal-width bins), then the mean over bins, weighted by their
size, of |share right - mean probability|.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15
# T is searched in log space between these: beyond them the head is broken, not mis-calibrated
_TEMPERATURE_BOUNDS = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits.astype(np.float64), temperature)
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(gold)), gold], 1e-12, None))))


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The T that minimises the negative log-likelihood of ``gold`` (class indices) under
    softmax(logits / T); rounded to 4 decimals so the shipped value reads the same everywhere."""
    from scipy.optimize import minimize_scalar

    low, high = np.log(_TEMPERATURE_BOUNDS[0]), np.log(_TEMPERATURE_BOUNDS[1])
    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, gold, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return round(float(np.exp(found.x)), 4)


def calibration_metrics(probabilities: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """ECE, negative log-likelihood and the reliability table (per bin: sentences, mean
    probability of the label, share right)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        mean_confidence, accuracy = float(confidence[members].mean()), float(right[members].mean())
        ece += members.sum() / len(gold) * abs(accuracy - mean_confidence)
        table.append({"from": float(edges[b]), "to": float(edges[b + 1]), "n": int(members.sum()),
                      "confidence": mean_confidence, "accuracy": accuracy})  # fmt: skip
    picked = np.clip(probabilities[np.arange(len(gold)), gold], 1e-12, None)
    return {"ece": float(ece), "nll": float(-np.mean(np.log(picked))), "bins": table}


# the topic thresholds `fit_topic_threshold` chooses from: 0.50, 0.55, ..., 0.90
TOPIC_THRESHOLDS = tuple(round(0.5 + 0.05 * step, 2) for step in range(9))


def micro_f1(chosen: np.ndarray, truth: np.ndarray) -> float:
    """Micro-averaged F1 of a 0/1 choice matrix against a 0/1 truth matrix (rows x topics)."""
    true_positives = float(np.logical_and(chosen, truth).sum())
    wrong = float(np.logical_xor(chosen, truth).sum())
    return 2 * true_positives / (2 * true_positives + wrong) if true_positives else 0.0


def fit_topic_threshold(probabilities: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The threshold of ``TOPIC_THRESHOLDS`` whose topic choices have the best micro-F1 against
    ``truth`` (the lowest on a tie), and that F1. One threshold for every topic: a few dozen
    sentences a topic cannot pick one per topic without fitting noise."""
    scores = [micro_f1(probabilities >= t, truth) for t in TOPIC_THRESHOLDS]
    best = int(np.argmax(scores))
    return TOPIC_THRESHOLDS[best], round(scores[best], 4)
