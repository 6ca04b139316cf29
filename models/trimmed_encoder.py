"""The Japanese-trimmed copy of an encoder folder (`models.vocabulary`), written once.

The copy is stored in the source's dtype, reloaded and checked against the full model on a few
Japanese texts before it is put in place; its marker names the source build and the trimming
rule, so a copy of another build or rule is rebuilt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.cache import build_folder_once, folder_identity, share_folder_files
from models.default_encoder import MARKER_FILE
from models.embedding import embed
from models.vocabulary import VocabularyError, japanese_rule_id, trim_vocabulary

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Suffix of the trimmed folder next to its source: <source>-ja.
TRIMMED_SUFFIX = "-ja"
TRIM_MARKER_FILE = "voc-trim.json"
# Bump when trimming writes something different for the same source and rule.
TRIM_VERSION = 1

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
# Checked when a trimmed folder is written: reloaded, it must embed these as the full model does.
_CHECK_TEXTS = (
    "配送が遅くて不満です",
    "アプリのログイン画面でエラーが出ます。ｱﾌﾟﾘ再起動でもダメ😢",
    "店員さんの対応がとても丁寧で、また利用したいと思いました！",
    "料金プランが分かりにくい（月額￥3,980→4,400円）。㈱〇〇のサポートは①②とも×",
    "café のβ版、サイズは 10μm 程度",
)
_CHECK_TOLERANCE = 1e-6


def _marker_contents(source: Path) -> dict[str, Any]:
    return {
        "trim_version": TRIM_VERSION,
        "rule": f"japanese_piece/{japanese_rule_id()}",
        "source_folder": source.name,
        "source": folder_identity(source, (MARKER_FILE,)),
    }


def is_trimmed_complete(folder: Path, source: Path) -> bool:
    """A trimmed folder counts only if its marker (written last) matches the source and rule,
    and the saved vocabulary has the recorded number of pieces."""
    try:
        marker = json.loads((folder / TRIM_MARKER_FILE).read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or not isinstance(config, dict):
        return False
    pieces = marker.pop("pieces_kept", None)
    marker.pop("pieces_full", None)
    return (
        marker == _marker_contents(source)
        and config.get("vocab_size") == pieces
        and all((folder / name).is_file() for name in _REQUIRED_FILES)
    )


def _stored_dtype(folder: Path) -> torch.dtype | None:
    """The one floating dtype the folder's safetensors weights are stored in, if they agree."""
    from safetensors import safe_open

    names = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
    found: set[str] = set()
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            found.update(handle.get_slice(key).get_dtype() for key in handle.keys())  # noqa: SIM118
    floating = found & set(names)
    if len(floating) != 1:
        return None
    import torch

    dtype: torch.dtype = getattr(torch, names[floating.pop()])
    return dtype


def _max_difference(
    texts: Iterable[str],
    full: tuple[PreTrainedModel, PreTrainedTokenizerBase],
    trimmed: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> float:
    batch = list(texts)
    a = embed(batch, *full)
    b = embed(batch, *trimmed)
    return float(abs(a - b).max())


def _write_trimmed(staging: Path, source: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    trimmed_model, trimmed_tokenizer = trim_vocabulary(model, tokenizer)
    config_dtype = trimmed_model.dtype
    # Store like the source (fp16 for the default encoder): the kept rows round-trip exactly,
    # and the config below keeps loading them in the source's compute dtype.
    stored = _stored_dtype(source)
    if stored == torch.float16:
        trimmed_model.half()
    elif stored == torch.bfloat16:
        trimmed_model.bfloat16()
    trimmed_model.save_pretrained(staging)
    trimmed_tokenizer.save_pretrained(staging)
    del trimmed_model, trimmed_tokenizer
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("dtype", "torch_dtype"):
        if key in config:
            config[key] = str(config_dtype).removeprefix("torch.")
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    reloaded = AutoModel.from_pretrained(staging)
    reloaded.eval()
    difference = _max_difference(
        _CHECK_TEXTS, (model, tokenizer), (reloaded, AutoTokenizer.from_pretrained(staging))
    )
    if difference > _CHECK_TOLERANCE:
        raise VocabularyError(
            f"the trimmed copy of {source} embeds Japanese text differently from the full model "
            f"(max difference {difference:.2e}); keep using the full model and report this"
        )
    marker = staging / TRIM_MARKER_FILE
    contents = _marker_contents(source) | {
        "pieces_kept": int(config["vocab_size"]),
        "pieces_full": int(tokenizer.backend_tokenizer.get_vocab_size()),
    }
    marker.write_text(json.dumps(contents, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    share_folder_files(staging, like=marker)


def trimmed_encoder_folder(source: Path, target: Path | None = None) -> Path:
    """Write the Japanese-trimmed copy of the encoder in ``source`` once; return its folder.

    ``target`` defaults to ``<source>-ja`` beside it. The copy is checked against the full model
    before it is put in place (`build_folder_once`); a copy whose marker names another source
    build or rule is rebuilt.
    """
    source = Path(source)
    target = Path(target) if target is not None else source.with_name(source.name + TRIMMED_SUFFIX)
    if not is_trimmed_complete(target, source) and not all(
        (source / name).is_file() for name in _REQUIRED_FILES
    ):
        raise VocabularyError(
            f"{source} is not a saved model folder (needs {', '.join(_REQUIRED_FILES)}); "
            f"build the default encoder first"
        )
    return build_folder_once(
        target,
        lambda folder: is_trimmed_complete(folder, source),
        lambda staging: _write_trimmed(staging, source),
    )


def can_trim(folder: Path) -> bool:
    """Whether the encoder in ``folder`` has a SentencePiece-Unigram fast tokenizer (XLM-R, E5)."""
    try:
        state = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and (state.get("model") or {}).get("type") == "Unigram"
