"""The inference cache: what it serves, what it recomputes, and that it never changes a result."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.contracts import Predictions
from pipeline.inference_cache import CachedPredictor
from pipeline.job import run_job
from pipeline.schema import table_specs
from pipeline.settings import ModelSettings
from pipeline.store import DuckDBStore
from pipeline.taxonomy import Taxonomy
from tests.conftest import VOLATILE, csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor

ROWS = [
    ["C1", "2026/07/01 09:00", "3", "Web", "ライト", "", "配送が遅い。特になし"],
    ["C2", "2026/07/01 10:00", "9", "アプリ", "スタンダード", "", "スタッフが親切。特になし"],
    ["C3", "2026/07/02 11:00", "5", "Web", "ライト", "", "料金が高い。特になし"],
    ["C4", "2026/07/02 12:00", "10", "Web", "プレミアム", "", "特になし"],
    ["C5", "2026/07/03 12:00", "8", "Web", "プレミアム", "", ""],
]
DISTINCT_SENTENCES = 4  # 配送が遅い。/ スタッフが親切。/ 料金が高い。/ 特になし


class IrrationalPredictor(CuePredictor):
    """Probabilities with every digit used, so a lossy round trip through the cache would show."""

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions:
        base = super().predict(texts, batch_size)
        wobble = np.array([[np.sqrt(2 + len(t)) % 0.01 for _ in range(3)] for t in texts]).reshape(-1, 3)
        sentiment = (base.sentiment + wobble) / (base.sentiment + wobble).sum(axis=1, keepdims=True)
        topics = base.topics * (1 - np.pi / 1e3)
        return Predictions(sentiment, topics, base.topic_ids, base.topic_threshold, base.vectors)


@pytest.fixture
def export(write_export) -> Path:  # type: ignore[no-untyped-def]
    return write_export("cache.csv", csv_text(ROWS))


def _cache_counts(db: Path) -> list[tuple[int, int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT predictions_computed, predictions_reused FROM runs").fetchall()
    finally:
        con.close()


def test_a_rerun_reads_every_prediction_back_and_changes_nothing(
    taxonomy: Taxonomy, export: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb", chunk_rows=2)
    model = IrrationalPredictor(taxonomy)
    run_job(export, settings, model, taxonomy)
    assert sum(model.calls) == DISTINCT_SENTENCES  # 「特になし」 in three chunks, encoded once
    # distinct per chunk: 3 + 2, of which 「特になし」 in the second chunk comes from memory
    assert _cache_counts(settings.store.duckdb_path) == [(DISTINCT_SENTENCES, 1)]
    first = table_snapshot(settings.store.duckdb_path, VOLATILE)

    summary = run_job(export, settings, model, taxonomy)
    assert sum(model.calls) == DISTINCT_SENTENCES
    assert (summary.predictions_computed, summary.predictions_reused) == (0, 5)
    assert table_snapshot(settings.store.duckdb_path, VOLATILE) == first

    # the same numbers as a store that never had a cache: exact doubles survive the round trip
    fresh = make_settings(tmp_path / "fresh.duckdb", chunk_rows=2)
    uncached = fresh.model_copy(update={"model": ModelSettings(inference_cache=False)})
    run_job(export, uncached, IrrationalPredictor(taxonomy), taxonomy)
    without_cache = table_snapshot(uncached.store.duckdb_path, VOLATILE)
    assert without_cache.pop("inference_cache") == []
    first.pop("inference_cache")
    assert without_cache == first


def test_only_new_sentences_are_computed(
    taxonomy: Taxonomy,
    write_export,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb")
    model = CuePredictor(taxonomy)
    run_job(write_export("first.csv", csv_text(ROWS)), settings, model, taxonomy)
    more = [*ROWS, ["C6", "2026/07/04 12:00", "2", "Web", "ライト", "", "配送が遅い。アプリが落ちる"]]
    summary = run_job(write_export("second.csv", csv_text(more)), settings, model, taxonomy)
    assert (summary.predictions_computed, summary.predictions_reused) == (1, DISTINCT_SENTENCES)
    assert model.calls[-1] == 1


def test_model_and_taxonomy_versions_key_the_cache(taxonomy: Taxonomy, tmp_path: Path) -> None:
    texts = ["配送が遅い。", "スタッフが親切。"]
    with DuckDBStore(tmp_path / "voc.duckdb") as store:
        first = CachedPredictor(CuePredictor(taxonomy), store)
        first.predict(texts)
        # new predictions wait to be published with the run's rows
        assert store.query("SELECT count(*) FROM inference_cache") == [(0,)]
        rows = first.take_rows()
        store.insert("inference_cache", [row | {"run_id": "run-a"} for row in rows["inference_cache"]])
        store.insert("sentence_vectors", rows["sentence_vectors"])

        same = CachedPredictor(CuePredictor(taxonomy), store)
        same.predict(texts)
        assert (same.counts.computed, same.counts.from_store) == (0, 2)

        retrained = CuePredictor(taxonomy)
        retrained.model_version = "cue-test-2"  # type: ignore[misc]
        other_model = CachedPredictor(retrained, store)
        other_model.predict(texts)
        assert (other_model.counts.computed, other_model.counts.from_store) == (2, 0)

        new_taxonomy = CuePredictor(taxonomy)
        new_taxonomy.taxonomy_version = "2099-01"
        other_taxonomy = CachedPredictor(new_taxonomy, store)
        other_taxonomy.predict(texts)
        assert (other_taxonomy.counts.computed, other_taxonomy.counts.from_store) == (2, 0)
        # each missed cache keeps its new rows for publishing: two per model and taxonomy version
        assert [len(c.take_rows()["inference_cache"]) for c in (same, other_model, other_taxonomy)] == [
            0,
            2,
            2,
        ]


def test_a_prediction_without_its_vector_is_computed_again(taxonomy: Taxonomy, tmp_path: Path) -> None:
    """A store from before vectors were kept: its predictions are recomputed once, so every
    sentence gets the vector theme discovery needs, and the prediction is not stored twice."""
    with DuckDBStore(tmp_path / "voc.duckdb") as store:
        first = CachedPredictor(CuePredictor(taxonomy), store)
        first.predict(["配送が遅い。"])
        store.insert(
            "inference_cache", [r | {"run_id": "run-a"} for r in first.take_rows()["inference_cache"]]
        )
        again = CachedPredictor(CuePredictor(taxonomy), store)
        again.predict(["配送が遅い。"])
        assert (again.counts.computed, again.counts.from_store) == (1, 0)
        assert len(again.take_rows()["sentence_vectors"]) == 1


def test_memory_layer_is_bounded_and_keeps_the_most_recent(taxonomy: Taxonomy) -> None:
    model = CuePredictor(taxonomy)
    cached = CachedPredictor(model, None, memory_entries=2)
    cached.predict(["a", "b", "c"])
    cached.predict(["c", "b"])  # both still remembered
    assert cached.counts.from_memory == 2
    cached.predict(["a"])  # evicted: computed again
    assert (cached.counts.computed, sum(model.calls)) == (4, 4)


def test_full_hits_still_return_the_models_topics_and_thresholds(taxonomy: Taxonomy, tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "voc.duckdb") as store:
        expected = CachedPredictor(CuePredictor(taxonomy), store).predict(["配送が遅い。"])
        served = CachedPredictor(CuePredictor(taxonomy), store).predict(["配送が遅い。"])
    assert served.topic_ids == taxonomy.leaf_ids
    np.testing.assert_array_equal(served.topic_threshold, expected.topic_threshold)
    np.testing.assert_array_equal(served.topics, expected.topics)
    np.testing.assert_array_equal(served.sentiment, expected.sentiment)


def test_a_store_from_schema_version_3_gains_the_new_columns(tmp_path: Path) -> None:
    """Columns added at the end of a table are added in place; the rows already there keep theirs."""
    db = tmp_path / "old.duckdb"
    runs = table_specs()["runs"]
    added = {"predictions_computed", "predictions_reused", "stage_times", "low_confidence_share"}
    old_columns = [c for c in runs.columns if c.name not in added]
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE runs ({', '.join(f'{c.name} {c.type}' for c in old_columns)})")
    con.execute("INSERT INTO runs (run_id) VALUES ('run-old')")
    con.close()
    with DuckDBStore(db) as store:
        assert [name for name, _ in store.column_types("runs")] == runs.column_names
        assert store.query("SELECT run_id, predictions_computed FROM runs") == [("run-old", None)]
