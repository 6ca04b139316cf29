"""Checks a store's real tables against the documentation in pipeline/tables.yaml."""

from __future__ import annotations

from typing import Any

from pipeline.store import _REPORTED_TYPES, table_specs


def contract_violations(con: Any) -> list[str]:
    """Every way the tables differ from their documentation; empty when they match."""
    problems: list[str] = []
    for name, spec in table_specs().items():
        found = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [name],
        ).fetchall()
        expected = [(c.name, _REPORTED_TYPES.get(c.type, c.type)) for c in spec.columns]
        if found != expected:
            problems.append(f"{name}: columns {found} != documented {expected}")
            continue
        keys = ", ".join(f'"{k}"' for k in spec.key)
        duplicates = con.execute(
            f'SELECT count(*) FROM (SELECT {keys} FROM "{name}" GROUP BY ALL HAVING count(*) > 1)'
        ).fetchone()[0]
        if duplicates:
            problems.append(f"{name}: {duplicates} duplicated keys ({keys})")
        for column in spec.columns:
            if not column.nullable:
                nulls = con.execute(
                    f'SELECT count(*) FROM "{name}" WHERE "{column.name}" IS NULL'
                ).fetchone()[0]
                if nulls:
                    problems.append(f"{name}.{column.name}: {nulls} NULLs in a NOT NULL column")
            if column.accepted:
                bad = con.execute(
                    f'SELECT DISTINCT "{column.name}" FROM "{name}" '
                    f'WHERE "{column.name}" IS NOT NULL AND "{column.name}" NOT IN (SELECT unnest(?))',
                    [list(column.accepted)],
                ).fetchall()
                if bad:
                    problems.append(f"{name}.{column.name}: values {bad} not in {column.accepted}")
    return problems
