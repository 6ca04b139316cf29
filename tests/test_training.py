"""Training, model folders and evaluation on a tiny random BERT (fast; no real encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.classifier import CARD_FILE, HEADS_FILE, ModelError, TextClassifier, load_encoder
from models.evaluation import classification_metrics, multilabel_metrics
from models.registry import (
    SHIPPED_DEFAULT_MODEL,
    default_model_dir,
    default_recipe,
    load_model,
    shipped_card,
    train_configured_model,
    training_arguments,
)
from models.training import TrainingArguments, evaluate_model, read_examples, train_model
from pipeline.settings import ModelSettings, Settings, TaxonomySettings
from pipeline.taxonomy import Taxonomy
from tests.conftest import REPO, TOPICS_EVAL, TOPICS_TRAIN, make_settings
from tests.tiny_model import build_tiny_bert


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def args(encoder: Path, **overrides: object) -> TrainingArguments:
    return TrainingArguments(name="tiny", encoder=str(encoder), **overrides)  # type: ignore[arg-type]


def test_train_saves_a_complete_model_folder(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    folder = train_model(
        [TOPICS_TRAIN], tmp_path / "m", taxonomy, args(tiny_encoder), evaluation=[TOPICS_EVAL]
    )
    assert (folder / CARD_FILE).exists() and (folder / HEADS_FILE).exists()
    assert not (folder / "encoder").exists()  # a frozen encoder is referenced, not copied
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    assert card["taxonomy_version"] == taxonomy.version
    assert card["topics"] == list(taxonomy.leaf_ids)
    assert card["sentiment_labels"] == ["negative", "neutral", "positive"]
    assert card["encoder"] == {
        "name": str(tiny_encoder),
        "fine_tuned": False,
        "prefix": "",
        "pooling": "mean+l2",
    }
    assert (
        card["training_data"][0]["sha256"]
        == __import__("hashlib").sha256(TOPICS_TRAIN.read_bytes()).hexdigest()
    )
    assert card["arguments"]["seed"] == 13 and card["code_version"]
    metrics = card["metrics"]["topics_eval.jsonl"]
    assert set(metrics) == {"sentiment", "topics"}
    assert len(metrics["sentiment"]["confusion_matrix"]) == 3
    assert not list(tmp_path.glob(".m.partial"))


def configured(encoder: Path, tmp_path: Path) -> Settings:
    """Settings that name ``encoder`` and the project's taxonomy, as a config file would."""
    return make_settings(tmp_path / "voc.duckdb").model_copy(
        update={
            "model": ModelSettings(encoder=str(encoder)),
            "taxonomy": TaxonomySettings(path=REPO / "configs" / "taxonomy.yaml"),
        }
    )


def test_the_configured_entry_point_trains_what_train_model_trains(
    tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    settings = configured(tiny_encoder, tmp_path)
    folder = train_configured_model(settings, [TOPICS_TRAIN], tmp_path / "a" / "tiny", overrides={"seed": 13})
    direct = train_model([TOPICS_TRAIN], tmp_path / "b" / "tiny", taxonomy, args(tiny_encoder))
    assert (folder / HEADS_FILE).read_bytes() == (direct / HEADS_FILE).read_bytes()
    card, direct_card = (json.loads((f / CARD_FILE).read_text(encoding="utf-8")) for f in (folder, direct))
    assert card["model_version"] == direct_card["model_version"]
    assert card["arguments"] == direct_card["arguments"]


def test_training_arguments_come_from_the_settings_then_the_overrides(tmp_path: Path) -> None:
    settings = configured(Path("/models/bert"), tmp_path)
    assert training_arguments(settings, tmp_path / "churn-model", {}) == TrainingArguments(
        name="churn-model", encoder="/models/bert"
    )
    chosen = training_arguments(
        settings, tmp_path / "m", {"name": "named", "encoder": "default", "epochs": 1}
    )
    assert (chosen.name, chosen.encoder, chosen.epochs) == ("named", "default", 1)
    with pytest.raises(ModelError, match=r"unknown training argument.*epoch;.*epochs"):
        training_arguments(settings, tmp_path / "m", {"epoch": 1})


def test_training_is_deterministic(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    a = train_model([TOPICS_TRAIN], tmp_path / "a", taxonomy, args(tiny_encoder))
    b = train_model([TOPICS_TRAIN], tmp_path / "b", taxonomy, args(tiny_encoder))
    assert (a / HEADS_FILE).read_bytes() == (b / HEADS_FILE).read_bytes()
    version = json.loads((a / CARD_FILE).read_text())["model_version"]
    assert version == json.loads((b / CARD_FILE).read_text())["model_version"]


def test_fine_tuning_a_few_steps(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    folder = train_model(
        [TOPICS_TRAIN],
        tmp_path / "ft",
        taxonomy,
        args(tiny_encoder, fine_tune=True, max_steps=2, batch_size=8),
    )
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    assert card["encoder"]["fine_tuned"] is True and "+fine-tuned-" not in card["encoder"]["name"]
    assert (folder / "encoder" / "model.safetensors").exists()
    model = TextClassifier.load(folder)
    predicted = model.predict(["配送が遅い", "スタッフが親切"])
    assert predicted.sentiment.shape == (2, 3) and np.allclose(predicted.sentiment.sum(axis=1), 1.0)
    assert predicted.topics.shape == (2, len(taxonomy.leaf_ids))
    # the fine-tuned weights differ from the encoder it started from
    original, _ = load_encoder(str(tiny_encoder))
    tuned = model.encoder.state_dict()
    assert any(
        not np.allclose(v.numpy(), tuned[k].numpy()) for k, v in original.state_dict().items() if "layer" in k
    )


def test_model_for_another_taxonomy_is_refused(
    tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    folder = train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, args(tiny_encoder))
    other = taxonomy.model_copy(update={"version": "other-2027.1"})
    with pytest.raises(ModelError, match="retrain"):
        load_model(str(folder), other)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "良い", "label": "great"}', "not one of"),
        ('{"text": "良い", "topics": ["teleport"]}', "unknown topic"),
        ('{"label": "positive"}', "non-empty 'text'"),
        ('{"text": "良い"}', "'label' and/or 'topics'"),
        ("{broken", "not valid JSON"),
    ],
)
def test_bad_training_data_fails_before_training(
    line: str, message: str, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ModelError, match=message):
        read_examples(path, taxonomy)


def test_missing_topic_labels_say_what_to_add(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    # a topic with no labelled rows is learnt from its examples; without them, say what to add
    path = tmp_path / "sentiment.jsonl"
    path.write_text('{"text": "良い", "label": "positive"}\n', encoding="utf-8")
    data = taxonomy.model_dump()
    data["topics"] = [{**t, "examples": ()} if t["id"] == "stock" else t for t in data["topics"]]
    with pytest.raises(ModelError, match=r"'stock' \(0 examples\).*`examples`.*--topic-data"):
        train_model([path], tmp_path / "m", Taxonomy.model_validate(data), args(tiny_encoder))


def test_unloadable_encoder_and_folder_give_one_message(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot load encoder"):
        load_encoder(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="voc train"):
        TextClassifier.load(tmp_path)


def test_evaluate_model_on_a_small_file(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    folder = train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, args(tiny_encoder))
    examples = read_examples(TOPICS_EVAL, taxonomy)[:20]
    metrics = evaluate_model(TextClassifier.load(folder), examples)
    assert metrics["sentiment"]["n"] == 20 and metrics["topics"]["n"] == 20


def test_metrics_by_hand() -> None:
    m = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    t = multilabel_metrics([["x"], ["x", "y"], []], [["x"], ["y"], ["y"]], ["x", "y"])
    assert t["per_topic"]["x"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert t["per_topic"]["y"]["precision"] == 0.5
    # micro: tp 2 (x in row 0, y in row 1), fp 1 (y in row 2), fn 1 (x in row 1)
    assert t["micro"] == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                          "f1": pytest.approx(2 / 3), "support": 3}  # fmt: skip


def test_config_alone_switches_the_encoder(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    # model.path: default + model.encoder: <folder> trains the default heads on that encoder once
    model = load_model("default", taxonomy, tmp_path / "cache", encoder=str(tiny_encoder))
    assert model.card["encoder"]["name"] == str(tiny_encoder.resolve())
    assert model.folder.parent == tmp_path / "cache"
    again = load_model("default", taxonomy, tmp_path / "cache", encoder=str(tiny_encoder))
    assert again.folder == model.folder and again.model_version == model.model_version


def test_the_shipped_default_heads_come_from_the_current_recipe(taxonomy: Taxonomy) -> None:
    assert shipped_card().get("recipe") == default_recipe(taxonomy), (
        "data/labelled, the taxonomy or the training code changed since the default heads were "
        "trained: run `make default-model` and commit models/default_model"
    )
    assert default_model_dir(taxonomy) == SHIPPED_DEFAULT_MODEL


def test_another_taxonomy_gets_heads_of_its_own_in_the_cache(taxonomy: Taxonomy, tmp_path: Path) -> None:
    edited = taxonomy.model_copy(update={"version": taxonomy.version + "-edited"})
    folder = default_model_dir(edited, tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith("voc-default-")
