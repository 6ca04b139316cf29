"""Training: fit the sentiment and topic heads (optionally fine-tuning the encoder first).

Input is JSONL with ``text`` and ``label`` (negative / neutral / positive) and/or ``topics``
(a list of leaf topic ids). Texts go through the pipeline's own normalisation and PII masking,
so the model sees what it will see in production. Everything is seeded; the saved folder has a
model card with the data hashes, labels, parameters, metrics and versions.

The taxonomy's examples are topic rows too, so a topic can be added with a description, a few
examples and seed terms and no labelled file: `fit_topic_heads` learns a topic no labelled row
names from the examples plus weak labels on the sentences that carry no topic labels.

The module is over 400 lines because it is one recipe under one version: `TRAINING_VERSION` says
when anything here computes different heads from the same data, and the shipped default model's
recipe (models/registry.py) depends on it; reading the data, both heads and the optional
fine-tuning share its `Example`, `TrainingSet` and `TrainingArguments`.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.calibration import calibration_metrics, fit_temperature, fit_topic_threshold, micro_f1, softmax
from models.classifier import (
    CARD_FILE,
    DEFAULT_ENCODER,
    HEADS_FILE,
    Heads,
    ModelError,
    TextClassifier,
    heads_version,
)
from models.embedding import embed
from models.evaluation import multilabel_metrics, sentiment_metrics
from models.fine_tuning import TunedEncoder, tuned_encoder
from pipeline import __version__
from pipeline.checksums import file_sha256
from pipeline.contracts import SENTIMENT_LABELS, SentimentLabel
from pipeline.normalize import NORMALIZER_VERSION, clean_comment
from pipeline.progress import Progress, no_progress
from pipeline.taxonomy import Taxonomy
from pipeline.tokenize import tokenize

# Bump when training computes different heads from the same data and arguments: the shipped
# default model's recipe (models/registry.py) then asks for a retrain.
# 2: the taxonomy's examples train the topic heads; topics no labelled row names are learnt from them.
# 3: fine-tuning learns topics too and may train a low-rank adapter; sentiment gets a temperature.
# 4: calibration sentences with topics choose the topic threshold.
TRAINING_VERSION = 4
# A topic no labelled row names is learnt from its examples: fewer cannot show what it covers.
MIN_TOPIC_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: SentimentLabel | None
    topics: tuple[str, ...] | None
    domain: str | None = None  # e.g. "telecom": evaluation reports each domain apart


@dataclass(frozen=True)
class TrainingArguments:
    name: str = "voc-model"
    encoder: str = DEFAULT_ENCODER
    seed: int = 13
    sentiment_c: float = 10.0  # inverse L2 strength of the logistic heads
    topic_c: float = 16.0
    # chosen by 5-fold cross-validation on topics_train; calibration sentences with topics refit it
    topic_threshold: float = 0.7
    # splits the unlabelled sentences for a topic learnt from examples (`_weakly_labelled`);
    # chosen with topics_train as validation data (docs/taxonomy.md)
    weak_label_cut: float = 0.5
    fine_tune: bool = False  # fine-tune the whole encoder (but its word embeddings) first
    # or fine-tune a low-rank adapter of this rank (models/adapter.py): the default model's recipe
    adapter_rank: int | None = None
    adapter_file: str | None = None  # or reuse a trained adapter (the default model's, for new heads)
    epochs: int = 3
    learning_rate: float = 4e-5
    head_learning_rate: float = 1e-2
    batch_size: int = 32
    max_length: int = 128
    max_steps: int | None = None  # stop early (smoke tests)
    freeze_embeddings: bool = True  # the 250k-row word-embedding matrix barely moves on Japanese text


def read_examples(path: Path, taxonomy: Taxonomy) -> list[Example]:
    """Read labelled JSONL, checking every row before any training starts."""
    if not path.exists():
        raise ModelError(f"training data {path} does not exist")
    examples = []
    known = set(taxonomy.leaf_ids)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise ModelError(f"{path}:{number}: each line needs a non-empty 'text'")
        label = row.get("label")
        topics = row.get("topics")
        if label is None and topics is None:
            raise ModelError(f"{path}:{number}: a line needs 'label' and/or 'topics'")
        if label is not None and label not in SENTIMENT_LABELS:
            raise ModelError(f"{path}:{number}: label {label!r} is not one of {', '.join(SENTIMENT_LABELS)}")
        if topics is not None:
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise ModelError(f"{path}:{number}: 'topics' must be a list of topic ids")
            unknown = sorted(set(topics) - known)
            if unknown:
                raise ModelError(
                    f"{path}:{number}: unknown topic(s) {', '.join(unknown)} for taxonomy {taxonomy.version}"
                )
        text = clean_comment(row["text"]).text
        sentiment = SentimentLabel(label) if label is not None else None
        domain = row.get("domain") if isinstance(row.get("domain"), str) else None
        examples.append(Example(text, sentiment, tuple(topics) if topics is not None else None, domain))
    if not examples:
        raise ModelError(f"{path} has no examples")
    return examples


def train_model(
    data: Sequence[Path],
    out_dir: Path,
    taxonomy: Taxonomy,
    arguments: TrainingArguments = TrainingArguments(),
    evaluation: Sequence[Path] = (),
    cache_dir: Path | None = None,
    topic_data: Sequence[Path] = (),
    progress: Progress = no_progress,
    calibration: Sequence[Path] = (),
) -> Path:
    """Train and save a model folder; returns its path. Replaces ``out_dir`` atomically.

    ``data`` trains both heads (whatever labels its lines carry) and any fine-tuning;
    ``topic_data`` trains only the topic head, so a sentiment-only corpus can be paired with the
    project's topic examples. ``calibration`` (labelled sentences kept out of training) fits the
    sentiment temperature, and the topic threshold on its lines with topics; without it,
    cross-validation on the training sentences fits the temperature and the threshold stays
    ``arguments.topic_threshold``.
    ``progress`` is told the fine-tuning steps and the texts encoded (`pipeline.progress`).
    """
    started = time.perf_counter()
    training_set = _training_set(data, topic_data, taxonomy)
    _seed_everything(arguments.seed)
    if arguments.encoder != DEFAULT_ENCODER and Path(arguments.encoder).exists():
        # a relative folder would resolve against wherever the model is loaded later
        arguments = replace(arguments, encoder=str(Path(arguments.encoder).resolve()))
    staging = _staging_folder(out_dir)
    tuned = tuned_encoder(
        training_set.tuning_rows, taxonomy.leaf_ids, arguments, staging, cache_dir, progress
    )
    vectors = _embedded(training_set.texts, tuned, progress)
    heads = fit_heads(vectors, training_set, taxonomy, arguments)
    calibration_rows = [e for path in calibration for e in read_examples(path, taxonomy)]
    heads, calibrated = _calibrated(
        heads,
        vectors,
        training_set,
        (calibration_rows, [p.name for p in calibration]),
        tuned,
        arguments,
        taxonomy.leaf_ids,
    )
    heads.save(staging / HEADS_FILE)
    card = _model_card(arguments, heads, tuned, taxonomy, training_set)
    card["calibration"] = calibrated
    _write_card(staging, card)
    if evaluation:
        model = TextClassifier(staging, card, heads, tuned.encoder, tuned.tokenizer)
        for path in evaluation:
            card["metrics"][path.name] = evaluate_model(model, read_examples(path, taxonomy))
    card["seconds"]["total"] = round(time.perf_counter() - started, 1)
    _write_card(staging, card)
    return _replace_folder(staging, out_dir)


def _embedded(texts: Sequence[str], tuned: TunedEncoder, progress: Progress) -> dict[str, np.ndarray]:
    """Each text's vector from the (tuned) encoder; ``progress`` is told the texts encoded."""

    def encoded(done: int) -> None:
        progress("encode", done, len(texts), "texts")

    encoded(0)
    found = embed(texts, tuned.encoder, tuned.tokenizer, prefix=tuned.prefix, encoded=encoded)
    return dict(zip(texts, found, strict=True))


def _calibrated(
    heads: Heads,
    vectors: dict[str, np.ndarray],
    training_set: TrainingSet,
    calibration: tuple[Sequence[Example], list[str]],
    tuned: TunedEncoder,
    arguments: TrainingArguments,
    topic_ids: Sequence[str],
) -> tuple[Heads, dict[str, Any]]:
    """The heads calibrated on the ``calibration`` rows (and the names of their files), and the
    card's record of it (`calibrated_on`). Without rows with a label, the sentiment temperature
    is fitted on out-of-fold logits of the training sentences (5-fold cross-validation)."""
    rows, files = calibration
    found = _vectors_by_text(
        rows, lambda texts: embed(texts, tuned.encoder, tuned.tokenizer, prefix=tuned.prefix)
    )
    if any(e.label is not None for e in rows):
        return calibrated_on(heads, found, rows, topic_ids, files)
    oof_rows = training_set.sentiment_rows
    logits = _out_of_fold_logits(vectors, oof_rows, arguments)
    record = temperature_record(logits, oof_rows, "5-fold cross-validation on the training sentences")
    heads = replace(heads, sentiment_temperature=record["temperature"])
    return _topic_threshold_fitted(heads, found, rows, topic_ids, files, record)


def _vectors_by_text(
    rows: Sequence[Example], encode: Callable[[list[str]], np.ndarray]
) -> dict[str, np.ndarray]:
    """Each distinct text of ``rows`` with its sentence vector, encoded once."""
    texts = sorted({e.text for e in rows})
    return dict(zip(texts, encode(texts), strict=True)) if texts else {}


def calibrated_on(
    heads: Heads,
    vectors: dict[str, np.ndarray],
    rows: Sequence[Example],
    topic_ids: Sequence[str],
    source: list[str],
) -> tuple[Heads, dict[str, Any]]:
    """The heads with the sentiment temperature fitted on ``rows`` with a label, and the topic
    threshold on ``rows`` with topics (when there are any), and the card's record of both.
    ``vectors`` holds each row's sentence vector."""
    sentiment_rows = [e for e in rows if e.label is not None]
    logits = heads.sentiment_logits(np.stack([vectors[e.text] for e in sentiment_rows]))
    record = temperature_record(logits, sentiment_rows, source)
    heads = replace(heads, sentiment_temperature=record["temperature"])
    return _topic_threshold_fitted(heads, vectors, rows, topic_ids, source, record)


def temperature_record(
    logits: np.ndarray, rows: Sequence[Example], source: str | list[str]
) -> dict[str, Any]:
    """The temperature fitted to ``rows``' labels, with the calibration error before and after
    (what the model card records)."""
    gold = np.array([SENTIMENT_LABELS.index(e.label) for e in rows if e.label is not None])
    temperature = fit_temperature(logits, gold)
    before = calibration_metrics(softmax(logits), gold)
    after = calibration_metrics(softmax(logits, temperature), gold)
    return {"temperature": temperature, "fitted_on": source, "sentences": len(rows),
            "ece_before": round(before["ece"], 4), "ece_after": round(after["ece"], 4)}  # fmt: skip


def _topic_threshold_fitted(
    heads: Heads,
    vectors: dict[str, np.ndarray],
    rows: Sequence[Example],
    topic_ids: Sequence[str],
    source: list[str],
    record: dict[str, Any],
) -> tuple[Heads, dict[str, Any]]:
    """The heads with the topic threshold that gives ``rows``' topics (columns ``topic_ids``) the
    best micro-F1 (`models.calibration.fit_topic_threshold`), recorded in ``record`` beside the
    temperature. Only the topics some row names are scored and given it: a topic the rows never
    name (one learnt from examples) keeps its own. The heads stay as they are when no row names a
    topic, or when the fitted threshold does no better on the rows than the current ones."""
    topic_rows = [e for e in rows if e.topics is not None]
    named = labelled_topics(topic_rows)
    if not named:
        return heads, record
    columns = [j for j, topic in enumerate(topic_ids) if topic in named]
    _, probabilities = heads.apply(np.stack([vectors[e.text] for e in topic_rows]))
    probabilities = probabilities[:, columns]
    truth = np.array([[topic_ids[j] in (e.topics or ()) for j in columns] for e in topic_rows])
    threshold, f1 = fit_topic_threshold(probabilities, truth)
    before = round(micro_f1(probabilities >= heads.topic_threshold[columns], truth), 4)
    applied = f1 > before
    fitted = {"threshold": threshold, "applied": applied, "topics": len(columns), "fitted_on": source,
              "sentences": len(topic_rows), "micro_f1_before": before,
              "micro_f1_after": max(f1, before)}  # fmt: skip
    record = record | {"topic_threshold": fitted}
    if not applied:
        return heads, record
    thresholds = heads.topic_threshold.copy()
    thresholds[columns] = threshold
    return replace(heads, topic_threshold=thresholds), record


def recalibrate_model(model: TextClassifier, data: Sequence[Path], out_dir: Path, taxonomy: Taxonomy) -> Path:
    """A copy of ``model``'s folder in ``out_dir`` with the sentiment temperature refitted on
    ``data`` (labelled sentences from the text it will read), and the topic threshold too when
    its lines carry topics, under a new model version. Sentiment labels do not change, only how
    sure the probabilities say the model is."""
    rows = [e for path in data for e in read_examples(path, taxonomy)]
    if not any(e.label is not None for e in rows):
        raise ModelError("the calibration data has no sentiment labels (lines need 'label')")
    found = _vectors_by_text(rows, model.embed)
    heads, record = calibrated_on(model.heads, found, rows, model.topic_ids, [p.name for p in data])
    card = {k: v for k, v in model.card.items() if k != "recipe"}  # no longer the shipped recipe's output
    card |= {"model_version": heads_version(str(card["name"]), heads, str(model.card["model_version"])),
             "calibrated_from": model.card["model_version"], "calibration": record}  # fmt: skip
    staging = _staging_folder(out_dir)
    shutil.rmtree(staging)
    shutil.copytree(model.folder, staging)
    heads.save(staging / HEADS_FILE)
    _write_card(staging, card)
    return _replace_folder(staging, out_dir)


def _staging_folder(out_dir: Path) -> Path:
    """An empty hidden sibling of ``out_dir`` to write a model folder into."""
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _replace_folder(staging: Path, out_dir: Path) -> Path:
    """Put the finished ``staging`` folder in place of ``out_dir``."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def _out_of_fold_logits(
    vectors: dict[str, np.ndarray], rows: Sequence[Example], arguments: TrainingArguments
) -> np.ndarray:
    """Each row's sentiment logits from a head fitted on the other four fifths of the rows."""
    from sklearn.model_selection import StratifiedKFold

    gold = np.array([SENTIMENT_LABELS.index(e.label) for e in rows if e.label is not None])
    logits = np.zeros((len(rows), len(SENTIMENT_LABELS)), dtype=np.float32)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=arguments.seed)
    for fit_on, held in folds.split(np.zeros(len(rows)), gold):
        w, b = _fit_sentiment(vectors, [rows[i] for i in fit_on], arguments)
        logits[held] = np.stack([vectors[rows[i].text] for i in held]) @ w.T + b
    return logits


@dataclass(frozen=True)
class TrainingSet:
    """The labelled files read and checked, and the rows each head is fitted on."""

    files: tuple[tuple[Path, str, int], ...]  # (file, what it trains, rows) in argument order
    texts: list[str]  # every distinct text, sorted: embedded once
    sentiment_rows: list[Example]
    topic_rows: list[Example]  # labelled
    taxonomy_rows: list[Example]  # the taxonomy's examples, one leaf each
    unlabelled: list[str]  # texts of rows without topic labels, sorted
    tuning_rows: list[Example]  # the rows of ``data``: what fine-tuning reads


def _training_set(data: Sequence[Path], topic_data: Sequence[Path], taxonomy: Taxonomy) -> TrainingSet:
    read = {path: read_examples(path, taxonomy) for path in [*data, *topic_data]}
    examples = [e for path in data for e in read[path]]
    topic_only = [e for path in topic_data for e in read[path]]
    sentiment_rows = [e for e in examples if e.label is not None]
    topic_rows = [e for e in [*examples, *topic_only] if e.topics is not None]
    if not sentiment_rows:
        raise ModelError("no sentiment labels in the training data (lines need 'label')")
    check_topic_sources(taxonomy, topic_rows)
    taxonomy_rows = taxonomy_examples(taxonomy)
    files = tuple(
        (path, use, len(read[path]))
        for paths, use in ((data, "sentiment+topics"), (topic_data, "topics"))
        for path in paths
    )
    texts = sorted({e.text for e in [*examples, *topic_only, *taxonomy_rows]})
    unlabelled = sorted({e.text for e in examples if e.topics is None})
    return TrainingSet(files, texts, sentiment_rows, topic_rows, taxonomy_rows, unlabelled, examples)


def taxonomy_examples(taxonomy: Taxonomy) -> list[Example]:
    """Each leaf's examples as topic rows, normalised like labelled text. Parents' examples are
    left out: they do not say which leaf they belong to."""
    return [
        Example(clean_comment(text).text, None, (leaf.id,))
        for leaf in taxonomy.leaves
        for text in leaf.examples
    ]


def labelled_topics(rows: Sequence[Example]) -> frozenset[str]:
    """The topics some labelled row names: their heads are learnt from labelled data."""
    return frozenset(topic for row in rows for topic in row.topics or ())


def check_topic_sources(taxonomy: Taxonomy, topic_rows: Sequence[Example]) -> None:
    """Fail before any training when a leaf has neither labelled rows nor enough examples."""
    named = labelled_topics(topic_rows)
    short = [t for t in taxonomy.leaves if t.id not in named and len(t.examples) < MIN_TOPIC_EXAMPLES]
    if short:
        found = ", ".join(f"{t.id!r} ({len(t.examples)} examples)" for t in short)
        raise ModelError(
            f"topic(s) {found} of taxonomy {taxonomy.version} have no labelled rows to learn from: give "
            f"each at least {MIN_TOPIC_EXAMPLES} `examples` in the taxonomy file (3-10 short sentences in "
            "the customers' words, about that topic only), or add rows labelled with it, e.g. "
            "--topic-data data/labelled/topics_train.jsonl"
        )


def _model_card(
    arguments: TrainingArguments,
    heads: Heads,
    tuned: TunedEncoder,
    taxonomy: Taxonomy,
    training_set: TrainingSet,
) -> dict[str, Any]:
    """The card of a freshly trained folder; its metrics and total time are filled in after."""
    return {
        "name": arguments.name,
        "model_version": heads_version(arguments.name, heads, tuned.identity),
        "encoder": tuned.card,
        "sentiment_labels": list(SENTIMENT_LABELS),
        "topics": list(taxonomy.leaf_ids),
        "taxonomy_version": taxonomy.version,
        "training_data": [
            {"file": path.name, "sha256": file_sha256(path), "rows": rows, "use": use}
            for path, use, rows in training_set.files
        ],
        "examples": {
            "sentiment": len(training_set.sentiment_rows),
            "topics": len(training_set.topic_rows),
            "taxonomy_examples": len(training_set.taxonomy_rows),
            "unlabelled": len(training_set.unlabelled),
        },
        "topics_from_examples": [
            t for t in taxonomy.leaf_ids if t not in labelled_topics(training_set.topic_rows)
        ],
        "arguments": asdict(arguments),
        "seconds": {"fine_tune": round(tuned.seconds, 3), "total": 0.0},
        "code_version": __version__,
        "training_version": TRAINING_VERSION,
        "normalizer_version": NORMALIZER_VERSION,
        "metrics": {},
    }


def _write_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / CARD_FILE).write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")


def fit_heads(
    vectors: dict[str, np.ndarray],
    training_set: TrainingSet,
    taxonomy: Taxonomy,
    arguments: TrainingArguments,
) -> Heads:
    """Both heads on the embedded texts; every topic gets the one threshold that cross-validation
    chose for the labelled topics, which validation showed serves topics learnt from examples too."""
    sentiment_w, sentiment_b = _fit_sentiment(vectors, training_set.sentiment_rows, arguments)
    topic_w, topic_b = fit_topic_heads(vectors, training_set, taxonomy, arguments)
    return Heads(
        sentiment_w=sentiment_w,
        sentiment_b=sentiment_b,
        topic_w=topic_w,
        topic_b=topic_b,
        topic_threshold=np.full(len(taxonomy.leaf_ids), arguments.topic_threshold, dtype=np.float32),
    )


def _fit_sentiment(
    vectors: dict[str, np.ndarray], rows: Sequence[Example], arguments: TrainingArguments
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial head over the three labels (weights [3, H], biases [3])."""
    from sklearn.linear_model import LogisticRegression

    x = np.stack([vectors[e.text] for e in rows])
    y = [SENTIMENT_LABELS.index(e.label) for e in rows if e.label is not None]
    sentiment = LogisticRegression(C=arguments.sentiment_c, max_iter=5000, random_state=arguments.seed).fit(
        x, y
    )
    if list(sentiment.classes_) != [0, 1, 2]:
        raise ModelError("the sentiment data needs examples of all three labels")
    return sentiment.coef_.astype(np.float32), sentiment.intercept_.astype(np.float32)


def fit_topic_heads(
    vectors: dict[str, np.ndarray],
    training_set: TrainingSet,
    taxonomy: Taxonomy,
    arguments: TrainingArguments,
) -> tuple[np.ndarray, np.ndarray]:
    """One logistic head per leaf: weights [T, H] and biases [T].

    A leaf some labelled row names learns from the labelled rows and the taxonomy's examples, every
    row without it counting against it. A leaf no labelled row names is newer than the labelled
    data, whose rows say nothing about it (one about it carries no topic, or a neighbour's), so
    they cannot count against it: it learns from the examples plus weak labels on every text not
    labelled for it (`_weakly_labelled`)."""
    named = labelled_topics(training_set.topic_rows)
    supervised = [*training_set.topic_rows, *training_set.taxonomy_rows]
    examples = {e.text for e in training_set.taxonomy_rows}
    others = sorted({*training_set.unlabelled, *(e.text for e in training_set.topic_rows)} - examples)
    from_examples = [topic for topic in taxonomy.leaf_ids if topic not in named]
    seeded = {t: taxonomy.seed_topics(w.lemma for w in tokenize(t)) for t in others} if from_examples else {}
    dimension = len(next(iter(vectors.values())))
    topic_w = np.zeros((len(taxonomy.leaf_ids), dimension), dtype=np.float32)
    topic_b = np.zeros(len(taxonomy.leaf_ids), dtype=np.float32)
    for i, topic in enumerate(taxonomy.leaf_ids):
        if topic in from_examples:
            x, target = _weakly_labelled(
                vectors, topic, training_set.taxonomy_rows, others, seeded, arguments
            )
        else:
            x, target = _topic_rows(vectors, supervised, topic)
        topic_w[i], topic_b[i] = _topic_head(x, target, topic, arguments)
    return topic_w, topic_b


def _weakly_labelled(
    vectors: dict[str, np.ndarray],
    topic: str,
    taxonomy_rows: Sequence[Example],
    others: Sequence[str],
    seeded: dict[str, frozenset[str]],
    arguments: TrainingArguments,
) -> tuple[np.ndarray, np.ndarray]:
    """The examples, plus texts labelled where two weak signals that fail differently agree: a
    head fitted on the examples alone (it knows phrasing, but ten sentences make it over-reach)
    and the topic's seed terms (precise words, blind to context). A text the head scores at or
    above ``weak_label_cut`` and that has a seed term of the topic counts for it; one below the
    cut without a seed term counts against it; the others, where the signals disagree, are left
    out."""
    x, target = _topic_rows(vectors, taxonomy_rows, topic)
    if not others:
        return x, target
    w, b = _topic_head(x, target, topic, arguments)
    pool = np.stack([vectors[text] for text in others])
    above = 1.0 / (1.0 + np.exp(-(pool @ w + b))) >= arguments.weak_label_cut
    seed = np.array([topic in seeded[text] for text in others])
    positive, negative = above & seed, ~above & ~seed
    x = np.vstack([x, pool[positive], pool[negative]])
    return x, np.concatenate([target, np.ones(positive.sum(), bool), np.zeros(negative.sum(), bool)])


def _topic_rows(
    vectors: dict[str, np.ndarray], rows: Sequence[Example], topic: str
) -> tuple[np.ndarray, np.ndarray]:
    """The rows' vectors, and whether each row names ``topic`` (a row that does not counts against it)."""
    return np.stack([vectors[e.text] for e in rows]), np.array([topic in (e.topics or ()) for e in rows])


def _topic_head(
    x: np.ndarray, target: np.ndarray, topic: str, arguments: TrainingArguments
) -> tuple[np.ndarray, float]:
    """A class-balanced logistic head: a topic is rare, and a few examples must still weigh."""
    from sklearn.linear_model import LogisticRegression

    if target.sum() == 0 or target.all():
        raise ModelError(f"topic {topic!r} needs both positive and negative examples in the topic data")
    head = LogisticRegression(
        C=arguments.topic_c, class_weight="balanced", max_iter=5000, random_state=arguments.seed
    ).fit(x, target)
    return head.coef_[0], float(head.intercept_[0])


def evaluate_model(model: TextClassifier, examples: Sequence[Example]) -> dict[str, Any]:
    """Sentiment metrics on rows with a label; topic metrics on rows with topics."""
    result: dict[str, Any] = {}
    texts = [e.text for e in examples]
    predictions = model.predict(texts)
    labelled = [i for i, e in enumerate(examples) if e.label is not None]
    if labelled:
        gold = [examples[i].label or "" for i in labelled]
        domains = [examples[i].domain for i in labelled]
        result.update(sentiment_metrics(gold, predictions.sentiment[labelled], domains))
    with_topics = [i for i, e in enumerate(examples) if e.topics is not None]
    if with_topics:
        chosen = predictions.topics >= predictions.topic_threshold
        gold_topics = [list(examples[i].topics or ()) for i in with_topics]
        predicted_topics = [
            [t for j, t in enumerate(predictions.topic_ids) if chosen[i, j]] for i in with_topics
        ]
        result["topics"] = multilabel_metrics(gold_topics, predicted_topics, predictions.topic_ids)
    return result


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
