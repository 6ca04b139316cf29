from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_repository_config_is_valid() -> None:
    settings = load_settings(REPO / "configs" / "pipeline.yaml", environ={})
    assert settings.source.columns.score == "推奨度"
    assert set(settings.source.segments) == {"channel", "plan"}


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("source:\n  colums: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown config key 'source\.colums'"):
        load_settings(path, environ={})


def test_env_overrides_and_what_the_hash_covers(tmp_path: Path) -> None:
    base = load_settings(REPO / "configs" / "pipeline.yaml", environ={})
    moved = load_settings(
        REPO / "configs" / "pipeline.yaml", environ={"VOC__STORE__DUCKDB_PATH": str(tmp_path / "x.duckdb")}
    )
    assert moved.store.duckdb_path == tmp_path / "x.duckdb"
    assert moved.config_hash() == base.config_hash()  # where tables live does not change them
    zone = load_settings(REPO / "configs" / "pipeline.yaml", environ={"VOC__SOURCE__TIMEZONE": "UTC"})
    assert zone.config_hash() != base.config_hash()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source:\n  timezone: Mars/Olympus\n", "unknown time zone"),
        ("source:\n  chunk_rows: 0\n", "chunk_rows"),
        ("- a list\n", "mapping"),
        ("source: [\n", "not valid YAML"),
        ("store:\n  duckdb_memory_limit: lots\n", "not a memory size"),
        ("source:\n  score_pattern: '\\d+'\n", r"needs exactly one group .* it has 0"),
        ("source:\n  score_pattern: '(\\d+)\\s*(点)'\n", r"needs exactly one group .* it has 2"),
        ("source:\n  score_pattern: '(\\d+'\n", "not a regular expression"),
        ("source:\n  max_quarantine_share: 1.5\n", "max_quarantine_share"),
        ("store:\n  lock_timeout: -1\n", "lock_timeout"),
    ],
)
def test_invalid_settings(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_what_decides_failure_and_waiting_is_not_hashed() -> None:
    config = REPO / "configs" / "pipeline.yaml"
    base = load_settings(config, environ={})
    lenient = {"VOC__SOURCE__MAX_QUARANTINE_SHARE": "1.0", "VOC__STORE__LOCK_TIMEOUT": "5"}
    assert load_settings(config, environ=lenient).config_hash() == base.config_hash()
    pattern = load_settings(config, environ={"VOC__SOURCE__SCORE_PATTERN": "^(\\d+)"})
    assert pattern.source.score_pattern == r"^(\d+)" and pattern.config_hash() != base.config_hash()


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_paths_may_start_with_home(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "store:\n  duckdb_path: ~/voc/voc.duckdb\nmodel:\n  cache_dir: ~/models\n", encoding="utf-8"
    )
    settings = load_settings(path, environ={})
    assert settings.store.duckdb_path == Path.home() / "voc" / "voc.duckdb"
    assert settings.model.cache_dir == Path.home() / "models"
