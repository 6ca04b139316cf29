"""The naive baseline: ``transformers.pipeline("text-classification")`` fed one sentence at a time.

It runs the same model as the pipeline's reference path — the float32 encoder with the full
vocabulary, mean pooling and the trained sentiment head — wrapped as a sequence classifier, so
the only differences from our classify stage are how the work is fed and run.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.classifier import TextClassifier
from models.embedding import mean_pool
from pipeline.contracts import SENTIMENT_LABELS


def naive_classifier(model: TextClassifier) -> Any:
    """A text-classification pipeline over the reference model's encoder and sentiment head."""
    import torch
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.utils import logging as hf_logging

    encoder = model.encoder
    config = encoder.config.__class__.from_dict(encoder.config.to_dict())
    config.id2label = dict(enumerate(SENTIMENT_LABELS))
    config.label2id = {label: i for i, label in enumerate(SENTIMENT_LABELS)}

    class EncoderWithSentimentHead(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = "encoder"

        def __init__(self) -> None:
            super().__init__(config)
            self.encoder = encoder
            self.head = torch.nn.Linear(config.hidden_size, len(SENTIMENT_LABELS))
            with torch.no_grad():
                self.head.weight.copy_(
                    torch.from_numpy(np.asarray(model.heads.sentiment_w, dtype=np.float32))
                )
                self.head.bias.copy_(torch.from_numpy(np.asarray(model.heads.sentiment_b, dtype=np.float32)))

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any
        ) -> SequenceClassifierOutput:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return SequenceClassifierOutput(logits=self.head(mean_pool(states, attention_mask)))

    wrapped = EncoderWithSentimentHead().eval()
    # the pipeline logs that it does not know this class; it runs any model returning logits
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(hf_logging.CRITICAL)
    try:
        return pipeline("text-classification", model=wrapped, tokenizer=model.tokenizer, device=-1)
    finally:
        hf_logging.set_verbosity(verbosity)


def run_naive(model: TextClassifier, sentences: Sequence[str], repeats: int = 2) -> tuple[float, list[str]]:
    """Seconds for the sentences one call each (the best of ``repeats`` passes: the least
    disturbed by other work on the machine), and the labels it gave."""
    classify = naive_classifier(model)
    prefix = model.card["encoder"]["prefix"]
    inputs = [prefix + unicodedata.normalize("NFKC", s) for s in sentences]
    classify(inputs[0])  # first-call set-up is not throughput
    best = float("inf")
    labels: list[str] = []
    for _ in range(repeats):
        start = time.perf_counter()
        labels = [classify(text)[0]["label"] for text in inputs]
        best = min(best, time.perf_counter() - start)
    return best, labels
