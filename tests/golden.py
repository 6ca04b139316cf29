"""A fingerprint of every result table after the bundled sample's run with the stand-in model: a
refactoring that should change no result is checked against the one committed here.

    .venv/bin/python -m tests.golden            # print the current fingerprint
    .venv/bin/python -m tests.golden --write    # commit a new one, when a change is meant

Run ids and timings are left out; floats are rounded to 9 decimals, so a CPU that adds in
another order gives the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

FINGERPRINT = Path(__file__).with_name("data") / "sample_tables.json"
VOLATILE = {"run_id", "started_at", "finished_at", "seconds_by_stage", "stage_times"}


def fingerprint(db: Path) -> dict[str, Any]:
    """Rows per table and a hash of its sorted rows, without run ids and timings."""
    from pipeline.schema import table_specs
    from tests.conftest import table_snapshot

    skip = {name: VOLATILE for name in table_specs()}
    snapshot = table_snapshot(db, skip=skip, digits=9)
    return {
        table: {"rows": len(rows), "sha256": hashlib.sha256(repr(rows).encode()).hexdigest()}
        for table, rows in sorted(snapshot.items())
    }


def sample_fingerprint() -> dict[str, Any]:
    from pipeline.job import run_job
    from pipeline.taxonomy import load_taxonomy
    from tests.conftest import REPO, SAMPLE_CSV, make_settings
    from tests.fakes import CuePredictor

    taxonomy = load_taxonomy(REPO / "configs" / "taxonomy.yaml")
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "voc.duckdb"
        run_job(SAMPLE_CSV, make_settings(db), CuePredictor(taxonomy), taxonomy)
        return fingerprint(db)


if __name__ == "__main__":
    found = sample_fingerprint()
    text = json.dumps(found, indent=2, sort_keys=True) + "\n"
    if "--write" in sys.argv[1:]:
        FINGERPRINT.write_text(text, encoding="utf-8")
        print(f"written {FINGERPRINT}")
    else:
        print(text, end="")
