"""Shared fixtures: settings pointing at temporary stores, and a small export writer."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.schema import table_specs
from pipeline.settings import ColumnMapping, DriverSettings, Settings, SourceSettings, StoreSettings
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy, load_taxonomy
from tests.fakes import CuePredictor

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "data" / "sample" / "nps_responses.csv"
SAMPLE_PII = REPO / "data" / "sample" / "pii_values.txt"
# short, clean labelled sentences: training and held-out topic sentences for tiny-model tests
TOPICS_TRAIN = REPO / "data" / "labelled" / "topics_train.jsonl"
TOPICS_EVAL = REPO / "data" / "labelled" / "topics_eval.jsonl"
# Columns that differ between two executions giving the same results: when and how fast a run
# went, how much it found in the inference cache, and which run first computed a cached prediction.
RUN_STATS = {"started_at", "finished_at", "seconds_by_stage", "stage_times"} | {
    "predictions_computed", "predictions_reused"
}  # fmt: skip
VOLATILE: dict[str, set[str]] = {"runs": RUN_STATS, "inference_cache": {"run_id"}}
HEADER = ["回答ID", "回答日時", "推奨度", "利用チャネル", "ご契約プラン", "年代", "ご意見・ご感想"]


def make_settings(
    db_path: Path,
    drivers: DriverSettings | None = None,
    store_url: str | None = None,
    **source_overrides: object,
) -> Settings:
    source = SourceSettings(
        columns=ColumnMapping(
            response_id="回答ID", responded_at="回答日時", score="推奨度", comment="ご意見・ご感想"
        ),
        segments={"channel": "利用チャネル", "plan": "ご契約プラン"},
        **source_overrides,  # type: ignore[arg-type]
    )
    store = StoreSettings(duckdb_path=db_path, url=store_url, postgres_schema=_schema_for(db_path))
    return Settings(source=source, store=store, drivers=drivers or DriverSettings())


def _schema_for(db_path: Path) -> str:
    """A PostgreSQL schema per test store, so tests on the shared server never meet."""
    return "t_" + hashlib.sha256(str(db_path).encode()).hexdigest()[:12]


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy(REPO / "configs" / "taxonomy.yaml")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Encoder and default-model cache: $VOC_MODEL_CACHE when set (reused across runs), else temporary."""
    configured = os.environ.get("VOC_MODEL_CACHE")
    return Path(configured) if configured else tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def predictor(taxonomy: Taxonomy) -> CuePredictor:
    return CuePredictor(taxonomy)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "voc.duckdb")


def csv_text(rows: Sequence[Sequence[str]], header: Sequence[str] = HEADER, delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@pytest.fixture
def write_export(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, text: str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


def table_snapshot(
    where: Path | Store, skip: dict[str, set[str]] | None = None, digits: int | None = None
) -> dict[str, list[tuple]]:
    """Every documented table's rows, sorted, for comparing two stores (a DuckDB file, opened
    read-only, or an open store). ``digits`` rounds floats, for comparing two databases."""
    skip = skip or {}
    con = duckdb.connect(str(where), read_only=True) if isinstance(where, Path) else None

    def rows(sql: str) -> list[tuple]:
        found = con.execute(sql).fetchall() if con is not None else where.query(sql)  # type: ignore[union-attr]
        if digits is not None:
            found = [tuple(round(v, digits) if isinstance(v, float) else v for v in r) for r in found]
        return sorted(found, key=repr)

    try:
        snapshot = {}
        for name, spec in table_specs().items():
            cols = [f'"{c}"' for c in spec.column_names if c not in skip.get(name, set())]
            if cols:
                snapshot[name] = rows(f'SELECT {", ".join(cols)} FROM "{name}"')
        return snapshot
    finally:
        if con is not None:
            con.close()


@pytest.fixture(scope="session")
def default_model(model_cache: Path, taxonomy: Taxonomy) -> Any:
    """The real default model (built and trained into the cache once per session)."""
    from models.registry import load_model

    return load_model("default", taxonomy, model_cache)


@pytest.fixture(scope="session")
def fast_default_model(model_cache: Path, taxonomy: Taxonomy, default_model: Any) -> Any:
    """The same model on the fast path the pipeline runs by default (`model.inference: fast`)."""
    from models.registry import load_model

    return load_model("default", taxonomy, model_cache, inference="fast")
