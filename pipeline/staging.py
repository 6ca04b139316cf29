"""The staging area: a run's result rows on disk, chunk by chunk, until they are published.

The stages that need the CPU (ingest, normalise, tokenize, classify) run without the store's
write lock and leave their rows here, one Parquet file per table and chunk, stamped with the
run's lineage. Publishing (`pipeline.publish`) then reads one chunk back at a time, so memory
stays bounded by the chunk size whatever the input's size. The folder is temporary: it is
removed when the run ends, published or not, and a crash before publishing leaves the
published tables as they were.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts import Lineage
from pipeline.schema import lineage_columns, table_specs, to_arrow

PARTITION_COLUMN = "response_date"


class StagingArea:
    """Parquet files of result rows under ``folder``: ``chunk-000001/<table>.parquet``."""

    def __init__(self, folder: Path, lineage: Lineage) -> None:
        self.folder = folder
        self.lineage = lineage
        self.chunk_count = 0
        self.dates: set[date] = set()  # every response date staged: the partitions to replace

    def add(self, rows: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        """Stage one chunk's rows by table, each stamped with its table's lineage columns."""
        self.chunk_count += 1
        chunk_folder = self.folder / f"chunk-{self.chunk_count:06d}"
        chunk_folder.mkdir()
        for table, table_rows in rows.items():
            if not table_rows:
                continue
            stamp = lineage_columns(table, self.lineage)
            data = to_arrow(table_specs()[table], [{**row, **stamp} for row in table_rows])
            pq.write_table(data, chunk_folder / f"{table}.parquet")
            if PARTITION_COLUMN in data.column_names:
                self.dates.update(d for d in data.column(PARTITION_COLUMN).to_pylist() if d is not None)

    def chunks(self) -> Iterator[dict[str, pa.Table]]:
        """Each staged chunk's tables, in the order they were staged, one chunk in memory at a time."""
        for number in range(1, self.chunk_count + 1):
            chunk_folder = self.folder / f"chunk-{number:06d}"
            yield {
                path.stem: pq.read_table(path, schema=table_specs()[path.stem].arrow_schema())
                for path in sorted(chunk_folder.glob("*.parquet"))
            }


@contextmanager
def staging_area(lineage: Lineage) -> Iterator[StagingArea]:
    """A fresh staging area for one run, removed afterwards whatever happens."""
    with tempfile.TemporaryDirectory(prefix=f"voc-{lineage.run_id}-") as folder:
        yield StagingArea(Path(folder), lineage)
