"""Benchmark input: N survey responses recombined from the bundled sample export.

Each response copies the score and segments of a random sample response, and its comment is
1-3 sentences drawn from sample comments of the same NPS category, so scores, segments and
complaints still go together and the driver stage has real work. Real surveys repeat short
sentences (「特になし」) but most sentences are new; to keep the share of distinct sentences
realistic rather than bounded by the sample's ~1,100 sentences, 70% of the drawn sentences
get an everyday opening (「8月3日に渋谷店で」) from a few thousand combinations. Comments keep the sample's
raw text (PII, half-width kana, emoji), so normalisation and masking do their full work, and
about 0.5% of records carry a bad score and must be quarantined.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "nps_responses.csv"
HEADER = ["回答ID", "回答日時", "推奨度", "利用チャネル", "ご契約プラン", "年代", "ご意見・ご感想"]
FIRST_DAY = datetime(2026, 7, 1)
DAYS = 92
SEED = 20261125
# an opening is a moment and/or a context: thousands of combinations, so a varied sentence is
# almost always new, as most sentences of a real survey are
MOMENTS = (
    *(f"{m}月{d}日に" for m in (7, 8, 9) for d in range(1, 31)),
    *("先月", "先週", "昨日", "週末に", "平日の夜に", "久しぶりに", "今回", "前回も", "毎回", "いつも"),
)
CONTEXTS = ("、", "新宿店で", "渋谷店で", "梅田店で", "アプリで", "電話で", "家族と", "友人の紹介で",
            "正直、", "個人的には", "初めて利用しましたが、", "仕事帰りに")  # fmt: skip
VARIED_SHARE = 0.7
BAD_SCORE_SHARE = 0.005
_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])")


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    good = []
    for row in rows:
        score = (row.get("推奨度") or "").strip()
        if (
            row.get("ご意見・ご感想") is not None
            and score.isascii()
            and score.isdigit()
            and 0 <= int(score) <= 10
        ):
            good.append(row)
    return good


def build_responses(n: int, path: Path, seed: int = SEED) -> Path:
    """Write ``n`` responses (plus about 0.5% bad records) to ``path`` as the sample's CSV format."""
    return write_responses(generate_rows(n, seed), path)


def generate_rows(n: int, seed: int = SEED, days: int = DAYS) -> Iterator[list[str]]:
    """The rows `build_responses` writes, in file order: a hook for benchmarks that edit some
    rows before writing (bench/plants.py plants new themes) without drawing the rest anew."""
    rng = random.Random(seed)
    templates = _sample_rows()
    pools = sentence_pools(templates)
    moments = sorted(rng.random() * days * 86400 for _ in range(n))
    per_day: dict[str, int] = defaultdict(int)
    for offset in moments:
        template = rng.choice(templates)
        at = FIRST_DAY + timedelta(seconds=offset)
        day = at.strftime("%Y%m%d")
        per_day[day] += 1
        score = template["推奨度"]
        if rng.random() < BAD_SCORE_SHARE:
            score = rng.choice(["", "11", "とても良い"])
        comment = ""
        if template["ご意見・ご感想"].strip():
            comment = draw_comment(pools[category(int(template["推奨度"]))], rng)
        yield [f"B{day}-{per_day[day]:06d}", at.strftime("%Y/%m/%d %H:%M:%S"), score,
               template["利用チャネル"], template["ご契約プラン"], template["年代"], comment]  # fmt: skip


def write_responses(rows: Iterable[Sequence[str]], path: Path) -> Path:
    """Write rows under the sample's header, with the sample's encoding and line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def sentence_pools(templates: Iterable[dict[str, str]] | None = None) -> dict[str, list[str]]:
    """The sample's sentences by NPS category, so a comment matches its response's score."""
    pools: dict[str, list[str]] = defaultdict(list)
    for row in _sample_rows() if templates is None else templates:
        sentences = [s.strip() for s in _SENTENCE_END.split(row["ご意見・ご感想"]) if s.strip()]
        pools[category(int(row["推奨度"]))].extend(sentences)
    return pools


def draw_comment(pool: Sequence[str], rng: random.Random) -> str:
    """1-3 sentences of one category's pool, most with an everyday opening."""
    return "".join(vary_sentence(rng.choice(pool), rng) for _ in range(rng.randint(1, 3)))


def vary_sentence(sentence: str, rng: random.Random) -> str:
    """End the sentence like a sentence and give 70% of them an opening, so most are new."""
    if not sentence.endswith(("。", "！", "？", "!", "?", "\n")):
        sentence += "。"
    if rng.random() >= VARIED_SHARE:
        return sentence
    return rng.choice(MOMENTS) + rng.choice(CONTEXTS) + sentence
