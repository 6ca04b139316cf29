"""Planted themes: a benchmark corpus in which three new problems start on known days.

Theme discovery must surface problems that no taxonomy topic names (configs/taxonomy.yaml). To
measure it, this module takes bench/synthetic.py's recombined corpus and, from each plant's onset
date on, appends one sentence about the plant to a fixed share of each day's responses and draws
their score from the plant's NPS category mix. The same seed without plants gives the same corpus
less those edits, so a measurement can compare the two: purity (share of a theme's sentences that
belong to a plant), days from onset to the first flag, and false themes where nothing was planted.

The three problems are ones the taxonomy has no topic for, and every phrasing was written for this
project. Phrasings avoid the taxonomy's seed lemmas (checked by tests/test_plants.py) so that a plant
is not already half-covered by a topic; `Plant.seed_overlap` lists any that could not be avoided.
The module is over 400 lines because the 105 phrasings are data kept beside the code that plants them.

    python -m bench.plants --responses 10000 --out /tmp/planted.csv [--no-plants]
"""

from __future__ import annotations

import argparse
import functools
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bench.synthetic import (
    FIRST_DAY,
    HEADER,
    SEED,
    category,
    draw_comment,
    generate_rows,
    sentence_pools,
    vary_sentence,
    write_responses,
)
from pipeline.normalize import clean_comment

FIRST_DATE = FIRST_DAY.date()
DEFAULT_DAYS = 90
# a detector needs a baseline before the onset and time to react after it
MIN_DAYS_BEFORE_ONSET = 21
MIN_DAYS_AFTER_ONSET = 14
_ID, _SCORE, _COMMENT = HEADER.index("回答ID"), HEADER.index("推奨度"), HEADER.index("ご意見・ご感想")
# scores within a category, weighted like the sample's complaints (data/sample/generate_sample.py)
_SCORES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "detractor": ((0, 1, 2, 3, 4, 5, 6), (4, 3, 5, 8, 10, 18, 15)),
    "passive": ((7, 8), (15, 12)),
    "promoter": ((9, 10), (6, 4)),
}


@dataclass(frozen=True, slots=True)
class Plant:
    """A problem the taxonomy has no topic for, starting on ``onset``."""

    id: str
    name_ja: str
    onset: date
    share: float  # of each day's responses from the onset on
    category_mix: tuple[tuple[str, float], ...]  # (NPS category, weight)
    # a theme's top phrases should contain one for the plant to count; each is the shortest form
    # that both surfaces (身分証, ベビーカー) and UniDic lemma n-grams (身分, ベビー カー) contain
    key_phrases: tuple[str, ...]
    phrasings: tuple[str, ...]
    seed_overlap: tuple[str, ...] = ()  # taxonomy seed lemmas the phrasings could not avoid


DATA_BREACH = Plant(
    id="data_breach",
    name_ja="個人情報の流出",
    onset=FIRST_DATE + timedelta(days=30),
    share=0.05,
    category_mix=(("detractor", 0.85), ("passive", 0.15)),
    key_phrases=("個人情報", "流出", "漏洩"),
    phrasings=(
        "個人情報が流出したと聞いて、もう安心して使えません。",
        "個人情報の漏えいがあったなんて信じられない。",
        "私の住所や電話番号も流出したのか、はっきりさせてほしいです。",
        "サイバー攻撃で顧客情報が盗まれたそうで、本当に怖いです。",
        "情報漏えいの件、謝罪の一言だけで済ませるのはおかしいと思う。",
        "流出した個人情報がどこまで出回っているのか心配で眠れません。",
        "漏えい事故のあと、パスワードを変えるよう言われて面倒でした。",
        "個人情報を預けている以上、セキュリティはしっかりしてほしい。",
        "情報流出の公表まで一か月もかかったのは納得できません。",
        "流出の件以来、怪しいＳＭＳが毎日のように来るようになった。",
        "家族の名前まで漏れていたらと思うとぞっとします。",
        "個人情報を扱う会社としてセキュリティ管理がずさんすぎる。",
        "情報流出のニュースを見て、もう使わないほうがいいのか迷っています。",
        "漏洩した情報に勤務先まで含まれていたのはショックだった。",
        "個人情報流出とかマジでありえないんだけど。",
        "ハッキング被害の詳細をもっと公開してほしい。",
        "情報が漏れた後から、知らない業者の勧誘電話がかかってくるようになりました。",
        "流出のお詫びが五百円分のギフト券だけでは割に合わない。",
        "顧客データの管理体制を根本から見直してください。",
        "個人情報の扱いが信用できなくなったので、他社に乗り換えます。",
        "漏えいの可能性がある人の中に自分も入っていて、がっかりした。",
        "住所と氏名が流出したかもしれないと言われても、こちらはどうしようもない。",
        "情報流出が起きたのに、会社の危機感が全然足りないと思います。",
        "流出事件のせいで、家族からここはもう使うなと言われた。",
        "セキュリティ事故のお詫び文を読んだけど、再発防止策が曖昧だった。",
        "自分の個人情報が漏れていないか、確かめる方法を教えてほしいです。",
        "漏洩の調査結果がいまだに公表されていないのは不誠実です。",
        "ハッキングで情報が抜かれたと知って、正直怖くなりました。",
        "流出した情報が悪用されたら、誰が責任を取るんですか。",
        "個人情報を流出させておいて、謝罪が軽すぎる。",
        "情報漏えい以来、ここで買い物するのが不安です。",
        "個人情報流出の件で、御社への信頼はゼロになりました。",
        "顧客情報が外部に漏れたのに、のんきに新商品の宣伝をしている場合ですか。",
        "漏えいの件で、あちこちのパスワードを全部変える羽目になって本当に迷惑しています。",
        "不正侵入で情報が盗まれたなら、まず被害の範囲をはっきりさせるべきでは。",
    ),
)

AGE_VERIFICATION = Plant(
    id="age_verification",
    name_ja="酒類の年齢確認",
    onset=FIRST_DATE + timedelta(days=50),
    share=0.04,
    category_mix=(("detractor", 0.65), ("passive", 0.35)),
    key_phrases=("年齢確認", "身分", "酒"),
    phrasings=(
        "お酒を買うたびに年齢確認されるのが煩わしいです。",
        "どう見ても六十代の私にまで身分証を出せと言うのはおかしい。",
        "ビール一本買うのに免許証を見せないといけなくなった。",
        "年齢確認のルールが急に厳しくなって戸惑っています。",
        "身分証を忘れた日はワインが買えず、諦めて帰りました。",
        "白髪の父が年齢確認で足止めされていて、笑うしかなかった。",
        "酒類を買う時の本人確認、さすがにやりすぎだと思う。",
        "保険証を出したら、顔写真付きの身分証でないとだめだと言われた。",
        "自己申告で済んでいた頃の年齢確認に戻してほしい。",
        "自宅でお酒を受け取るたびに身分証の提示を求められる。",
        "年齢確認が厳しすぎて、もうお酒は酒屋で買うことにしました。",
        "未成年に見えるわけがないのに、毎回年齢確認されるのは失礼だ。",
        "マイナンバーの書類まで出させるのは抵抗があります。",
        "お酒のときだけ免許証をスキャンされるのが気持ち悪い。",
        "身分証の画像を送れと言われて、正直ためらいました。",
        "年確のせいで缶チューハイ一本に何分もかかった。",
        "年齢確認の基準が人によって違うのが納得いかない。",
        "以前はなかった年齢確認がいきなり始まって驚きました。",
        "三十代後半で身分証を求められるとは思わなかった、複雑な気分です。",
        "日本酒を贈り物にしようとしたら、本人確認が通らなくて困った。",
        "身分証を持ち歩いていない高齢者にとっては酷なルールだ。",
        "年齢を確認する意味はわかるけど、もう少し柔軟にしてほしい。",
        "ワインの定期便を頼むたびに年齢確認の書類を出させられるのは意味不明。",
        "免許を返納したので、お酒を買う時に見せるものがなくて困っています。",
        "年齢確認で毎回もたつくので、ビールはもうよそで買っています。",
        "見た目で判断してくれればいいのに、全員に身分証を求めるのは杓子定規だ。",
        "年齢確認が厳格化されてから、晩酌用のお酒を買うのがおっくうになった。",
        "お酒売り場で身分証を見せろと言われ、周りの目が恥ずかしかった。",
        "夫の分のビールなのに、私の身分証まで確認されたのは理不尽です。",
        "年齢確認のためとはいえ、免許証のコピーを取られるのは不安。",
        "身分証の提示を断ったら、お酒を売ってもらえなかった。",
        "年齢確認の仕組み、高齢者には本当にわかりづらいです。",
        "ハイボールを数本買っただけなのに、身分証の提示でひと騒動でした。",
        "成人してずいぶん経つのに、毎回年齢確認なんてばかばかしい。",
        "酒類の年齢確認強化って、誰のための制度なのか疑問です。",
    ),
)

WHEELCHAIR_ACCESS = Plant(
    id="wheelchair_access",
    name_ja="車椅子・ベビーカーの利用",
    onset=FIRST_DATE + timedelta(days=65),
    share=0.03,
    category_mix=(("detractor", 0.8), ("passive", 0.2)),
    key_phrases=("エレベーター", "車椅子", "ベビー"),
    phrasings=(
        "エレベーターが使えなくなって、車椅子の母を連れて行けなくなりました。",
        "ベビーカーで２階に上がれないので、結局何も買わずに帰った。",
        "エレベーター休止の張り紙だけで、いつ再開するのか書いていない。",
        "車椅子だと入口の段差を越えられず、店の前で諦めました。",
        "エスカレーターしかない状態でベビーカーを抱えて上るのは危ないです。",
        "杖をついている祖父には、階段しか使えないのは本当にきつい。",
        "エレベーターの工事がいつまで続くのか知りたいです。",
        "車椅子用のスロープが撤去されていて驚きました。",
        "双子用のベビーカーだと、もうお店に入ることすらできない。",
        "足の悪い客のことを誰も考えていないように見える。",
        "エレベーターが動かないので、大きな荷物を持って階段を往復しました。",
        "車椅子ユーザーにとって、今の状態はほぼ門前払いです。",
        "ベビーカーを下に置いて、子どもを抱っこして上がるしかなかった。",
        "ｴﾚﾍﾞｰﾀｰ点検中の札がもう三週間も出たままです。",
        "車椅子で来店したら、上の階には行けませんと言われてしまった。",
        "バリアフリーの面で明らかに後退していて残念です。",
        "妊娠中で階段がつらいのに、エレベーターが止まったままなのは困る。",
        "ベビーカー置き場もなくなって、子連れには厳しいお店になりました。",
        "車椅子の友人と一緒に行ったら、売り場の半分も見られなかった。",
        "エレベーターの再開めどが立たないなら、せめて仮設のスロープを付けてほしい。",
        "高齢の両親が階段で転びそうになっていて、見ていてひやひやした。",
        "車椅子だと段差ばかりで、ひとりでは回れません。",
        "ベビーカー連れはお断りと言われているようで悲しくなった。",
        "足に麻痺がある身として、エレベーター停止は死活問題です。",
        "昇降機が使えないせいで、上の売り場に一度も行けていない。",
        "車椅子を押して行ったのに、引き返すはめになりました。",
        "エレベーターを休止するなら、代わりの手段を用意してください。",
        "ベビーカーのまま入れる入口がひとつもないのはどうかと思う。",
        "足を骨折して松葉杖なのに、階段で上るしかなかった。",
        "エレベーターが動かないまま、もう一か月です。",
        "車椅子でも気兼ねなく買い物できたのが良かったのに、今は無理です。",
        "段差解消のスロープを早く戻してください。",
        "ベビーカーを畳んで階段を上るのは、子連れには本当に重労働です。",
        "誰でも使えるお店だと思っていたので、エレベーターの件はショックでした。",
        "介助が必要な母を連れて行けるお店が、またひとつ減りました。",
    ),
)

PLANTS: tuple[Plant, ...] = (DATA_BREACH, AGE_VERIFICATION, WHEELCHAIR_ACCESS)


@dataclass(frozen=True, slots=True)
class PlantedSentence:
    """One inserted sentence: as written in the CSV and as the pipeline will see it."""

    response_id: str
    day: date
    text: str  # as appended to the comment (the phrasing, often with an everyday opening)
    normalized: str  # clean_comment(text).text: contained in the pipeline's sentence


@dataclass(frozen=True, slots=True)
class PlantRecord:
    """What was planted for one plant (nothing when the corpus was built without plants)."""

    plant: Plant
    sentences: frozenset[PlantedSentence]

    @property
    def onset(self) -> date:
        return self.plant.onset

    @property
    def inserted(self) -> frozenset[tuple[str, str]]:
        """(response id, sentence text) pairs, the unit purity is counted in."""
        return frozenset((s.response_id, s.text) for s in self.sentences)

    @property
    def first_day(self) -> date | None:
        """The first day a planted sentence appears: the earliest a detector could flag it."""
        return min((s.day for s in self.sentences), default=None)


@dataclass(frozen=True, slots=True)
class PlantTruth:
    """The answer key of a planted corpus: which response got which plant sentence, and when."""

    path: Path
    planted: bool
    records: tuple[PlantRecord, ...]

    def record(self, plant_id: str) -> PlantRecord:
        for record in self.records:
            if record.plant.id == plant_id:
                return record
        raise KeyError(f"no plant {plant_id!r}; known: {[r.plant.id for r in self.records]}")

    def counts(self) -> dict[str, int]:
        return {record.plant.id: len(record.sentences) for record in self.records}

    def plant_of(self, sentence: str) -> str | None:
        """The plant a sentence came from, or None: see `plant_of`."""
        return plant_of(sentence, tuple(record.plant for record in self.records))


def plant_of(sentence: str, plants: tuple[Plant, ...] = PLANTS) -> str | None:
    """The plant whose phrasing the sentence contains, after the pipeline's own normalisation.

    Matching by containment survives what happens between this writer and a theme: the everyday
    opening `vary_sentence` puts before a phrasing, NFKC (full-width digits, half-width kana), PII
    masking, and a splitter that joins the phrasing to the sentence before it. Normalising an
    already normalised sentence changes nothing, so pipeline output and raw text both work.
    """
    pattern, owner = _matcher(plants)
    match = pattern.search(clean_comment(sentence).text)
    return owner[match.group()] if match else None


@functools.cache
def _matcher(plants: tuple[Plant, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    owner = {clean_comment(p).text: plant.id for plant in plants for p in plant.phrasings}
    longest_first = sorted(owner, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first))), owner


def key_phrase_hits(plant: Plant, top_phrases: Iterable[str]) -> tuple[str, ...]:
    """The plant's key phrases that a theme's top phrases contain.

    Top phrases may be surfaces (車椅子) or lemma n-grams joined by spaces (車 椅子): both are
    compared after NFKC with spaces removed, so 車 椅子 contains 車椅子 and 日本酒 contains 酒.
    """
    phrases = [_squash(p) for p in top_phrases]
    return tuple(key for key in plant.key_phrases if any(_squash(key) in p for p in phrases))


def _squash(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace(" ", "")


def build_planted_responses(
    n: int, path: Path, *, plants: bool = True, days: int = DEFAULT_DAYS, seed: int = SEED
) -> PlantTruth:
    """Write bench/synthetic.py's corpus of ``n`` responses over ``days`` days, with the plants.

    Planting draws from its own random stream, so ``plants=False`` writes exactly the corpus the
    planted one was made from (and, with ``days=synthetic.DAYS``, exactly `build_responses`).
    """
    check_onsets(PLANTS, days)
    rows = list(generate_rows(n, seed, days))
    planted: dict[str, list[PlantedSentence]] = defaultdict(list)
    if plants:
        planted = _plant(rows, PLANTS, random.Random(f"{seed}/plants"))
    write_responses(rows, path)
    records = tuple(PlantRecord(plant, frozenset(planted[plant.id])) for plant in PLANTS)
    return PlantTruth(path=path, planted=plants, records=records)


def check_onsets(plants: Sequence[Plant], days: int) -> None:
    """A plant needs a quiet baseline before its onset and time to be found after it."""
    last = FIRST_DATE + timedelta(days=days - 1)
    for plant in plants:
        if not (
            plant.onset >= FIRST_DATE + timedelta(days=MIN_DAYS_BEFORE_ONSET)
            and plant.onset <= last - timedelta(days=MIN_DAYS_AFTER_ONSET)
        ):
            raise ValueError(
                f"plant {plant.id} starts {plant.onset}: a corpus of {days} days from {FIRST_DATE} "
                f"needs onsets at least {MIN_DAYS_BEFORE_ONSET} days after its start and "
                f"{MIN_DAYS_AFTER_ONSET} before its end ({last})"
            )


def _plant(
    rows: list[list[str]], plants: Sequence[Plant], rng: random.Random
) -> dict[str, list[PlantedSentence]]:
    """Edit each plant's share of each day's rows in place; a row gets at most one plant."""
    pools = sentence_pools()
    by_day = _rows_by_day(rows)
    taken: set[int] = set()
    planted: dict[str, list[PlantedSentence]] = defaultdict(list)
    for plant in plants:
        for day, indices in sorted(by_day.items()):
            if day < plant.onset:
                continue
            free = [i for i in indices if i not in taken and _valid_score(rows[i][_SCORE])]
            wanted = _count(plant.share * len(indices), rng)
            for i in sorted(rng.sample(free, min(wanted, len(free)))):
                taken.add(i)
                rows[i], text = _plant_row(rows[i], plant, pools, rng)
                normalized = clean_comment(text).text
                planted[plant.id].append(PlantedSentence(rows[i][_ID], day, text, normalized))
    return planted


def _rows_by_day(rows: Sequence[Sequence[str]]) -> dict[date, list[int]]:
    by_day: dict[date, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        stamp = row[_ID][1:9]  # B20260701-000001
        by_day[date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))].append(i)
    return by_day


def _valid_score(score: str) -> bool:
    """Bad records stay as they are: the quarantine count must not depend on the plants."""
    return score.isascii() and score.isdigit() and 0 <= int(score) <= 10


def _count(expected: float, rng: random.Random) -> int:
    """``expected`` rounded at random: small days still get their share on average."""
    whole = int(expected)
    return whole + (rng.random() < expected - whole)


def _plant_row(
    row: list[str], plant: Plant, pools: dict[str, list[str]], rng: random.Random
) -> tuple[list[str], str]:
    """The row with the plant's score and sentence; a comment of another category is redrawn,
    so that a promoter's praise does not sit next to a detractor's score."""
    names, weights = zip(*plant.category_mix, strict=True)
    wanted = rng.choices(names, weights)[0]
    score = rng.choices(*_SCORES[wanted])[0]
    comment = row[_COMMENT]
    if comment and category(int(row[_SCORE])) != wanted:
        comment = draw_comment(pools[wanted], rng)
    text = vary_sentence(rng.choice(plant.phrasings), rng)
    edited = list(row)
    edited[_SCORE], edited[_COMMENT] = str(score), comment + text
    return edited, text


def main(argv: Sequence[str] | None = None) -> None:
    """Write a planted corpus and say what went into it."""
    parser = argparse.ArgumentParser(prog="python -m bench.plants", description="Write the planted corpus.")
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-plants", action="store_true", help="the same corpus without the plants")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    truth = build_planted_responses(
        args.responses, args.out, plants=not args.no_plants, days=args.days, seed=args.seed
    )
    print(f"wrote {args.responses} responses over {args.days} days to {truth.path}")
    for record in truth.records:
        plant = record.plant
        print(f"{plant.id:<18} {plant.name_ja}  onset {plant.onset}  share {plant.share:.0%}  "
              f"{len(record.sentences)} sentences  key: {'/'.join(plant.key_phrases)}")  # fmt: skip


if __name__ == "__main__":
    main()
