"""Metrics for sentiment (3 classes) and topics (multi-label), as plain dictionaries for JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
