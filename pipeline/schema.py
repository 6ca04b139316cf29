"""The documented result schema, read from ``tables.yaml``: each table's grain, key, partition
and columns (types, nullability, accepted values, references), the BI views, and the helpers
that apply it to rows (Arrow schemas, lineage columns, which tables a run replaces together).
Both stores (`pipeline.store`) create their tables from it, and the tests check the real tables
against it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

if TYPE_CHECKING:
    from pipeline.contracts import Lineage

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "BLOB": pa.binary(),
}
# the documented (DuckDB) type → how each database names it in information_schema
REPORTED_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"},
    "postgresql": {
        "VARCHAR": "character varying",
        "INTEGER": "integer",
        "BIGINT": "bigint",
        "DOUBLE": "double precision",
        "BOOLEAN": "boolean",
        "DATE": "date",
        "TIMESTAMPTZ": "timestamp with time zone",
        "BLOB": "bytea",
    },
}
_POSTGRES_DDL_TYPES = {"DOUBLE": "DOUBLE PRECISION", "BLOB": "BYTEA"}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool
    description: str
    accepted: tuple[str, ...] | None
    references: str | None = None  # "table.column" that holds every value of this column


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

    def create_sql(self, dialect: str = "duckdb") -> str:
        cols = ",\n  ".join(self.column_sql(c, dialect) for c in self.columns)
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  {cols}\n)'

    @staticmethod
    def column_sql(column: ColumnSpec, dialect: str) -> str:
        types = _POSTGRES_DDL_TYPES if dialect == "postgresql" else {}
        not_null = "" if column.nullable else " NOT NULL"
        return f'"{column.name}" {types.get(column.type, column.type)}{not_null}'

    def reported_columns(self, dialect: str) -> list[tuple[str, str]]:
        names = REPORTED_TYPES[dialect]
        return [(c.name, names.get(c.type, c.type)) for c in self.columns]


@dataclass(frozen=True, slots=True)
class ViewSpec:
    name: str
    sql: str


def _schema_document() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("tables.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@functools.cache
def table_specs() -> dict[str, TableSpec]:
    """The documented tables, in the order the file lists them. A table's ``notes`` in the file
    are for its readers and are not loaded."""
    specs: dict[str, TableSpec] = {}
    for name, table in _schema_document()["tables"].items():
        columns = tuple(
            ColumnSpec(
                name=col_name,
                type=col["type"],
                nullable=bool(col["nullable"]),
                description=col["description"],
                accepted=tuple(col["accepted"]) if col.get("accepted") else None,
                references=col.get("references"),
            )
            for col_name, col in table["columns"].items()
        )
        specs[name] = TableSpec(name, table["grain"], tuple(table["key"]), table["partition"], columns)
    return specs


def lineage_columns(table: str, lineage: Lineage) -> dict[str, Any]:
    """The lineage values rows of ``table`` carry: each `Lineage` field that tables.yaml lists
    among the table's columns."""
    names = set(table_specs()[table].column_names)
    return {f.name: getattr(lineage, f.name) for f in dataclasses.fields(lineage) if f.name in names}


def partitioned_tables(partition: str) -> list[str]:
    """The tables whose partition key is ``partition`` (as tables.yaml records it), in the
    file's order: a run replaces these together."""
    return [name for name, spec in table_specs().items() if spec.partition == partition]


@functools.cache
def view_specs() -> dict[str, ViewSpec]:
    """Views with friendly names for BI tools, defined over the tables in portable SQL. A view's
    ``description`` in the file is for its readers (docs/bi-guide.md lists the views) and is not
    loaded."""
    views = _schema_document().get("views") or {}
    return {name: ViewSpec(name, view["sql"].strip()) for name, view in views.items()}


def schema_version() -> int:
    return int(_schema_document()["schema_version"])


def to_arrow(spec: TableSpec, rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=spec.arrow_schema())
