"""Metrics for sentiment (3 classes) and topics (multi-label), as plain dictionaries for JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.calibration import calibration_metrics
from pipeline.contracts import SENTIMENT_LABELS
from pipeline.settings import LOW_CONFIDENCE_BELOW


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, predicted, strict=True):
        matrix[index[g], index[p]] += 1
    per_class = {}
    for label, i in index.items():
        per_class[label] = _prf(tp=int(matrix[i, i]), fp=int(matrix[:, i].sum() - matrix[i, i]),
                                fn=int(matrix[i, :].sum() - matrix[i, i]))  # fmt: skip
    total = int(matrix.sum())
    return {
        "n": total,
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),  # rows: gold, columns: predicted
    }


def sentiment_metrics(
    gold: Sequence[str], probabilities: np.ndarray, domains: Sequence[str | None] = ()
) -> dict[str, Any]:
    """Classification metrics of the most probable label, with the calibration of the
    probabilities and the low-confidence flag's share and accuracy; ``sentiment_by_domain`` too
    when the rows name their domain."""
    labels = [str(label) for label in SENTIMENT_LABELS]
    predicted = [labels[int(i)] for i in probabilities.argmax(axis=1)]
    gold_index = np.array([labels.index(g) for g in gold])
    metrics = classification_metrics(gold, predicted, labels)
    metrics["calibration"] = calibration_metrics(probabilities, gold_index)
    flagged = probabilities.max(axis=1) < LOW_CONFIDENCE_BELOW
    right = probabilities.argmax(axis=1) == gold_index
    metrics["low_confidence"] = {
        "below": LOW_CONFIDENCE_BELOW,
        "share": float(flagged.mean()) if len(gold) else 0.0,
        "accuracy_flagged": float(right[flagged].mean()) if flagged.any() else None,
        "accuracy_unflagged": float(right[~flagged].mean()) if (~flagged).any() else None,
    }
    result: dict[str, Any] = {"sentiment": metrics}
    named = sorted({d for d in domains if d})
    if named:
        result["sentiment_by_domain"] = {
            d: classification_metrics(*_subset(gold, predicted, domains, d), labels) for d in named
        }
    return result


def _subset(
    gold: Sequence[str], predicted: Sequence[str], domains: Sequence[str | None], domain: str
) -> tuple[list[str], list[str]]:
    rows = [i for i, d in enumerate(domains) if d == domain]
    return [gold[i] for i in rows], [predicted[i] for i in rows]


def multilabel_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, Any]:
    """Per-topic precision/recall/F1 with support, plus micro and macro averages."""
    per_topic = {}
    tp_all = fp_all = fn_all = 0
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if label in g and label in p)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if label not in g and label in p)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if label in g and label not in p)
        per_topic[label] = _prf(tp, fp, fn)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    micro = _prf(tp_all, fp_all, fn_all)
    supported = [m for m in per_topic.values() if m["support"]]
    return {
        "n": len(gold),
        "micro": micro,
        "macro_f1": float(np.mean([m["f1"] for m in supported])) if supported else 0.0,
        "per_topic": per_topic,
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def format_classification(metrics: dict[str, Any]) -> str:
    lines = [f"n={metrics['n']}  accuracy={metrics['accuracy']:.3f}  macro-F1={metrics['macro_f1']:.3f}", ""]
    lines.append(f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for label, m in metrics["per_class"].items():
        lines.append(
            f"{label:<10} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}"
        )
    lines += ["", "confusion matrix (rows gold, columns predicted): " + " / ".join(metrics["labels"])]
    for label, row in zip(metrics["labels"], metrics["confusion_matrix"], strict=True):
        lines.append(f"{label:<10} " + " ".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


def format_calibration(metrics: dict[str, Any]) -> str:
    """ECE and the low-confidence flag's share, then the reliability table."""
    calibration, flag = metrics["calibration"], metrics["low_confidence"]
    flagged = flag["accuracy_flagged"]
    lines = [
        f"expected calibration error {calibration['ece']:.3f}  "
        f"negative log-likelihood {calibration['nll']:.3f}",
        f"low-confidence (probability < {flag['below']}): {flag['share']:.1%} of sentences"
        + (f", {flagged:.1%} of them right" if flagged is not None else ""),
        "",
        f"{'probability':<13} {'sentences':>9} {'mean p':>7} {'right':>6}",
    ]
    for b in calibration["bins"]:
        lines.append(
            f"{b['from']:.2f}-{b['to']:.2f}    {b['n']:>9} {b['confidence']:>7.3f} {b['accuracy']:>6.3f}"
        )
    return "\n".join(lines)


def format_by_domain(by_domain: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'domain':<18} {'n':>5} {'accuracy':>8} {'macro-F1':>8} {'neg F1':>6} {'neu F1':>6} {'pos F1':>6}"
    ]
    for domain, m in by_domain.items():
        f1 = [m["per_class"][label]["f1"] for label in m["labels"]]
        lines.append(
            f"{domain:<18} {m['n']:>5} {m['accuracy']:>8.3f} {m['macro_f1']:>8.3f} "
            + " ".join(f"{v:>6.3f}" for v in f1)
        )
    return "\n".join(lines)


def format_multilabel(metrics: dict[str, Any]) -> str:
    micro = metrics["micro"]
    lines = [
        f"topics: n={metrics['n']}  micro P={micro['precision']:.3f} R={micro['recall']:.3f} "
        f"F1={micro['f1']:.3f}  macro-F1={metrics['macro_f1']:.3f}",
        "",
        f"{'topic':<22} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
    ]
    for label, m in metrics["per_topic"].items():
        lines.append(
            f"{label:<22} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8}"
        )
    return "\n".join(lines)
