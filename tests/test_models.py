"""The real default model end to end (slow: builds the encoder and trains the default heads)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from models.classifier import TextClassifier
from models.registry import (
    DEFAULT_EVALUATION_DATA,
    SHIPPED_DEFAULT_MODEL,
    shipped_card,
    train_default_heads,
)
from pipeline.job import run_job
from pipeline.taxonomy import Taxonomy
from tests.conftest import REPO, csv_text, make_settings
from tests.contract import contract_violations

pytestmark = pytest.mark.slow


def test_default_model_reads_japanese(default_model: TextClassifier) -> None:
    texts = [
        "配送が遅くて本当に最悪でした。",
        "スタッフの方がとても親切でした！",
        "駅から徒歩五分の店舗を利用しました。",
    ]
    predicted = default_model.predict(texts)
    labels = [("negative", "neutral", "positive")[int(row.argmax())] for row in predicted.sentiment]
    assert labels[0] == "negative" and labels[1] == "positive"
    chosen = predicted.topics >= predicted.topic_threshold
    topics = [{t for j, t in enumerate(predicted.topic_ids) if chosen[i, j]} for i in range(len(texts))]
    assert "delivery_delay" in topics[0]
    assert "staff_attitude" in topics[1]


def test_default_model_card(default_model: TextClassifier, taxonomy: Taxonomy) -> None:
    card = default_model.card
    assert card["taxonomy_version"] == taxonomy.version
    adapter = card["encoder"].pop("adapter")
    assert card["encoder"] == {
        "name": "default",
        "fine_tuned": False,
        "prefix": "query: ",
        "pooling": "mean+l2",
    }
    assert adapter["file"] == "adapter.safetensors" and adapter["rank"] == 8
    assert (
        adapter["sha256"]
        == hashlib.sha256((SHIPPED_DEFAULT_MODEL / adapter["file"]).read_bytes()).hexdigest()
    )
    assert {d["file"] for d in card["training_data"]} == {
        "sentiment_train.jsonl",
        "topics_train.jsonl",
        "corpus_train.jsonl",
    }
    assert card["calibration"]["fitted_on"] == ["corpus_calibration.jsonl"]
    assert card["calibration"]["ece_after"] < card["calibration"]["ece_before"]
    topic_threshold = card["calibration"]["topic_threshold"]
    assert topic_threshold["fitted_on"] == ["corpus_calibration.jsonl"]
    assert topic_threshold["micro_f1_after"] >= topic_threshold["micro_f1_before"]
    assert all(len(d["sha256"]) == 64 for d in card["training_data"])
    assert card["topics_from_examples"] == []  # data/labelled names every topic
    assert card["examples"]["taxonomy_examples"] == sum(len(t.examples) for t in taxonomy.leaves)
    assert card["metrics"]["topics_eval.jsonl"]["topics"]["micro"]["f1"] > 0.6


def test_the_default_model_is_the_shipped_one(default_model: TextClassifier) -> None:
    """Every machine set up from one commit runs the same heads, whatever its CPU."""
    assert default_model.folder == SHIPPED_DEFAULT_MODEL
    assert default_model.model_version == shipped_card()["model_version"]


def test_retrained_heads_agree_with_the_shipped_ones(
    default_model: TextClassifier, taxonomy: Taxonomy, model_cache: Path, tmp_path: Path
) -> None:
    """The default heads retrained on this CPU, on the shipped adapter, give the shipped labels.
    Not bit for bit: another CPU adds the same floating-point sums in another order, which moves
    the weights by about 1e-6 and can only change a sentence lying on a decision boundary, hence
    the 99% floors. (Retraining the adapter itself, `make default-model`, takes a quarter of an
    hour and is not repeated here.)"""
    retrained = TextClassifier.load(
        train_default_heads(taxonomy, tmp_path / "retrained", "default", model_cache), model_cache
    )
    evaluation = DEFAULT_EVALUATION_DATA[0].read_text(encoding="utf-8").splitlines()
    texts = sorted({json.loads(line)["text"] for line in evaluation if line.strip()})
    with (REPO / "data" / "sample" / "nps_responses.csv").open(encoding="utf-8", newline="") as sample:
        texts += sorted({row[-1] for row in list(csv.reader(sample))[1:] if row and row[-1].strip()})
    vectors = default_model.embed(texts)
    shipped_sentiment, shipped_topics = default_model.heads.apply(vectors)
    sentiment, topics = retrained.heads.apply(vectors)
    threshold = default_model.heads.topic_threshold
    assert (shipped_sentiment.argmax(1) == sentiment.argmax(1)).mean() >= 0.99
    assert ((shipped_topics >= threshold) == (topics >= threshold)).mean() >= 0.99


@pytest.mark.parametrize("path", ["default_model", "fast_default_model"])
def test_job_on_the_real_model(
    path: str, request: pytest.FixtureRequest, taxonomy: Taxonomy, tmp_path: Path,
    write_export: Callable[..., Path],
) -> None:  # fmt: skip
    """The job on the reference path and on the fast path the pipeline runs by default."""
    model: TextClassifier = request.getfixturevalue(path)
    rows = [
        ["R1", "2026/07/01 09:00", "2", "Web", "ライト", "", "注文から一週間たっても届かない。連絡もない。"],
        ["R2", "2026/07/01 10:00", "10", "店舗", "ライト", "", "店員さんが丁寧に説明してくれました😊"],
        ["R3", "2026/07/01 11:00", "7", "アプリ", "ライト", "", ""],
    ]
    settings = make_settings(tmp_path / "real.duckdb")
    summary = run_job(write_export("real.csv", csv_text(rows)), settings, model, taxonomy)
    assert summary.rows_published == 3
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    assert contract_violations(con) == []
    labels = dict(con.execute("SELECT response_id, sentiment_label FROM responses").fetchall())
    assert labels == {"R1": "negative", "R2": "positive", "R3": None}
    assert con.execute("SELECT DISTINCT model_version FROM responses").fetchall() == [(model.model_version,)]


def test_voc_evaluate(fast_default_model: TextClassifier, model_cache: Path, tmp_path: Path) -> None:
    """`voc evaluate` measures the model as the pipeline runs it: on the configured fast path."""
    data = tmp_path / "eval.jsonl"
    lines = [
        {"text": "届くのが遅すぎる。", "label": "negative", "topics": ["delivery_delay"]},
        {"text": "スタッフさんの笑顔が素敵でした。", "label": "positive", "topics": ["staff_attitude"]},
        {"text": "平日の昼に行きました。", "label": "neutral", "topics": []},
    ]
    data.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    out = tmp_path / "metrics.json"
    env = {**os.environ, "VOC_MODEL_CACHE": str(model_cache)}
    result = subprocess.run(
        [sys.executable, "-m", "voc", "evaluate", "--data", str(data), "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "macro-F1" in result.stdout and "confusion matrix" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["model_version"] == fast_default_model.model_version
    assert report["metrics"]["sentiment"]["n"] == 3
    assert set(report["metrics"]["topics"]["per_topic"]) >= {"delivery_delay", "staff_attitude"}
