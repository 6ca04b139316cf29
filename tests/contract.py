"""Checks a store's real tables against the documentation in pipeline/tables.yaml."""

from __future__ import annotations

from typing import Any

from pipeline.schema import table_specs
from pipeline.store import Store


class _ReadOnly:
    """A read-only DuckDB connection with the store's `query` and `column_types`."""

    dialect = "duckdb"
    column_types = Store.column_types

    def __init__(self, con: Any) -> None:
        self.con = con

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()  # type: ignore[no-any-return]


def contract_violations(store_or_con: Store | Any) -> list[str]:
    """Every way the tables differ from their documentation; empty when they match.

    Takes a store (DuckDB or PostgreSQL) or a read-only DuckDB connection."""
    con = store_or_con if isinstance(store_or_con, Store) else _ReadOnly(store_or_con)
    problems: list[str] = []
    for name, spec in table_specs().items():
        found = con.column_types(name)
        expected = spec.reported_columns(con.dialect)
        if found != expected:
            problems.append(f"{name}: columns {found} != documented {expected}")
            continue
        keys = ", ".join(f'"{k}"' for k in spec.key)
        duplicates = con.query(
            f'SELECT count(*) FROM (SELECT {keys} FROM "{name}" GROUP BY {keys} HAVING count(*) > 1) d'
        )[0][0]
        if duplicates:
            problems.append(f"{name}: {duplicates} duplicated keys ({keys})")
        for column in spec.columns:
            if not column.nullable:
                nulls = con.query(f'SELECT count(*) FROM "{name}" WHERE "{column.name}" IS NULL')[0][0]
                if nulls:
                    problems.append(f"{name}.{column.name}: {nulls} NULLs in a NOT NULL column")
            if column.accepted:
                bad = con.query(
                    f'SELECT DISTINCT "{column.name}" FROM "{name}" '
                    f'WHERE "{column.name}" IS NOT NULL AND NOT ("{column.name}" = ANY(?))',
                    [list(column.accepted)],
                )
                if bad:
                    problems.append(f"{name}.{column.name}: values {bad} not in {column.accepted}")
            if column.references:
                problems += _missing_references(con, name, column.name, column.references)
    return problems


def _missing_references(con: Any, table: str, column: str, references: str) -> list[str]:
    """dbt's `relationships` test: every value of ``table.column`` is in ``references``."""
    target, target_column = references.split(".")
    orphans = con.query(
        f'SELECT count(*) FROM "{table}" t WHERE t."{column}" IS NOT NULL AND NOT EXISTS '
        f'(SELECT 1 FROM "{target}" r WHERE r."{target_column}" = t."{column}")'
    )[0][0]
    return [f"{table}.{column}: {orphans} rows without their {references}"] if orphans else []
