"""The planted-theme corpus (bench/plants.py): phrasings, the answer key, and the unplanted twin."""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from bench import synthetic
from bench.plants import (
    FIRST_DATE,
    MIN_DAYS_AFTER_ONSET,
    MIN_DAYS_BEFORE_ONSET,
    PLANTS,
    Plant,
    PlantTruth,
    build_planted_responses,
    check_onsets,
    key_phrase_hits,
    main,
    plant_of,
)
from pipeline.normalize import clean_comment, split_sentences
from pipeline.taxonomy import load_taxonomy
from pipeline.tokenize import tokenize

REPO = Path(__file__).resolve().parents[1]
# ~67 responses a day: every plant's share rounds to at least one sentence a day
N = 6000
Corpora = tuple[PlantTruth, PlantTruth]  # with and without the plants, same seed


def _read(path: Path) -> dict[str, list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == synthetic.HEADER
        return {row[0]: row for row in reader}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Corpora:
    out = tmp_path_factory.mktemp("plants")
    planted = build_planted_responses(N, out / "planted.csv")
    unplanted = build_planted_responses(N, out / "unplanted.csv", plants=False)
    return planted, unplanted


# --- the phrasings ---------------------------------------------------------------------------


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.id)
def test_each_plant_has_thirty_distinct_phrasings(plant: Plant) -> None:
    normalized = {clean_comment(p).text for p in plant.phrasings}
    assert len(normalized) == len(plant.phrasings) >= 30
    assert 2 <= len(plant.key_phrases) <= 4


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.id)
def test_each_phrasing_stays_one_unmasked_sentence(plant: Plant) -> None:
    """Matching needs the whole phrasing inside one of the pipeline's sentences."""
    for phrasing in plant.phrasings:
        cleaned = clean_comment(phrasing)
        assert cleaned.pii_kinds == (), phrasing
        assert split_sentences(cleaned.text) == [cleaned.text], phrasing


def test_phrasings_avoid_taxonomy_seed_lemmas() -> None:
    """A plant that shares a topic's seed terms would be half-covered already."""
    seeds = set().union(*load_taxonomy(REPO / "configs" / "taxonomy.yaml").seed_lemmas.values())
    for plant in PLANTS:
        lemmas = {t.lemma for p in plant.phrasings for t in tokenize(clean_comment(p).text)}
        assert lemmas & seeds == set(plant.seed_overlap), plant.id


def test_phrasings_belong_to_one_plant_and_key_phrases_to_their_own() -> None:
    for plant in PLANTS:
        for phrasing in plant.phrasings:
            assert plant_of(phrasing) == plant.id, phrasing
        others = [p for other in PLANTS if other is not plant for p in other.phrasings]
        assert not key_phrase_hits(plant, others), plant.id
        assert key_phrase_hits(plant, plant.phrasings) == plant.key_phrases


def test_key_phrases_match_surfaces_and_lemma_ngrams() -> None:
    for plant in PLANTS:
        lemma_ngrams = [" ".join(t.lemma for t in tokenize(k) if t.is_content) for k in plant.key_phrases]
        assert key_phrase_hits(plant, lemma_ngrams) == plant.key_phrases, lemma_ngrams


# --- onsets ----------------------------------------------------------------------------------


def test_onsets_are_spread_and_leave_room_on_both_sides() -> None:
    onsets = sorted(p.onset for p in PLANTS)
    assert len(set(onsets)) == len(onsets)
    assert onsets[0] >= FIRST_DATE + timedelta(days=MIN_DAYS_BEFORE_ONSET)
    assert onsets[-1] <= FIRST_DATE + timedelta(days=90 - 1 - MIN_DAYS_AFTER_ONSET)
    check_onsets(PLANTS, 90)
    with pytest.raises(ValueError, match="wheelchair_access"):
        check_onsets(PLANTS, 70)


def test_plants_start_on_their_onset_and_every_day_after(corpora: Corpora) -> None:
    planted, _ = corpora
    last = FIRST_DATE + timedelta(days=89)
    for record in planted.records:
        days = {s.day for s in record.sentences}
        assert record.first_day == record.onset
        assert days == {record.onset + timedelta(days=i) for i in range((last - record.onset).days + 1)}
        assert all(s.response_id[1:9] == s.day.strftime("%Y%m%d") for s in record.sentences)


# --- the corpus --------------------------------------------------------------------------------


def test_corpora_differ_only_in_planted_responses(corpora: Corpora) -> None:
    planted, unplanted = corpora
    with_plants, without = _read(planted.path), _read(unplanted.path)
    owner = {s.response_id: s for r in planted.records for s in r.sentences}
    assert with_plants.keys() == without.keys()
    assert {i for i in with_plants if with_plants[i] != without[i]} <= owner.keys()
    for response_id, sentence in owner.items():
        before, after = without[response_id], with_plants[response_id]
        assert before[:2] + before[3:6] == after[:2] + after[3:6]
        assert after[6].endswith(sentence.text)
        assert after[2].isdigit() and before[2].isdigit()  # bad records are never planted
    assert unplanted.counts() == dict.fromkeys(planted.counts(), 0)


def test_planted_shares_and_scores_follow_the_plants(corpora: Corpora) -> None:
    planted, _ = corpora
    rows = _read(planted.path)
    per_day = Counter(response_id[1:9] for response_id in rows)
    for record in planted.records:
        plant = record.plant
        eligible = sum(n for day, n in per_day.items() if day >= plant.onset.strftime("%Y%m%d"))
        assert len(record.sentences) == pytest.approx(plant.share * eligible, rel=0.15)
        categories = Counter(synthetic.category(int(rows[s.response_id][2])) for s in record.sentences)
        detractor_share = dict(plant.category_mix)["detractor"]
        assert categories["detractor"] / len(record.sentences) == pytest.approx(detractor_share, abs=0.12)
        assert categories["promoter"] == 0


def test_pipeline_sentences_map_back_to_their_plant(corpora: Corpora) -> None:
    """What a theme holds is the pipeline's sentences: each planted one is found, nothing else."""
    planted, unplanted = corpora
    owner = {s.response_id: r.plant.id for r in planted.records for s in r.sentences}
    found: dict[str, int] = defaultdict(int)
    for response_id, row in _read(planted.path).items():
        for sentence in split_sentences(clean_comment(row[6]).text):
            plant_id = planted.plant_of(sentence)
            if plant_id is not None:
                assert owner[response_id] == plant_id
                found[plant_id] += 1
    assert found == planted.counts()
    for row in _read(unplanted.path).values():
        assert plant_of(row[6]) is None, row[6]


def test_matching_survives_nfkc_and_openings() -> None:
    record_text = "8月3日に渋谷店でｴﾚﾍﾞｰﾀｰ点検中の札がもう三週間も出たままです。"
    assert plant_of(record_text) == "wheelchair_access"
    assert plant_of(clean_comment(record_text).text) == "wheelchair_access"
    assert plant_of("流出の件以来、怪しいSMSが毎日のように来るようになった。") == "data_breach"
    assert plant_of("配送が遅れています。") is None


# --- determinism and the synthetic recombiner -----------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, corpora: Corpora) -> None:
    planted, _ = corpora
    again = build_planted_responses(N, tmp_path / "again.csv")
    assert again.path.read_bytes() == planted.path.read_bytes()
    assert again.records == planted.records
    other = build_planted_responses(N, tmp_path / "other.csv", seed=7)
    assert other.path.read_bytes() != planted.path.read_bytes()


def test_unplanted_corpus_is_the_synthetic_one(tmp_path: Path) -> None:
    truth = build_planted_responses(500, tmp_path / "plain.csv", plants=False, days=synthetic.DAYS)
    reference = synthetic.build_responses(500, tmp_path / "reference.csv")
    assert truth.path.read_bytes() == reference.read_bytes()


def test_build_responses_writes_what_it_wrote_before_rows_could_be_edited(tmp_path: Path) -> None:
    """bench/synthetic.py's loop before `generate_rows` was split out of it, kept as the reference."""
    for seed in (synthetic.SEED, 7):
        path = synthetic.build_responses(500, tmp_path / f"new-{seed}.csv", seed=seed)
        assert path.read_bytes() == _old_build_responses(500, tmp_path / f"old-{seed}.csv", seed)


def _old_build_responses(n: int, path: Path, seed: int) -> bytes:
    rng = random.Random(seed)
    templates = synthetic._sample_rows()
    pools: dict[str, list[str]] = defaultdict(list)
    for row in templates:
        sentences = [s.strip() for s in synthetic._SENTENCE_END.split(row["ご意見・ご感想"]) if s.strip()]
        pools[synthetic.category(int(row["推奨度"]))].extend(sentences)
    moments = sorted(rng.random() * synthetic.DAYS * 86400 for _ in range(n))
    per_day: dict[str, int] = defaultdict(int)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(synthetic.HEADER)
        for offset in moments:
            template = rng.choice(templates)
            at = synthetic.FIRST_DAY + timedelta(seconds=offset)
            day = at.strftime("%Y%m%d")
            per_day[day] += 1
            score = template["推奨度"]
            if rng.random() < synthetic.BAD_SCORE_SHARE:
                score = rng.choice(["", "11", "とても良い"])
            comment = ""
            if template["ご意見・ご感想"].strip():
                pool = pools[synthetic.category(int(template["推奨度"]))]
                comment = "".join(
                    synthetic.vary_sentence(rng.choice(pool), rng) for _ in range(rng.randint(1, 3))
                )
            segments = [template["利用チャネル"], template["ご契約プラン"], template["年代"]]
            writer.writerow([f"B{day}-{per_day[day]:06d}", at.strftime("%Y/%m/%d %H:%M:%S"), score,
                             *segments, comment])  # fmt: skip
    return path.read_bytes()


def test_cli_writes_the_corpus_and_reports_the_plants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--responses", "300", "--out", str(tmp_path / "cli.csv")])
    printed = capsys.readouterr().out
    assert (tmp_path / "cli.csv").exists()
    for plant in PLANTS:
        assert plant.id in printed and str(plant.onset) in printed
    main(["--responses", "300", "--out", str(tmp_path / "none.csv"), "--no-plants"])
    assert capsys.readouterr().out.count(" 0 sentences") == len(PLANTS)


def test_onset_dates_are_the_declared_days() -> None:
    assert [p.onset for p in PLANTS] == [date(2026, 7, 31), date(2026, 8, 20), date(2026, 9, 4)]
