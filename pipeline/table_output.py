"""Summary tables as CSV or JSON, so their numbers can be pasted elsewhere (``--format csv|json``
of ``voc nps``, ``voc drivers``, ``voc themes``, ``voc run`` and ``voc backfill``).

One definition for every command: numbers unformatted at full precision (a float is written as
Python's shortest round-trip repr), intervals as their own ``ci_low`` / ``ci_high`` columns,
dates ISO 8601, a missing value empty in CSV and null in JSON (so is an infinite or undefined
float: JSON has none). CSV is one table, header first, UTF-8; a list or mapping cell (a driver's
example comments) is its JSON text there. JSON is a list of row objects, or an object of named
tables; non-ASCII text is written as is.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal

TableFormat = Literal["text", "csv", "json"]
TABLE_FORMATS: tuple[TableFormat, ...] = ("text", "csv", "json")

Row = Mapping[str, Any]


def plain(value: Any) -> Any:
    """A value as JSON holds it: ISO dates, None for a non-finite float, lists for tuples."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def csv_cell(value: Any) -> str:
    """A plain value as CSV text: JSON's spelling for booleans, lists and mappings."""
    if value is None:
        return ""
    if isinstance(value, bool | list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def table_text(rows: Sequence[Row], fmt: Literal["csv", "json"]) -> str:
    """One table: a JSON list of row objects, or CSV with a header row (none for no rows)."""
    plain_rows = [{str(k): plain(v) for k, v in row.items()} for row in rows]
    if fmt == "json":
        return json.dumps(plain_rows, ensure_ascii=False, indent=2) + "\n"
    columns = list(dict.fromkeys(column for row in plain_rows for column in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    if plain_rows:
        writer.writeheader()
    writer.writerows({column: csv_cell(value) for column, value in row.items()} for row in plain_rows)
    return buffer.getvalue()


def tables_json(tables: Mapping[str, Sequence[Row]]) -> str:
    """Named tables as one JSON object of row lists."""
    named = {
        name: [{str(k): plain(v) for k, v in row.items()} for row in rows] for name, rows in tables.items()
    }
    return json.dumps(named, ensure_ascii=False, indent=2) + "\n"


# --- the commands' rows, flattened ------------------------------------------------------------


def nps_table(rows: Sequence[Row], segment: str | None, confidence: float) -> list[dict[str, Any]]:
    """`pipeline.report.nps_by_period` rows with their estimate's counts, NPS, standard error and
    interval as columns of their own. One row per period (and segment value)."""
    return [
        {
            "period": row["period"],
            "segment_name": segment or "all",
            "segment_value": row["segment_value"],
            **dataclasses.asdict(row["estimate"]),
            "confidence": confidence,
        }
        for row in rows
    ]


def theme_table(rows: Sequence[Row], examples: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """`pipeline.theme_report.window_themes` rows with their example sentences as a column."""
    return [{**row, "examples": list(examples.get(row["theme_id"], []))} for row in rows]


def driver_table(rows: Sequence[Row], examples: int) -> list[dict[str, Any]]:
    """`pipeline.report.detractor_drivers` rows with at most ``examples`` example comments each."""
    return [{**row, "examples": list(row["examples"])[:examples]} for row in rows]
