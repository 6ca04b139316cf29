"""Trim a SentencePiece-Unigram encoder's vocabulary to the pieces Japanese comments can use.

The default encoder's word-embedding matrix (250,037 x 384) holds most of its parameters, yet
most of its pieces are Cyrillic, Arabic, Indic, Hangul, ... and never occur in Japanese survey
comments. Dropping them changes no output for Japanese text:

- Unigram's Viterbi search only considers pieces that are substrings of the text being
  segmented, so any piece it could pick for a text made of kept characters is itself kept;
- the search scores pieces by their own scores and an unknown character by
  ``min(score) - 10``, so keeping the scores (and the lowest one) keeps every path's score;
- the kept pieces keep their embedding rows, only renumbered.

So for every text whose characters the rule keeps, the trimmed tokenizer yields the same
pieces and the trimmed model the same hidden states (``japanese_piece`` adds one condition for
Greek letters and Д, see there). Characters outside the rule become ``<unk>``, as any
character missing from a vocabulary does.

This module trims a loaded model and tokenizer in memory; `models.trimmed_encoder` writes the
trimmed copy of an encoder folder into the model cache.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.errors import VocError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SPECIAL_PIECES = frozenset({"<s>", "<pad>", "</s>", "<unk>", "<mask>"})

# Code-point ranges (first, last) whose characters occur in Japanese comments after NFKC.
_KEPT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x007F),  # ASCII: romaji, English words, digits, URLs, emoticons
    (0x00A0, 0x017F),  # Latin-1 Supplement + Latin Extended-A: café, naïve, ×, °, ±, ¥
    # Spacing modifiers and combining marks: NFKC turns the ´ ￣ ¨ ˘ of kaomoji
    # ((´・ω・`) (￣▽￣) (˘ω˘)) into a space plus a combining mark
    (0x02B0, 0x036F),
    # Punctuation, currency, letterlike (℃ №), roman numerals, arrows, math, technical (⌚),
    # enclosed alphanumerics (①), box drawing, blocks (the metaspace ▁ is U+2581), shapes
    # (■ ▲ ○), misc symbols (☆ ☀), dingbats (✨ ❤), supplemental arrows and symbols (⭐)
    (0x2000, 0x2BFF),
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals: text copied out of PDFs
    (0x3000, 0x30FF),  # CJK symbols and punctuation (、。「」〜), hiragana, katakana
    (0x3190, 0x319F),  # kanbun marks
    (0x31F0, 0x31FF),  # katakana phonetic extensions (ㇰ ㇷ)
    (0x3200, 0x33FF),  # enclosed CJK (㈱ ㊤) and CJK compatibility (㍉ ㌔)
    (0x3400, 0x4DBF),  # CJK unified ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE00, 0xFE0F),  # variation selectors: emoji presentation (❤️)
    (0xFE30, 0xFE4F),  # CJK compatibility forms (vertical punctuation)
    (0xFF00, 0xFFEF),  # halfwidth and fullwidth forms, for text that skipped NFKC
    (0x1F000, 0x1FAFF),  # emoji and pictographs, 🈁 and other enclosed ideographs, flags
    (0x20000, 0x2FA1F),  # CJK Extensions B-F and compatibility supplement (𠮷 in names)
)
_RANGE_STARTS = [first for first, _ in _KEPT_RANGES]
# Letters of other alphabets that Japanese text uses one at a time, never in words: Greek
# (α版, β版, γ-GTP, Ω, μ from NFKC of µ and ㎛, the ω of (・ω・)) and the Cyrillic Д/д of
# kaomoji ((´Д`) Σ(ﾟдﾟ)). A piece may hold one of them: 126 pieces are kept instead of the
# 5,103 Greek and 31,671 Cyrillic ones. The dropped pieces that hold two of them and no other
# dropped character have them side by side, so the exactness above holds for text without
# two such letters in a row.
_GREEK = (0x0370, 0x03FF)
_CYRILLIC_DE = frozenset({0x0414, 0x0434})


class VocabularyError(VocError):
    """The vocabulary cannot be trimmed: not a SentencePiece-Unigram fast tokenizer, or a model
    whose word embeddings do not match the tokenizer."""


def _kept_char(code_point: int) -> bool:
    i = bisect.bisect_right(_RANGE_STARTS, code_point) - 1
    return i >= 0 and code_point <= _KEPT_RANGES[i][1]


def japanese_piece(piece: str) -> bool:
    """Whether a vocabulary piece can occur in Japanese survey comments (after NFKC)."""
    if piece in SPECIAL_PIECES:
        return True
    lone = 0
    for char in piece:
        code_point = ord(char)
        if _GREEK[0] <= code_point <= _GREEK[1] or code_point in _CYRILLIC_DE:
            lone += 1
            if lone > 1:
                return False
        elif not _kept_char(code_point):
            return False
    return bool(piece)


def japanese_rule_id() -> str:
    """A fingerprint of the rule above, so a folder trimmed under another rule is rebuilt."""
    rule = {
        "ranges": _KEPT_RANGES,
        "lone_letters": [_GREEK, sorted(_CYRILLIC_DE)],
        "specials": sorted(SPECIAL_PIECES),
    }
    return hashlib.sha256(json.dumps(rule).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- trimming


def _kept_ids(vocab: list[list[Any]], keep: Callable[[str], bool], always: set[int]) -> list[int]:
    """Ids of the kept pieces in their original order.

    Unigram scores an unknown character ``min(score) - 10`` over the whole vocabulary, so the
    lowest-scoring piece is kept too: otherwise that penalty, and with it the choice between
    ``<unk>`` and a longer piece around an unknown character, could change.
    """
    scores = [float(score) for _, score in vocab]
    kept = {i for i, (piece, _) in enumerate(vocab) if keep(piece)} | always
    lowest = min(scores)
    if min(scores[i] for i in kept) > lowest:
        kept.add(scores.index(lowest))
    return sorted(kept)


def _remap_post_processor(processor: dict[str, Any] | None, new_id: Callable[[int], int]) -> None:
    """Renumber the special-token ids a post-processor inserts (<s> A </s> and the like)."""
    if processor is None:
        return
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        for special in processor["special_tokens"].values():
            special["ids"] = [new_id(i) for i in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            processor[key][1] = new_id(processor[key][1])
    elif kind == "Sequence":
        for inner in processor["processors"]:
            _remap_post_processor(inner, new_id)
    elif kind != "ByteLevel":
        raise VocabularyError(f"cannot renumber the special tokens of a {kind} post-processor")


def _trimmed_backend_json(
    state: dict[str, Any], keep: Callable[[str], bool]
) -> tuple[dict[str, Any], list[int]]:
    """The tokenizer JSON with only the kept pieces, and the kept old ids in new-id order."""
    model = state.get("model") or {}
    if model.get("type") != "Unigram":
        raise VocabularyError(
            f"vocabulary trimming needs a SentencePiece Unigram tokenizer (XLM-R, E5, T5); this "
            f"one is {model.get('type')!r}, whose segmentation may use pieces that trimming "
            f"removes: use the full model"
        )
    vocab: list[list[Any]] = model["vocab"]
    unk_id = model.get("unk_id")
    always = {token["id"] for token in state.get("added_tokens", [])}
    if unk_id is not None:
        always.add(unk_id)
    kept = _kept_ids(vocab, keep, always)
    old_to_new = {old: new for new, old in enumerate(kept)}

    def new_id(old: int) -> int:
        try:
            return old_to_new[old]
        except KeyError:
            raise VocabularyError(f"token id {old} ({vocab[old][0]!r}) is used but not kept") from None

    model["vocab"] = [vocab[i] for i in kept]
    if unk_id is not None:
        model["unk_id"] = new_id(unk_id)
    for token in state.get("added_tokens", []):
        token["id"] = new_id(token["id"])
    _remap_post_processor(state.get("post_processor"), new_id)
    if state.get("padding"):
        state["padding"]["pad_id"] = new_id(state["padding"]["pad_id"])
    return state, kept


def _rebuild_tokenizer(tokenizer: PreTrainedTokenizerBase, state: dict[str, Any]) -> PreTrainedTokenizerBase:
    """The transformers wrapper around the trimmed backend, built like ``build_tokenizer``.

    Special tokens are passed as the original ``AddedToken`` objects so their flags (``<mask>``
    strips the space before it) survive; their ids come from the new vocabulary.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(json.dumps(state, ensure_ascii=False))
    added = {str(token): token for token in tokenizer.added_tokens_decoder.values()}
    specials: dict[str, Any] = {
        role: added.get(str(value), value)
        for role, value in tokenizer.special_tokens_map.items()
        if isinstance(value, str)
    }
    extra: dict[str, Any] = {}
    if "add_prefix_space" in tokenizer.init_kwargs:
        extra["add_prefix_space"] = tokenizer.init_kwargs["add_prefix_space"]
    trimmed: PreTrainedTokenizerBase = type(tokenizer)(
        tokenizer_object=backend,
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        **specials,
        **extra,
    )
    return trimmed


def trim_vocabulary(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    keep: Callable[[str], bool] = japanese_piece,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A copy of ``model`` and ``tokenizer`` with only the pieces ``keep`` accepts.

    Kept pieces stay in their order (the specials in front keep ids 0-3); the tokenizer's
    unknown and added tokens are always kept. The inputs are left unchanged.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabularyError(
            f"vocabulary trimming needs a fast (tokenizers-backed) tokenizer, got "
            f"{type(tokenizer).__name__}: load it with AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    if model.get_output_embeddings() is not None:
        raise VocabularyError(
            f"{type(model).__name__} has an output layer over the vocabulary; trim the encoder "
            f"(AutoModel) instead"
        )
    state, kept = _trimmed_backend_json(json.loads(backend.to_str()), keep)
    old_to_new = {old: new for new, old in enumerate(kept)}
    old_embeddings = model.get_input_embeddings()
    new_embeddings = _kept_rows(old_embeddings, kept, old_to_new)
    # The memo hands deepcopy the new embedding layer in place of the old one, so the
    # 250k-row matrix is never copied.
    trimmed_model = copy.deepcopy(model, {id(old_embeddings): new_embeddings})
    config = trimmed_model.config
    config.vocab_size = len(kept)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        old = getattr(config, key, None)
        if isinstance(old, int):
            if old not in old_to_new:
                raise VocabularyError(f"config.{key}={old} is not a kept piece")
            setattr(config, key, old_to_new[old])

    trimmed_tokenizer = _rebuild_tokenizer(tokenizer, state)
    _check_special_ids(tokenizer, trimmed_tokenizer, old_to_new)
    return trimmed_model, trimmed_tokenizer


def _kept_rows(old_embeddings: Any, kept: list[int], old_to_new: dict[int, int]) -> torch.nn.Embedding:
    """A new word-embedding layer holding the ``kept`` rows of ``old_embeddings``, renumbered."""
    import torch

    if not isinstance(old_embeddings, torch.nn.Embedding):
        raise VocabularyError(f"word embeddings are a {type(old_embeddings).__name__}, not nn.Embedding")
    n_rows = old_embeddings.num_embeddings
    if kept[-1] >= n_rows:
        raise VocabularyError(
            f"the tokenizer has ids up to {kept[-1]} but the model only {n_rows} embedding rows: "
            f"they do not belong together"
        )
    weight = old_embeddings.weight
    index = torch.tensor(kept, dtype=torch.long, device=weight.device)
    pad = old_embeddings.padding_idx
    new_embeddings = torch.nn.Embedding(
        len(kept),
        old_embeddings.embedding_dim,
        padding_idx=old_to_new.get(pad) if pad is not None else None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        new_embeddings.weight.copy_(weight.index_select(0, index))
    new_embeddings.weight.requires_grad_(weight.requires_grad)
    return new_embeddings


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise VocabularyError(f"{token!r} has no single id in {type(tokenizer).__name__}")
    return found


def _check_special_ids(
    full: PreTrainedTokenizerBase, trimmed: PreTrainedTokenizerBase, old_to_new: dict[int, int]
) -> None:
    """Every special token must land on its old row, or the model would read the wrong embedding."""
    if trimmed.backend_tokenizer.get_vocab_size() != len(old_to_new):
        raise VocabularyError(f"{type(full).__name__} rebuilt its own vocabulary instead of the trimmed one")
    for token in full.all_special_tokens:
        old, new = _token_id(full, token), _token_id(trimmed, token)
        if old_to_new.get(old) != new:
            raise VocabularyError(
                f"special token {token!r}: id {old} became {new}, expected {old_to_new.get(old)}"
            )
