"""The topic taxonomy: a versioned two-level tree of topics read from YAML.

Labelled data and topic heads use leaf ids; parents are roll-ups. Seed terms are UniDic lemmas
and are compared with token lemmas (loanword glosses removed on both sides). A leaf's examples
are training data: a leaf no labelled row names is learnt from them (`models.training`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.tokenize import clean_lemma

DEFAULT_TAXONOMY_PATH = Path("configs/taxonomy.yaml")


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label_ja: str
    label_en: str
    parent: str | None
    description: str
    seed_terms: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    language: str = "ja"
    description: str = ""
    topics: tuple[Topic, ...]

    @model_validator(mode="after")
    def _two_levels(self) -> Taxonomy:
        ids = [t.id for t in self.topics]
        if len(ids) != len(set(ids)):
            raise ValueError("topic ids must be unique")
        by_id = {t.id: t for t in self.topics}
        for topic in self.topics:
            if topic.parent is None:
                continue
            parent = by_id.get(topic.parent)
            if parent is None:
                raise ValueError(f"topic {topic.id!r} names unknown parent {topic.parent!r}")
            if parent.parent is not None:
                raise ValueError(f"topic {topic.id!r}: the taxonomy has two levels; {parent.id!r} is a leaf")
        return self

    @functools.cached_property
    def leaves(self) -> tuple[Topic, ...]:
        """Topics that are nobody's parent, in file order: what the topic head predicts."""
        parents = {t.parent for t in self.topics if t.parent}
        return tuple(t for t in self.topics if t.id not in parents)

    @functools.cached_property
    def leaf_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.leaves)

    def parent_of(self, topic_id: str) -> str | None:
        return next(t.parent for t in self.topics if t.id == topic_id)

    @functools.cached_property
    def seed_lemmas(self) -> dict[str, frozenset[str]]:
        return {t.id: frozenset(clean_lemma(s, s) for s in t.seed_terms) for t in self.leaves}

    def seed_topics(self, lemmas: Iterable[str]) -> frozenset[str]:
        """Leaves one of whose seed terms is among ``lemmas``: weak evidence, used to label
        unlabelled sentences for topics that only the taxonomy's examples define."""
        present = set(lemmas)
        return frozenset(topic for topic, seeds in self.seed_lemmas.items() if present & seeds)


def load_taxonomy(path: Path = DEFAULT_TAXONOMY_PATH) -> Taxonomy:
    if not path.exists():
        raise ConfigError(f"taxonomy file {path} does not exist")
    try:
        return Taxonomy.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid taxonomy ({str(exc).splitlines()[0]})") from exc
