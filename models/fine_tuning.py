"""Fine-tuning the encoder before the heads are fitted: the whole encoder (``voc train
--fine-tune``) or a low-rank adapter (`models.adapter`, the default model's recipe).

Both run one loop: temporary linear heads over the pooled, L2-normalised sentence vector (the
vector the real heads will read), trained with AdamW under a warm-up then linear decay. The loss
is the sentiment cross-entropy on rows with a label plus the topics' binary cross-entropy on rows
with topic labels, so a corpus labelled for both teaches the encoder both. The temporary heads
are thrown away: the shipped heads are refitted on the tuned vectors (`models.training`).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.adapter import ADAPTER_FILE, adapted_encoder_folder, adapter_entry, save_adapter, with_adapter
from models.cache import default_cache_dir
from models.classifier import ModelError, encoder_folder, encoder_prefix, load_encoder
from pipeline.checksums import file_sha256
from pipeline.contracts import SENTIMENT_LABELS
from pipeline.progress import Progress, no_progress

if TYPE_CHECKING:
    from models.training import Example, TrainingArguments

# An adapter's temporary heads read the pooled vectors times this. The vectors are unit length,
# so a linear head on them gives small logits, and a rank-8 update moves them little: the scale
# (the role of the temperature in contrastive training) lets the heads reach confident
# probabilities. Full fine-tuning reads them as they are: with the scale it lost 2 points of
# macro-F1 on jrte_pn dev (0.808 against 0.830).
ADAPTER_LOGIT_SCALE = 10.0


@dataclass
class TunedEncoder:
    """The encoder the heads are fitted on, and what the model card says about it."""

    encoder: Any
    tokenizer: Any
    prefix: str
    identity: str  # names the encoder's weights in the model version
    card: dict[str, Any]  # the card's "encoder" entry
    seconds: float  # spent fine-tuning


def tuned_encoder(
    rows: Sequence[Example],
    topic_ids: Sequence[str],
    arguments: TrainingArguments,
    folder: Path,
    cache_dir: Path | None,
    progress: Progress = no_progress,
) -> TunedEncoder:
    """``arguments.encoder`` as it is, or with a low-rank adapter merged in (``adapter_rank``:
    one trained here; ``adapter_file``: one trained before, e.g. the default model's), either
    copied into the model ``folder``; and with ``fine_tune``, that encoder fully fine-tuned
    (saved into ``folder``)."""
    if arguments.adapter_rank is not None and (arguments.fine_tune or arguments.adapter_file):
        raise ModelError("train an adapter, or fine-tune the whole encoder or reuse an adapter, not both")
    prefix = encoder_prefix(arguments.encoder)
    card: dict[str, Any] = {"name": arguments.encoder, "fine_tuned": arguments.fine_tune, "prefix": prefix,
                            "pooling": "mean+l2"}  # fmt: skip
    if arguments.adapter_file:  # the merged encoder is loaded, never the plain one as well
        shutil.copyfile(arguments.adapter_file, folder / ADAPTER_FILE)
        card["adapter"] = adapter_entry(folder / ADAPTER_FILE)
        adapted = _adapted(arguments, folder, card, cache_dir, 0.0)
        if not arguments.fine_tune:
            return adapted
        encoder, tokenizer = adapted.encoder, adapted.tokenizer
    else:
        encoder, tokenizer = load_encoder(arguments.encoder, cache_dir)
    if arguments.fine_tune:
        return _fully_fine_tuned(encoder, tokenizer, rows, topic_ids, arguments, folder, card, progress)
    if arguments.adapter_rank is not None:
        started = time.perf_counter()
        wrapped = with_adapter(encoder, arguments.adapter_rank)
        fine_tune_encoder(
            wrapped, tokenizer, rows, topic_ids, arguments, prefix, progress, ADAPTER_LOGIT_SCALE
        )
        card["adapter"] = save_adapter(wrapped, folder / ADAPTER_FILE, arguments.adapter_rank)
        return _adapted(arguments, folder, card, cache_dir, time.perf_counter() - started)
    return TunedEncoder(encoder, tokenizer, prefix, arguments.encoder, card, 0.0)


def _fully_fine_tuned(
    encoder: Any,
    tokenizer: Any,
    rows: Sequence[Example],
    topic_ids: Sequence[str],
    arguments: TrainingArguments,
    folder: Path,
    card: dict[str, Any],
    progress: Progress,
) -> TunedEncoder:
    """The whole encoder fine-tuned, saved into the model folder (``encoder/``)."""
    started = time.perf_counter()
    fine_tune_encoder(encoder, tokenizer, rows, topic_ids, arguments, card["prefix"], progress)
    encoder.save_pretrained(folder / "encoder")
    tokenizer.save_pretrained(folder / "encoder")
    digest = file_sha256(folder / "encoder" / "model.safetensors")
    identity = f"{arguments.encoder}+fine-tuned-{digest[:10]}"
    return TunedEncoder(encoder, tokenizer, card["prefix"], identity, card, time.perf_counter() - started)


def _adapted(
    arguments: TrainingArguments, folder: Path, card: dict[str, Any], cache_dir: Path | None, seconds: float
) -> TunedEncoder:
    """The encoder with the model folder's adapter merged in, loaded from the model cache: the
    same weights the model will load later."""
    cache = cache_dir or default_cache_dir()
    merged = adapted_encoder_folder(encoder_folder(arguments.encoder, cache), folder / ADAPTER_FILE, cache)
    encoder, tokenizer = load_encoder(str(merged))
    identity = f"{arguments.encoder}+adapter-{card['adapter']['sha256'][:10]}"
    return TunedEncoder(encoder, tokenizer, card["prefix"], identity, card, seconds)


@dataclass
class TemporaryHeads:
    sentiment: Any  # torch.nn.Linear(hidden, 3)
    topics: Any  # torch.nn.Linear(hidden, T), or None when no row has topic labels
    topic_ids: tuple[str, ...]
    scale: float  # the pooled vectors are multiplied by this before the heads

    def parameters(self) -> list[Any]:
        return [*self.sentiment.parameters(), *(self.topics.parameters() if self.topics else [])]


def fine_tune_encoder(
    encoder: Any,
    tokenizer: Any,
    rows: Sequence[Example],
    topic_ids: Sequence[str],
    arguments: TrainingArguments,
    prefix: str,
    progress: Progress = no_progress,
    logit_scale: float = 1.0,
) -> None:
    """Train the encoder's trainable weights (all but the word embeddings, or only an adapter's)
    on ``rows``; ``progress`` is told each optimizer step."""
    import torch

    hidden = int(encoder.config.hidden_size)
    with_topics = any(e.topics is not None for e in rows) and len(topic_ids) > 0
    heads = TemporaryHeads(
        torch.nn.Linear(hidden, len(SENTIMENT_LABELS)),
        torch.nn.Linear(hidden, len(topic_ids)) if with_topics else None,
        tuple(topic_ids),
        logit_scale,
    )
    if arguments.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": trainable, "lr": arguments.learning_rate},
            {"params": heads.parameters(), "lr": arguments.head_learning_rate},
        ],
        weight_decay=0.01,
    )
    total = fine_tune_steps(len(rows), arguments)
    scheduler = _warmup_then_linear_decay(optimizer, total)
    encoder.train()
    progress("fine-tune", 0, total, "steps")
    for step, batch_rows in enumerate(_batches(rows, arguments, total), start=1):
        loss = tuning_loss(encoder, tokenizer, heads, batch_rows, prefix, arguments.max_length)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        progress("fine-tune", step, total, "steps")
    encoder.eval()
    encoder.get_input_embeddings().weight.requires_grad_(True)


def _batches(rows: Sequence[Example], arguments: TrainingArguments, total: int) -> list[list[Example]]:
    """Shuffled batches of every epoch (seeded), cut at ``total`` steps."""
    order = list(range(len(rows)))
    rng = random.Random(arguments.seed)
    batches = []
    for _ in range(arguments.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), arguments.batch_size):
            batches.append([rows[i] for i in order[start : start + arguments.batch_size]])
    return batches[:total]


def fine_tune_steps(n_rows: int, arguments: TrainingArguments) -> int:
    """Optimizer steps: every batch of every epoch, or ``max_steps`` if that is fewer."""
    steps_per_epoch = math.ceil(n_rows / arguments.batch_size)
    if arguments.max_steps is None:
        return steps_per_epoch * arguments.epochs
    return min(arguments.max_steps, steps_per_epoch * arguments.epochs)


def _warmup_then_linear_decay(optimizer: Any, total: int) -> Any:
    """Learning rates rise linearly over the first tenth of the steps, then fall linearly to 0."""
    import torch

    warmup = max(1, total // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )


def tuning_loss(
    encoder: Any, tokenizer: Any, heads: TemporaryHeads, rows: Sequence[Example], prefix: str, max_length: int
) -> Any:
    """Sentiment cross-entropy over the rows with a label, plus topic binary cross-entropy over
    the rows with topic labels, on the batch's pooled, L2-normalised vectors."""
    import torch

    batch = tokenizer(
        [prefix + e.text for e in rows],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)
    loss = pooled.new_zeros(())
    labelled = [i for i, e in enumerate(rows) if e.label is not None]
    if labelled:
        gold = torch.tensor([SENTIMENT_LABELS.index(rows[i].label) for i in labelled])
        loss = loss + torch.nn.functional.cross_entropy(heads.sentiment(pooled[labelled] * heads.scale), gold)
    with_topics = [i for i, e in enumerate(rows) if e.topics is not None]
    if with_topics and heads.topics is not None:
        target = torch.tensor(
            [[float(t in (rows[i].topics or ())) for t in heads.topic_ids] for i in with_topics]
        )
        logits = heads.topics(pooled[with_topics] * heads.scale)
        loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    return loss
