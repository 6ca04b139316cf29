"""Personal data outside the comment: response ids, segment values, personal columns and
quarantine payloads, checked by scanning every table and view after a run over an export that
holds personal data in every column."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from pipeline.contracts import SourceRecord
from pipeline.errors import ConfigError, ReasonCode
from pipeline.job import run_job
from pipeline.normalize import mask_pii, normalize_text
from pipeline.pseudonyms import PSEUDONYM_KEY_ENV, PSEUDONYM_PREFIX, ResponseIds
from pipeline.schema import view_specs
from pipeline.settings import DriverSettings, Settings, load_settings
from pipeline.taxonomy import Taxonomy
from pipeline.validate import RowValidator
from tests.conftest import HEADER, REPO, VOLATILE, csv_text, make_settings, table_snapshot
from tests.contract import contract_violations
from tests.fakes import CuePredictor

KEY = "test-pseudonym-key-0123456789abcdef"
PERSONAL = ["氏名", "電話番号"]
PII_HEADER = [*HEADER, *PERSONAL]
# what the masker knows (pipeline/normalize.py), each kind in several forms; every digit run
# has at least 7 digits, so no hash or count in the tables contains one by chance
PII = [
    "hanako.sato@example.co.jp",
    "kenji.watanabe@mail.example.com",
    "090-2468-1357",
    "03-5550-7788",
    "(045)555-0199",
    "+81-80-3141-5926",
    "09011112222",
    "0120-246-810",
    "03(3581)4321",
    "080 9753 1864",
    "０８０－４４４４－５５５５",
    "〒150-0043",
    "104-0061",
    "郵便番号2310023",
    "4980 1234 5678 9012",
    "5555-5555-5555-4444",
    "https://example.jp/mypage/hanako",
    "www.example.com/u/7314159",
    "会員番号：M48151623",
    "注文番号 A9876543",
    "31415926535",
]
NAMES = ["佐藤花子", "渡辺健二"]  # no masker finds a name: only personal_columns keeps them out
COMMENTS = ["配送が遅い。", "スタッフがとても親切でした。", "料金が高い。", "アプリは便利です。"]


def _pii(i: int) -> str:
    return PII[i % len(PII)]


def pii_rows() -> list[list[str]]:
    """Every PII value once as a response id, and in rotation in each segment, the free column
    年代, the comment and a personal column; ordinary rows around them; then rows that are
    quarantined with PII in every column, and one that cannot be split into columns."""
    rows = [
        [f"R2026070{1 + i % 3}-{i:04d}", f"2026/07/0{1 + i % 3} 10:00", str(i % 11), "Web", "ライト", "",
         COMMENTS[i % 4], "", ""]
        for i in range(12)
    ]  # fmt: skip
    for i, value in enumerate(PII):
        # a bare number as the id is the survey tool's respondent number (SurveyMonkey's are 11
        # digits) and is kept as it is; in every other column it is masked like the rest
        response_id = f"S{i:04d}" if value.isdigit() and value.startswith("3") else value
        rows.append(
            [response_id, f"2026/07/0{1 + i % 3} 1{i % 10}:00", str((i * 7) % 11), f"担当:{_pii(i + 1)}",
             _pii(i + 2), _pii(i + 3), f"{COMMENTS[i % 4]}連絡は{_pii(i + 4)}までお願いします", NAMES[i % 2],
             _pii(i + 5)]
        )  # fmt: skip
    everywhere = [_pii(1), _pii(2), _pii(3), f"{_pii(4)}に電話して", NAMES[0], _pii(5)]
    rows += [
        [PII[0], "2026/07/03 12:00", "9", *everywhere],  # duplicate_response_id
        [PII[6], "2026/07/03 12:00", "とても良い", *everywhere],  # bad_score
        [PII[8], "", "5", *everywhere],  # missing_timestamp
        ["x" * 190 + PII[1], "2026/07/03 12:00", "5", *everywhere],  # field_too_long
        [PII[2], "2026/07/03 12:00", "5", *everywhere, "one field too many"],  # malformed_record
    ]
    return rows


@pytest.fixture
def pii_export(write_export: Callable[..., Path]) -> Path:
    return write_export("pii.csv", csv_text(pii_rows(), header=PII_HEADER))


def pii_settings(db: Path, key: str | None = KEY) -> Settings:
    return make_settings(
        db, drivers=DriverSettings(windows=[7], min_responses=2), personal_columns=PERSONAL, pseudonym_key=key
    )


def stored_text(db: Path) -> str:
    """Every value of every table and view, as text. Floats are left out: their digits could
    hold a 7-digit run by chance; vectors (BLOB) are checked for the raw strings only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        relations = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        assert set(view_specs()) <= {name for (name,) in relations}
        values: list[str] = []
        for (name,) in relations:
            for row in con.execute(f'SELECT * FROM "{name}"').fetchall():
                for v in row:
                    if isinstance(v, bytes):
                        values.append(v.decode("latin-1"))
                    elif v is not None and not isinstance(v, float):
                        values.append(str(v))
        return "\n".join(values)
    finally:
        con.close()


def leaks(db: Path, secrets: list[str]) -> list[str]:
    """The secrets found in any table or view: as written, NFKC-normalised or as a run of digits."""
    dump = stored_text(db)
    digits = re.compile(r"\D")
    found = [s for s in secrets if s in dump or normalize_text(s) in dump]
    found += [f"digits of {s}" for s in secrets if (run := digits.sub("", s)) and run in dump]
    return found


def test_the_corpus_is_what_the_masker_knows() -> None:
    assert all(mask_pii(normalize_text(value)).pii_kinds for value in PII)
    assert all(len(re.sub(r"\D", "", value)) in (0, *range(7, 20)) for value in PII)


def test_no_personal_data_in_any_table_or_view(
    predictor: CuePredictor, taxonomy: Taxonomy, pii_export: Path, tmp_path: Path
) -> None:
    settings = pii_settings(tmp_path / "voc.duckdb")
    summary = run_job(pii_export, settings, predictor, taxonomy)
    assert (summary.rows_published, summary.rows_quarantined) == (12 + len(PII), 5)
    assert set(summary.quarantine_reasons) == {
        "duplicate_response_id", "bad_score", "missing_timestamp", "field_too_long", "malformed_record"
    }  # fmt: skip
    db = settings.store.duckdb_path
    assert leaks(db, PII + NAMES + [KEY]) == []
    con = duckdb.connect(str(db), read_only=True)
    assert contract_violations(con) == []
    assert con.execute("SELECT count(*) FROM drivers WHERE segment_value LIKE '担当:[%]'").fetchone()[0] > 0  # type: ignore[index]


def test_pseudonyms_are_stable_and_ordinary_ids_stay(
    predictor: CuePredictor, taxonomy: Taxonomy, pii_export: Path, tmp_path: Path
) -> None:
    settings = pii_settings(tmp_path / "voc.duckdb")
    run_job(pii_export, settings, predictor, taxonomy)
    db = settings.store.duckdb_path
    first = table_snapshot(db, VOLATILE)
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT response_id FROM responses").fetchall()}
    quarantined = dict(con.execute("SELECT reason_code, response_id FROM quarantine").fetchall())
    payloads = [json.loads(p) for (p,) in con.execute("SELECT raw_payload FROM quarantine").fetchall()]
    con.close()
    assert "R20260701-0000" in ids
    pseudonyms = {i for i in ids if i.startswith(PSEUDONYM_PREFIX)}
    # every PII id but the bare respondent number
    assert len(pseudonyms) == len(PII) - 1 and all(re.fullmatch(r"pid1-[0-9a-f]{32}", i) for i in pseudonyms)
    # the duplicate of the first PII id is caught, and quarantine names it by the same pseudonym
    assert quarantined["duplicate_response_id"] in pseudonyms
    assert quarantined["field_too_long"].startswith(PSEUDONYM_PREFIX)
    assert quarantined["duplicate_response_id"] in {p.get("回答ID") for p in payloads}
    assert not any(set(PERSONAL) & set(p) for p in payloads)
    assert {"_raw_withheld"} in [set(p) for p in payloads]
    run_job(pii_export, settings, predictor, taxonomy)  # a re-run replaces the same rows
    assert table_snapshot(db, VOLATILE) == first
    other = pii_settings(tmp_path / "other.duckdb", key="another-key-of-enough-length")
    run_job(pii_export, other, predictor, taxonomy)
    again = duckdb.connect(str(other.store.duckdb_path), read_only=True)
    other_ids = {r[0] for r in again.execute("SELECT response_id FROM responses").fetchall()}
    again.close()
    assert other_ids & pseudonyms == set() and "R20260701-0000" in other_ids  # another key, other names


def test_without_a_key_a_personal_id_stops_the_run(
    predictor: CuePredictor, taxonomy: Taxonomy, pii_export: Path, tmp_path: Path
) -> None:
    settings = pii_settings(tmp_path / "voc.duckdb", key=None)
    with pytest.raises(ConfigError, match=PSEUDONYM_KEY_ENV) as raised:
        run_job(pii_export, settings, predictor, taxonomy)
    assert "\n" not in str(raised.value)  # the CLI prints it as one "error:" line
    db = settings.store.duckdb_path
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    assert con.execute("SELECT count(*) FROM responses").fetchone() == (0,)
    con.close()
    assert leaks(db, PII + NAMES) == []  # not even the failed run's error message names the id


def test_ordinary_ids_need_no_key_and_segments_are_masked(
    predictor: CuePredictor, taxonomy: Taxonomy, write_export: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [["R1", "2026/07/01 09:00", "3", "担当:03-1234-5678", "hanako.sato@example.co.jp", "", "遅い"]]
    settings = make_settings(tmp_path / "voc.duckdb")
    run_job(write_export("e.csv", csv_text(rows)), settings, predictor, taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    segments = con.execute("SELECT segment_value FROM response_segments ORDER BY segment_name").fetchall()
    assert segments == [("担当:[PHONE]",), ("[EMAIL]",)]
    assert con.execute("SELECT response_id FROM responses").fetchall() == [("R1",)]


def test_payload_of_an_unreadable_record_is_masked_without_personal_columns() -> None:
    settings = make_settings(Path("unused.duckdb")).source
    record = SourceRecord(
        3, None, raw="R1,2026/07/01,5,090-2468-1357,x", problem=(ReasonCode.MALFORMED_RECORD, "bad")
    )
    payload = json.loads(RowValidator(settings).validate(record).raw_payload)  # type: ignore[union-attr]
    assert payload == {"_raw": "R1,2026/07/01,5,[PHONE],x"}


def test_the_key_is_read_from_the_environment_and_never_dumped() -> None:
    config = REPO / "configs" / "pipeline.yaml"
    plain = load_settings(config, environ={})
    keyed = load_settings(config, environ={PSEUDONYM_KEY_ENV: KEY})
    rekeyed = load_settings(config, environ={PSEUDONYM_KEY_ENV: KEY[::-1]})
    assert keyed.source.pseudonym_key is not None and keyed.source.pseudonym_key.get_secret_value() == KEY
    for shown in (keyed.model_dump_json(), repr(keyed), str(keyed.model_dump())):
        assert KEY not in shown
    assert len({plain.config_hash(), keyed.config_hash(), rekeyed.config_hash()}) == 3
    assert keyed.config_hash() == load_settings(config, environ={PSEUDONYM_KEY_ENV: KEY}).config_hash()
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_settings(config, environ={PSEUDONYM_KEY_ENV: "short"})


def test_a_personal_column_cannot_also_be_mapped(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("source:\n  segments: {store: 店舗名}\n  personal_columns: [店舗名]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"personal_columns.*店舗名"):
        load_settings(path, environ={})


def test_pseudonyms_depend_on_the_key_only(tmp_path: Path) -> None:
    ids, same, other = ResponseIds(KEY), ResponseIds(KEY), ResponseIds(KEY + "x")
    email = "hanako.sato@example.co.jp"
    assert ids.stored(email, 2) == same.stored(email, 9) != other.stored(email, 2)
    assert ids.stored("R20260701-0001", 2) == "R20260701-0001"
    with pytest.raises(ConfigError, match=r"row 7 holds personal data \(EMAIL\)") as raised:
        ResponseIds(None).stored(email, 7)
    assert email not in str(raised.value)


@pytest.mark.parametrize(
    ("response_id", "personal"),
    [("11812345678", False), ("1234567", False), ("09012345678", True), ("4111111111111111", True),
     ("160-0022", True), ("member@example.com", True)],
)  # fmt: skip
def test_a_survey_tools_respondent_number_is_not_personal(response_id: str, personal: bool) -> None:
    """SurveyMonkey's respondent ids are bare 11-digit numbers: they need no key. Numbers shaped
    like a phone, card or postcode do."""
    without_key = ResponseIds(None)
    if personal:
        with pytest.raises(ConfigError, match=PSEUDONYM_KEY_ENV):
            without_key.stored(response_id, 2)
        assert ResponseIds("k" * 32).stored(response_id, 2).startswith(PSEUDONYM_PREFIX)
    else:
        assert without_key.stored(response_id, 2) == response_id
