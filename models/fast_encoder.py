"""The fast inference path: the encoder with its vocabulary trimmed to Japanese, exported to ONNX
and quantized to int8, run by ONNX Runtime.

Why each step (figures in the README's performance section, from ``bench/``):

- **Vocabulary trimmed** (`models.vocabulary`): XLM-R's 250,002 pieces cover a hundred
  languages; Japanese comments can only use the pieces made of characters they contain, so the
  trimmed embedding matrix gives identical vectors on Japanese text at about half the size.
  Characters of other scripts (Hangul, Vietnamese letters, Cyrillic words) become ``<unk>``:
  a comment written in Korean is read from its Japanese parts only, so a survey with many such
  comments should run ``model.inference: reference``. Encoders with another kind of tokenizer
  (a WordPiece Japanese BERT) are exported untrimmed.
- **int8 with a scale per token** (`models.int8`): integer matrix products in ONNX Runtime,
  faster than float32 and than PyTorch's dynamic int8, and, unlike both libraries' dynamic
  quantization, a sentence's result does not depend on the sentences batched with it. The
  accuracy change on the jrte dev set is measured, not assumed; ``model.inference: reference``
  runs the PyTorch float32 encoder instead.
- **One pool of threads** over the cores for the operators and none between them: a second
  pool would oversubscribe two cores.

The exported graph includes mean pooling and L2 normalisation, so it returns the sentence
vectors `models.embedding.embed` returns, up to quantization. Each folder is built once
per source encoder into the model cache (about half a minute) and reused; at run time only
``onnxruntime`` and the tokenizer are needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.cache import build_folder_once, folder_identity
from models.default_encoder import MARKER_FILE
from models.embedding import PaddingStats, embed_with, mean_pool
from models.int8 import (
    INT8_VERSION,
    IntegerKernel,
    NoExactKernelError,
    integer_kernel,
    with_unsigned_weights,
)
from models.trimmed_encoder import TRIM_MARKER_FILE, TRIMMED_SUFFIX, can_trim, trimmed_encoder_folder
from pipeline.checksums import file_sha256
from pipeline.errors import VocError

# bump when what is written changes: an older folder is rebuilt instead of reused
FAST_FORMAT_VERSION = 3
ONNX_FILE = "encoder-int8.onnx"
FAST_MARKER_FILE = "voc-fast.json"
FAST_FOLDER_SUFFIX = "-onnx-int8"
_OPSET = 18  # per-axis QuantizeLinear with run-time scales, ReduceMax with an axes input
# two lengths, so the exported graph is traced with a padded batch
_EXPORT_EXAMPLES = ("配送が遅い", "店員さんの対応が丁寧でした。")


class FastEncoderError(VocError):
    """The fast encoder could not be built from its source encoder."""


def _expected_marker(base: Path, trimmed: bool) -> dict[str, Any]:
    """What the int8 file is made from: the source folder's build, trimmed or not, and the
    version of the quantizing rewrite."""
    return {
        "format": FAST_FORMAT_VERSION,
        "source": folder_identity(base, (TRIM_MARKER_FILE, MARKER_FILE)),
        "trimmed": trimmed,
        "int8": INT8_VERSION,
    }


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / FAST_MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _cache_name(folder: Path, cache_dir: Path) -> str:
    """A folder's name in the cache: its own for a folder built there (the default encoder),
    else with a hash of its path, so two fine-tuned ``encoder`` folders never share a build."""
    if folder.resolve().parent == cache_dir.resolve():
        return folder.name
    return f"{folder.name}-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]}"


def fast_encoder_folder(source: Path, cache_dir: Path) -> Path:
    """The int8 ONNX copy of the transformers encoder folder ``source`` (trimmed to Japanese
    first when its tokenizer allows), built once into ``cache_dir``.

    A folder built from another source build, or by another version of the int8 rewrite, is
    rebuilt."""
    source = Path(source)
    trimmed = can_trim(source)
    base = (
        trimmed_encoder_folder(source, cache_dir / (_cache_name(source, cache_dir) + TRIMMED_SUFFIX))
        if trimmed
        else source
    )
    target = cache_dir / (_cache_name(base, cache_dir) + FAST_FOLDER_SUFFIX)
    expected = _expected_marker(base, trimmed)

    def is_ready(folder: Path) -> bool:
        marker = _read_marker(folder)
        if marker is None or not (folder / ONNX_FILE).is_file():
            return False
        return {k: v for k, v in marker.items() if k in expected} == expected

    def write(staging: Path) -> None:
        digest = _export_int8(base, staging)
        marker = expected | {"onnx_sha256": digest}
        (staging / FAST_MARKER_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", "utf-8")

    return build_folder_once(target, is_ready, write)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """The exporter warns about things meant for its own developers (deprecations, constant
    folding); keep the user's terminal to what matters."""
    loggers = [logging.getLogger("torch.onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(base: Path, path: Path) -> None:
    """Write the float32 ONNX graph of the encoder in ``base``, mean pooling and L2 norm included."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    # eager attention exports as plain MatMul/Softmax, which ONNX Runtime fuses; the SDPA export
    # and the dynamo exporter's graph ran about a quarter slower here
    model = AutoModel.from_pretrained(base, attn_implementation="eager")
    model.eval()
    sample = AutoTokenizer.from_pretrained(base)(list(_EXPORT_EXAMPLES), padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "sequence"}
    with quiet_export(), torch.inference_mode(False):
        torch.onnx.export(
            _pooled(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_vector"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "sentence_vector": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,
        )


def _export_int8(base: Path, staging: Path) -> str:
    """Export ``base`` to ONNX, quantize it (`models.int8`) next to its tokenizer; returns the
    int8 file's sha256."""
    import onnx
    from transformers import AutoTokenizer

    from models.int8 import quantize_per_token

    print(f"Building the fast encoder from {base} (once; about half a minute)…", flush=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(staging)
    fp32 = staging / "encoder-fp32.onnx"
    export_onnx(base, fp32)
    try:
        quantized = quantize_per_token(onnx.load(str(fp32)))
    except ValueError as exc:
        raise FastEncoderError(f"cannot quantize the ONNX export of {base}: {exc}") from exc
    fp32.unlink()
    onnx.save(quantized, str(staging / ONNX_FILE))
    return file_sha256(staging / ONNX_FILE)


def _pooled(encoder: Any) -> Any:
    """Encoder + mean pooling + L2 norm as one module, so the ONNX graph returns sentence vectors."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return mean_pool(states, attention_mask)

    return Pooled()


def _exact_integer_kernel() -> IntegerKernel:
    try:
        return integer_kernel()
    except NoExactKernelError as exc:
        raise FastEncoderError(f"{exc}; set model.inference: reference") from exc


def _graph_for(path: Path, kernel: IntegerKernel) -> str | bytes:
    """The int8 file as written (u8×s8), or rewritten in memory to u8×u8 where this CPU's u8×s8
    kernels saturate: the same integers either way (`models.int8`)."""
    if kernel == "u8s8":
        return str(path)
    import onnx

    return with_unsigned_weights(onnx.load(str(path))).SerializeToString()


def available_cores() -> int:
    """Cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxEncoder:
    """Sentence vectors from a folder made by `fast_encoder_folder`, on ONNX Runtime."""

    def __init__(self, folder: Path, threads: int | None = None, kernel: IntegerKernel | None = None) -> None:
        """``kernel`` overrides the integer formulation `models.int8` chose for this CPU (the
        benchmark times u8×u8 on CPUs where u8×s8 is exact)."""
        import onnxruntime as ort
        from transformers import AutoTokenizer

        marker = _read_marker(folder)
        if marker is None:
            raise FastEncoderError(f"{folder} is not a fast encoder folder (no {FAST_MARKER_FILE})")
        options = ort.SessionOptions()
        # one pool of threads across the cores; a second (inter-op) pool would oversubscribe them
        self.threads = threads or available_cores()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.folder = folder
        self.kernel = kernel or _exact_integer_kernel()
        self.session = ort.InferenceSession(
            _graph_for(folder / ONNX_FILE, self.kernel), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.hidden = int(self.session.get_outputs()[0].shape[-1])
        # stamped on rows through the model version: what changes the numbers, the int8 file and
        # the runtime's kernels
        trimmed = "ja-vocab+" if marker.get("trimmed") else ""
        digest = str(marker.get("onnx_sha256", ""))[:8]
        self.version_suffix = f"+{trimmed}onnx-int8-{digest}-ort{ort.__version__}"

    def run_batch(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        prefix: str = "",
        padding: PaddingStats | None = None,
    ) -> np.ndarray:
        return embed_with(self.run_batch, texts, self.tokenizer, self.hidden, batch_size, prefix, padding)
