"""Two date ranges of one export into PostgreSQL: one after the other in one process, then at the
same time in two worker processes, as a parallel backfill runs them.

    .venv/bin/python -m bench.parallel --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

Each worker loads the model before the clock starts (as a Dask worker does once), so the figure
is the job's own speed-up. The runs table's stage times show whether the two ranges were in
the classify stage at the same time. On 2 cores the classify stage already uses both cores
alone, so the gain comes from overlapping one range's single-threaded stages (ingest,
tokenize, publish, drivers) with the other's encoding.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.synthetic import DAYS, FIRST_DAY, build_responses
from pipeline.contracts import DateScope
from pipeline.settings import Settings, StoreSettings, load_settings

REPO = Path(__file__).resolve().parents[1]


def _halves() -> list[DateScope]:
    first, last = FIRST_DAY.date(), FIRST_DAY.date() + timedelta(days=DAYS - 1)
    middle = first + timedelta(days=DAYS // 2)
    return [DateScope(first, middle - timedelta(days=1)), DateScope(middle, last)]


def _settings(config: Path, url: str, schema: str, threads: int | None) -> Settings:
    settings = load_settings(config)
    model = settings.model.model_copy(update={"threads": threads})
    store = StoreSettings(url=url, postgres_schema=schema)
    return settings.model_copy(update={"model": model, "store": store})


def _load(settings: Settings) -> tuple[Any, Any]:
    from models.registry import load_configured_model

    return load_configured_model(settings)


def _run_scopes(
    export: Path, settings: Settings, scopes: Sequence[DateScope], loaded: tuple[Any, Any]
) -> float:
    from pipeline.job import run_job

    taxonomy, model = loaded
    began = time.perf_counter()
    for scope in scopes:
        run_job(export, settings, model, taxonomy, scope, "backfill")
    return time.perf_counter() - began


def _worker(export: Path, settings: Settings, scope: DateScope, ready: Any, start: Any) -> None:
    """Load the model, say so, wait for the other worker, then run one date range."""
    loaded = _load(settings)
    ready.release()
    start.wait()
    _run_scopes(export, settings, [scope], loaded)


def _parallel(export: Path, config: Path, url: str, schema: str) -> float:
    context = multiprocessing.get_context("spawn")
    ready, start = context.Semaphore(0), context.Event()
    settings = _settings(config, url, schema, threads=1)
    workers = [context.Process(target=_worker, args=(export, settings, s, ready, start)) for s in _halves()]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    began = time.perf_counter()
    start.set()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a worker failed with exit code {worker.exitcode}")
    return time.perf_counter() - began


def _classify_times(url: str, schema: str) -> list[list[str]]:
    from pipeline.store import open_store

    with open_store(StoreSettings(url=url, postgres_schema=schema)) as store:
        rows = store.query("SELECT stage_times FROM runs ORDER BY scope_start")
        store.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return [json.loads(times)["classify"] for (times,) in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parallel", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--postgres", required=True, help="store.url of a PostgreSQL server to write into")
    parser.add_argument("--responses", type=int, default=4000)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "pipeline.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "output" / "bench")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    export = build_responses(args.responses, args.out / f"responses-{args.responses}.csv")
    one, two = (f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2))
    settings = _settings(args.config, args.postgres, one, threads=None)
    sequential = _run_scopes(export, settings, _halves(), _load(settings))
    sequential_classify = _classify_times(args.postgres, one)
    parallel = _parallel(export, args.config, args.postgres, two)
    parallel_classify = _classify_times(args.postgres, two)
    report = {
        "responses": args.responses,
        "date_ranges": [f"{s.start}..{s.end}" for s in _halves()],
        "sequential_seconds": round(sequential, 2),
        "parallel_seconds": round(parallel, 2),
        "speed_up": round(sequential / parallel, 2),
        "classify_stage_times": {"sequential": sequential_classify, "parallel": parallel_classify},
    }
    (args.out / f"parallel-{args.responses}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"{args.responses:,} responses as two date ranges into PostgreSQL")
    print(f"  one after the other, one process (2 threads): {sequential:8.1f} s")
    print(
        f"  at the same time, two processes (1 thread each): {parallel:8.1f} s  ({report['speed_up']:.2f}×)"
    )
    for label, (first, second) in (("sequential", sequential_classify), ("parallel", parallel_classify)):
        print(f"  classify stage, {label}: {first[0]}..{first[1]} and {second[0]}..{second[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
