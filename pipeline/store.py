"""The result store: DuckDB tables created from the documented schema in ``tables.yaml``.

A run writes inside one transaction: it deletes the partitions (response dates) it covers,
inserts the new rows chunk by chunk and commits once, so readers never see a half-written
day and re-running the same input leaves the tables identical. DuckDB lets one process write
a file at a time; a second writer gets a clear error instead of corrupting it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from pipeline.errors import StoreError

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}
# DuckDB reports some types under other names in information_schema
_REPORTED_TYPES = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool
    description: str
    accepted: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    grain: str
    key: tuple[str, ...]
    partition: str | None
    columns: tuple[ColumnSpec, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in self.columns])

    def create_sql(self) -> str:
        cols = ",\n  ".join(f'"{c.name}" {c.type}{"" if c.nullable else " NOT NULL"}' for c in self.columns)
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  {cols}\n)'


@functools.cache
def table_specs() -> dict[str, TableSpec]:
    """The documented tables, in the order the file lists them."""
    text = resources.files("pipeline").joinpath("tables.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    specs: dict[str, TableSpec] = {}
    for name, table in doc["tables"].items():
        columns = tuple(
            ColumnSpec(
                name=col_name,
                type=col["type"],
                nullable=bool(col["nullable"]),
                description=col["description"],
                accepted=tuple(col["accepted"]) if col.get("accepted") else None,
            )
            for col_name, col in table["columns"].items()
        )
        specs[name] = TableSpec(name, table["grain"], tuple(table["key"]), table["partition"], columns)
    return specs


def schema_version() -> int:
    text = resources.files("pipeline").joinpath("tables.yaml").read_text(encoding="utf-8")
    return int(yaml.safe_load(text)["schema_version"])


def to_arrow(spec: TableSpec, rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=spec.arrow_schema())


class DuckDBStore:
    """Result tables in one DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreError(
                    f"{path} is in use by another process (another run, or a BI tool holding it "
                    "open for writing); wait for it to finish and run again"
                ) from exc
            raise StoreError(f"cannot open {path}: {exc}") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{path} is not a DuckDB database this version can open: {exc}") from exc
        self._ensure_schema()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_schema(self) -> None:
        for spec in table_specs().values():
            self.con.execute(spec.create_sql())
            found = self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position",
                [spec.name],
            ).fetchall()
            expected = [(c.name, _REPORTED_TYPES.get(c.type, c.type)) for c in spec.columns]
            if found != expected:
                raise StoreError(
                    f"table {spec.name} in {self.path} does not match schema version {schema_version()} "
                    "(it was written by another version); point store.duckdb_path at a new file "
                    "and re-run or backfill into it"
                )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def delete_partitions(self, table: str, dates: Iterable[date] | Iterable[str]) -> None:
        spec = table_specs()[table]
        if spec.partition is None:
            raise ValueError(f"table {table} is not partitioned")
        values = sorted(set(dates))  # type: ignore[type-var]
        if values:
            self.con.execute(
                f'DELETE FROM "{table}" WHERE "{spec.partition}" IN (SELECT unnest(?))', [values]
            )

    def delete_where(self, table: str, condition: str, params: Sequence[Any]) -> None:
        self.con.execute(f'DELETE FROM "{table}" WHERE {condition}', list(params))

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        spec = table_specs()[table]
        arrow_rows = to_arrow(spec, rows)
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        self.con.register("_incoming", arrow_rows)
        try:
            self.con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _incoming')
        finally:
            self.con.unregister("_incoming")

    def upsert_by_key(self, table: str, row: dict[str, Any]) -> None:
        spec = table_specs()[table]
        where = " AND ".join(f'"{k}" = ?' for k in spec.key)
        self.con.execute(f'DELETE FROM "{table}" WHERE {where}', [row[k] for k in spec.key])
        self.insert(table, [row])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()
