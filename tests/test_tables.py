"""The table documentation (pipeline/tables.yaml) against the code that writes the tables: every
`accepted:` list is the set of values its enum in code can take, so a new enum member cannot
reach a table undocumented, and a documented value cannot go stale."""

from __future__ import annotations

import typing
from enum import Enum

import pytest

from pipeline.contracts import NpsCategory, SentimentLabel, TermKind
from pipeline.drivers.load import TopicLevelName
from pipeline.drivers.terms import Coverage
from pipeline.errors import ReasonCode, Stage
from pipeline.nps import CI_METHOD
from pipeline.schema import table_specs
from pipeline.summary import RunKind, RunStatus
from pipeline.themes.state import ThemeEvent, ThemeStatus


def _values(source: type[Enum] | object) -> set[str]:
    if isinstance(source, type) and issubclass(source, Enum):
        return {member.value for member in source}
    return set(typing.get_args(source)) or {str(source)}


# (table, column) → where its values are defined in code
SOURCES: dict[tuple[str, str], object] = {
    ("responses", "nps_category"): NpsCategory,
    ("responses", "sentiment_label"): SentimentLabel,
    ("sentences", "sentiment_label"): SentimentLabel,
    ("response_topics", "topic_sentiment"): SentimentLabel,
    ("response_topics", "nps_category"): NpsCategory,
    ("terms", "term_kind"): TermKind,
    ("terms", "nps_category"): NpsCategory,
    ("nps_daily", "ci_method"): CI_METHOD,
    ("quarantine", "stage"): Stage,
    ("quarantine", "reason_code"): ReasonCode,
    ("runs", "kind"): RunKind,
    ("runs", "status"): RunStatus,
    ("drivers", "topic_level"): TopicLevelName,
    ("detractor_terms", "term_kind"): TermKind,
    ("detractor_terms", "coverage"): Coverage,
    ("themes", "status"): ThemeStatus,
    ("theme_events", "event"): ThemeEvent,
}
DOCUMENTED = {
    (table, column.name): column.accepted
    for table, spec in table_specs().items()
    for column in spec.columns
    if column.accepted
}


def test_every_accepted_list_has_its_enum() -> None:
    assert set(DOCUMENTED) == set(SOURCES)


@pytest.mark.parametrize("table_column", sorted(DOCUMENTED), ids=".".join)
def test_accepted_values_are_the_enums_values(table_column: tuple[str, str]) -> None:
    assert set(DOCUMENTED[table_column] or ()) == _values(SOURCES[table_column])


def test_references_name_a_documented_column() -> None:
    specs = table_specs()
    for table, spec in specs.items():
        for column in spec.columns:
            if column.references:
                target, target_column = column.references.split(".")
                assert target_column in specs[target].column_names, f"{table}.{column.name}"
