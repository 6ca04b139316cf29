"""Low-rank adapters (models/adapter.py) on a tiny random BERT: trained into a model folder,
merged into the encoder once, and the same weights on every load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from models.adapter import ADAPTER_FILE, adapted_encoder_folder, merged_updates, save_adapter, with_adapter
from models.classifier import CARD_FILE, ModelError, TextClassifier, load_encoder
from models.training import TrainingArguments, train_model
from pipeline.taxonomy import Taxonomy
from tests.conftest import TOPICS_TRAIN
from tests.tiny_model import build_tiny_bert


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def trained_adapter(encoder_folder: Path, path: Path) -> Path:
    """An adapter whose B matrices are not zero (a fresh one's are), saved to ``path``."""
    torch.manual_seed(5)
    encoder, _ = load_encoder(str(encoder_folder))
    wrapped = with_adapter(encoder, rank=2)
    for name, parameter in wrapped.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0.0, 0.05)
    save_adapter(wrapped, path, rank=2)
    return path


def test_merging_adds_scale_times_b_a_to_each_adapted_matrix(tiny_encoder: Path, tmp_path: Path) -> None:
    adapter = trained_adapter(tiny_encoder, tmp_path / ADAPTER_FILE)
    merged_folder = adapted_encoder_folder(tiny_encoder, adapter, tmp_path / "cache")
    base, _ = load_encoder(str(tiny_encoder))
    merged, _ = load_encoder(str(merged_folder))
    updates = merged_updates(load_file(str(adapter)), scale=2.0)  # alpha = 2 * rank
    assert updates and all(name.startswith("encoder.layer.") for name in updates)
    base_state, merged_state = base.state_dict(), merged.state_dict()
    for name, tensor in merged_state.items():
        expected = base_state[name].numpy().astype(np.float64)
        if name.removesuffix(".weight") in updates and name.endswith(".weight"):
            expected = expected + updates[name.removesuffix(".weight")]
        assert np.array_equal(tensor.numpy(), expected.astype(np.float32)), name


def test_a_merged_encoder_is_built_once_and_is_the_same_everywhere(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    adapter = trained_adapter(tiny_encoder, tmp_path / ADAPTER_FILE)
    first = adapted_encoder_folder(tiny_encoder, adapter, tmp_path / "one")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert adapted_encoder_folder(tiny_encoder, adapter, tmp_path / "one") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    second = adapted_encoder_folder(tiny_encoder, adapter, tmp_path / "two")
    a, b = (load_file(str(folder / "model.safetensors")) for folder in (first, second))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_training_an_adapter_writes_it_into_the_model_folder(
    tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    arguments = TrainingArguments(
        name="tiny", encoder=str(tiny_encoder), adapter_rank=2, learning_rate=5e-3, max_steps=3, batch_size=8
    )
    folder = train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, arguments)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    adapter = card["encoder"]["adapter"]
    assert (adapter["file"], adapter["rank"], adapter["alpha"]) == (ADAPTER_FILE, 2, 4)
    assert not (folder / "encoder").exists()  # the adapter, not a copy of the encoder
    assert card["seconds"]["fine_tune"] > 0
    loaded = TextClassifier.load(folder, tmp_path / "cache")
    assert f"+adapter-{adapter['sha256'][:10]}" in str(loaded.encoder.name_or_path)
    predicted = loaded.predict(["配送が遅い", "スタッフが親切"])
    assert np.allclose(predicted.sentiment.sum(axis=1), 1.0)


def test_reusing_an_adapter_trains_only_the_heads(
    tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    adapter = trained_adapter(tiny_encoder, tmp_path / "given.safetensors")
    arguments = TrainingArguments(name="tiny", encoder=str(tiny_encoder), adapter_file=str(adapter))
    folder = train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, arguments)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    assert (folder / ADAPTER_FILE).read_bytes() == adapter.read_bytes()
    assert card["seconds"]["fine_tune"] == 0.0


def test_only_one_way_of_tuning_the_encoder(tiny_encoder: Path, taxonomy: Taxonomy, tmp_path: Path) -> None:
    both = TrainingArguments(name="tiny", encoder=str(tiny_encoder), fine_tune=True, adapter_rank=2)
    with pytest.raises(ModelError, match="not both"):
        train_model([TOPICS_TRAIN], tmp_path / "m", taxonomy, both)
