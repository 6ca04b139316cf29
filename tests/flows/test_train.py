"""The train flow on a tiny random encoder: a model folder, its card as an artifact, usable by the job."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from flows.train import train
from models.classifier import CARD_FILE
from models.registry import load_configured_model
from pipeline.settings import load_settings
from tests.conftest import REPO
from tests.flows.conftest import artifact
from tests.tiny_model import build_tiny_bert

TOPICS = REPO / "data" / "labelled" / "topics_train.jsonl"
EVAL = REPO / "data" / "labelled" / "topics_eval.jsonl"


def every_nth(source: Path, target: Path, n: int) -> Path:
    """A smaller labelled file: the flow is under test here, not the model's quality."""
    lines = source.read_text(encoding="utf-8").splitlines()
    target.write_text("\n".join(lines[::n]) + "\n", encoding="utf-8")
    return target


def test_train_flow_writes_a_model_the_config_can_name(tmp_path: Path, config: Path) -> None:
    encoder = build_tiny_bert(tmp_path / "bert")
    data = every_nth(TOPICS, tmp_path / "train.jsonl", 3)
    evaluation = every_nth(EVAL, tmp_path / "eval.jsonl", 5)
    out = tmp_path / "models" / "tiny"
    folder = train([str(data)], str(out), str(config), evaluation=[str(evaluation)], encoder=str(encoder))
    assert Path(folder) == out and (out / CARD_FILE).exists()
    card = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    published = str(artifact("model-card").data)
    assert card["model_version"] in published and "eval.jsonl" in published

    # model.path set to the folder: the flows' model loading picks it up
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["model"] = {"path": folder}
    config.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _, model = load_configured_model(load_settings(config))
    # on the fast path by default: the int8 copy of the tiny (WordPiece, so untrimmed) encoder
    assert model.model_version.startswith(card["model_version"] + "+onnx-int8-")
