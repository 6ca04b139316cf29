"""The result store: tables created from the documented schema (`pipeline.schema`), in a DuckDB
file (the default) or a PostgreSQL database (``store.url``), with the same behaviour in both.

A run publishes inside one transaction (`pipeline.publish`): it deletes the partitions
(response dates) it covers, inserts its staged rows chunk by chunk and commits once, so readers
never see a half-written day and re-running the same input leaves the tables identical. Writers
are serialised. While one process has a DuckDB file open for writing, no other can open it, not
even to read: a run holds it only while it uses it (`Store.release_between_uses`: a look-up in
the inference cache, its publish), a reader for its one command, and whoever finds it held waits
for up to ``store.lock_timeout`` (`pipeline.store_lock`). A reader therefore sees the tables as the last
publish left them, and they cannot change under it while it reads. In PostgreSQL a write
transaction takes an advisory lock first (waiting the same way), so two runs of the same dates
queue instead of interleaving their deletes and inserts, while their reads and classification
go on in parallel; opening the store takes it too, to check the schema, and then each query
sees the last committed publish.

SQL passed to `Store.query` is the subset both databases understand: ``?`` placeholders,
``= ANY(?)`` for a list, ``GROUP BY 1, 2``, ``count(*) FILTER (WHERE …)``.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from pipeline.errors import StoreError
from pipeline.schema import (
    TableSpec,
    ViewSpec,
    schema_version,
    table_specs,
    to_arrow,
    view_specs,
)
from pipeline.settings import DUCKDB_MEMORY_LIMIT, STORE_LOCK_TIMEOUT
from pipeline.store_lock import LockWait

if TYPE_CHECKING:
    from pipeline.settings import StoreSettings

_FETCH_ROWS = 100_000  # rows turned into Python objects at a time by PostgresStore.query_integers


class Store(ABC):
    """Result tables in one database; subclasses supply the connection and bulk insert."""

    dialect: str
    location: str  # for messages and the run summary; never contains a password

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...

    def release_between_uses(self) -> None:  # noqa: B027 - only a DuckDB file needs it
        """From now on hold the store only while a query or transaction runs, so that other runs
        and readers get in between: a DuckDB file is closed after each use and opened again
        (waiting for it) at the next. A server lets other connections in anyway."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run portable SQL with ``?`` placeholders and return every row."""

    @abstractmethod
    def query_integers(self, sql: str, params: Sequence[Any] = ()) -> list[NDArray[np.int64]]:
        """Run SQL whose columns are all integers; return one array per column, without making a
        Python object per row (for results of millions of rows)."""

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.insert_arrow(table, to_arrow(table_specs()[table], rows))

    @abstractmethod
    def insert_arrow(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (with the table's documented columns) to ``table``."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; writers are serialised."""
        yield

    def column_types(self, table: str) -> list[tuple[str, str]]:
        """(column, type) as the database reports them, in order (in the store's own schema)."""
        return [
            (name, kind)
            for name, kind in self.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
                [table],
            )
        ]

    def _ensure_schema(self) -> None:
        for spec in table_specs().values():
            self.query(spec.create_sql(self.dialect))
            found = self.column_types(spec.name)
            expected = spec.reported_columns(self.dialect)
            if found != expected and self._can_add_columns(spec, found):
                for column in spec.columns[len(found) :]:
                    added = spec.column_sql(column, self.dialect)
                    self.query(f'ALTER TABLE "{spec.name}" ADD COLUMN {added}')
                found = self.column_types(spec.name)
            if found != expected:
                raise StoreError(
                    f"table {spec.name} in {self.location} does not match schema version "
                    f"{schema_version()} (it was written by another version); use a new database "
                    "file or schema and re-run or backfill into it"
                )
            self._index_table(spec)
        for view in view_specs().values():
            self._create_view(view)

    def _can_add_columns(self, spec: TableSpec, found: list[tuple[str, str]]) -> bool:
        """A table from an older schema version that lacks only trailing nullable columns is
        brought up to date in place; anything else needs a new database."""
        expected = spec.reported_columns(self.dialect)
        return (
            0 < len(found) < len(expected)
            and expected[: len(found)] == found
            and all(c.nullable for c in spec.columns[len(found) :])
        )

    def _create_view(self, view: ViewSpec) -> None:
        self.query(f'CREATE OR REPLACE VIEW "{view.name}" AS {view.sql}')

    def _index_table(self, spec: TableSpec) -> None:  # noqa: B027 - only PostgreSQL needs one
        """DuckDB needs no index (its zone maps serve partition deletes and key lookups);
        PostgreSQL does."""

    def delete_partitions(self, table: str, values: Iterable[date] | Iterable[str]) -> None:
        spec = table_specs()[table]
        if spec.partition is None:
            raise ValueError(f"table {table} is not partitioned")
        chosen = sorted(set(values))  # type: ignore[type-var]
        if chosen:
            self.query(f'DELETE FROM "{table}" WHERE "{spec.partition}" = ANY(?)', [chosen])

    def delete_where(self, table: str, condition: str, params: Sequence[Any]) -> None:
        self.query(f'DELETE FROM "{table}" WHERE {condition}', params)

    def upsert_by_key(self, table: str, row: dict[str, Any]) -> None:
        spec = table_specs()[table]
        where = " AND ".join(f'"{k}" = ?' for k in spec.key)
        self.query(f'DELETE FROM "{table}" WHERE {where}', [row[k] for k in spec.key])
        self.insert(table, [row])


class DuckDBStore(Store):
    """Result tables in one DuckDB file."""

    dialect = "duckdb"

    def __init__(
        self, path: Path, memory_limit: str = DUCKDB_MEMORY_LIMIT, lock_timeout: float = STORE_LOCK_TIMEOUT
    ) -> None:
        self.path = path
        self.location = str(path.resolve())
        self._memory_limit, self._lock_timeout = memory_limit, lock_timeout
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closed = False
        self._between_uses = False  # let the file go whenever no query or transaction runs
        self._uses = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure_schema()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, opened again (waiting for the file) when it was let go between uses."""
        if self._con is None:
            if self._closed:
                raise StoreError(f"the store {self.location} is closed")
            self._con = self._connect()
        return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        wait = LockWait(self.location, self._lock_timeout)
        while True:
            try:
                # A run's rows stay uncommitted until it ends; past the limit DuckDB writes them and
                # its query buffers to disk instead of growing (its own default is 80% of RAM).
                return duckdb.connect(str(self.path), config={"memory_limit": self._memory_limit})
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise StoreError(f"cannot open {self.path}: {exc}") from exc
                wait.pause(exc)  # another process has the file open
            except duckdb.Error as exc:
                message = f"{self.path} is not a DuckDB database this version can open: {exc}"
                raise StoreError(message) from exc

    def release_between_uses(self) -> None:
        self._between_uses = True
        self._release_if_idle()

    @contextmanager
    def _in_use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._uses += 1
        try:
            yield self.con
        finally:
            self._uses -= 1
            self._release_if_idle()

    def _release_if_idle(self) -> None:
        if self._between_uses and not self._uses and self._con is not None:
            self._con.close()  # closing the last connection in the process drops the file lock
            self._con = None

    def close(self) -> None:
        self._closed = True
        if self._con is not None:
            self._con.close()
            self._con = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._in_use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def insert_arrow(self, table: str, rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        cols = ", ".join(f'"{c}"' for c in table_specs()[table].column_names)
        # DuckDB reads the relation by its variable name (a replacement scan). A register()ed
        # table would stay alive until the run's transaction commits: every chunk's rows held in
        # memory at once. A table of the same name in the file would win over the variable, so
        # the count of inserted rows is checked.
        with self._in_use() as con:
            _voc_incoming_rows = con.from_arrow(rows)
            result = con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _voc_incoming_rows')
            inserted = result.fetchone()
            del _voc_incoming_rows, result  # nothing may keep the connection (and the file) open
        if inserted is None or inserted[0] != rows.num_rows:
            raise StoreError(
                f"inserting into {table} wrote {inserted[0] if inserted else 0} of {rows.num_rows} rows; "
                "is there a table or view named _voc_incoming_rows in the file?"
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._in_use() as con:
            return con.execute(sql, list(params)).fetchall()

    def query_integers(self, sql: str, params: Sequence[Any] = ()) -> list[NDArray[np.int64]]:
        with self._in_use() as con:
            columns = con.execute(sql, list(params)).fetchnumpy()
        return [np.asarray(values, dtype=np.int64) for values in columns.values()]


class PostgresStore(Store):
    """Result tables in a PostgreSQL schema, for sharing with BI tools and several writers.

    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://user@host:5432/db``); the connection
    itself is psycopg 3, for COPY-speed inserts."""

    dialect = "postgresql"

    def __init__(self, url: str, schema: str = "public", lock_timeout: float = STORE_LOCK_TIMEOUT) -> None:
        import psycopg
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"store.url {url!r} is not a SQLAlchemy URL: {exc}") from exc
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise StoreError(
                f"store.url uses {parsed.drivername!r}; use postgresql+psycopg://user@host:port/database"
            )
        self.location = parsed.render_as_string(hide_password=True) + f" (schema {schema})"
        self.schema = schema
        self._lock_timeout = lock_timeout
        # one advisory lock per schema: writers to the same tables queue, other schemas don't wait
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"voc:{schema}".encode()).digest()[:8], "big", signed=True
        )
        # query parameters of the URL (sslmode=require, …) are libpq connection options
        options: dict[str, Any] = {k: v for k, v in parsed.query.items() if isinstance(v, str)}
        try:
            self.con = psycopg.connect(
                host=parsed.host, port=parsed.port, dbname=parsed.database, user=parsed.username,
                password=parsed.password, autocommit=True, **options,
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to {self.location}: {str(exc).strip()}") from exc
        with self.con.transaction():
            self._take_write_lock()
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self.con.execute(f'SET search_path TO "{schema}"')
            self._ensure_schema()

    def close(self) -> None:
        self.con.close()

    # Opening a store must not wait for a running writer (a report during a backfill): CREATE
    # INDEX and CREATE OR REPLACE VIEW lock tables even when nothing changes, so they run only
    # when the catalog says they are missing or out of date.
    def _index_table(self, spec: TableSpec) -> None:
        """Partitioned tables by their partition (deletes); the others by their key (lookups)."""
        columns = (spec.partition,) if spec.partition else spec.key
        name = f"{spec.name}_by_{'_'.join(columns)}"[:63]
        if not self.query(
            "SELECT 1 FROM pg_indexes WHERE schemaname = ? AND indexname = ?", [self.schema, name]
        ):
            quoted = ", ".join(f'"{c}"' for c in columns)
            self.query(f'CREATE INDEX "{name}" ON "{spec.name}" ({quoted})')

    def _create_view(self, view: ViewSpec) -> None:
        marker = "voc:" + hashlib.sha256(view.sql.encode()).hexdigest()[:16]
        found = self.query(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ? AND c.relkind = 'v'",
            [self.schema, view.name],
        )
        if found and found[0][0] == marker:
            return
        if found:
            self.query(f'DROP VIEW "{view.name}" CASCADE')  # its columns may have changed
        self.query(f'CREATE VIEW "{view.name}" AS {view.sql}')
        self.query(f"COMMENT ON VIEW \"{view.name}\" IS '{marker}'")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            self._take_write_lock()
            yield

    def _take_write_lock(self) -> None:
        """Writers to one schema take turns, each waiting for up to store.lock_timeout."""
        wait = LockWait(self.location, self._lock_timeout, "another run publishing to this schema")
        while not self.query("SELECT pg_try_advisory_xact_lock(?)", [self._lock_key])[0][0]:
            wait.pause()

    def insert_arrow(self, table: str, rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        names = table_specs()[table].column_names
        cols = ", ".join(f'"{c}"' for c in names)
        with self.con.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
            for batch in rows.select(names).to_batches(max_chunksize=10_000):
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    copy.write_row(row)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
            return cur.fetchall() if cur.description else []

    def query_integers(self, sql: str, params: Sequence[Any] = ()) -> list[NDArray[np.int64]]:
        with self.con.cursor() as cur:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))
            width = len(cur.description or ())
            parts: list[NDArray[np.int64]] = []
            while rows := cur.fetchmany(_FETCH_ROWS):  # Python rows for one part at a time
                parts.append(np.array(rows, dtype=np.int64).reshape(len(rows), width))
        table = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.int64)
        return [table[:, k] for k in range(width)]


def open_store(settings: StoreSettings) -> Store:
    """The store the settings name: PostgreSQL when ``store.url`` is set, else the DuckDB file."""
    if settings.url:
        return PostgresStore(settings.url, settings.postgres_schema, settings.lock_timeout)
    return DuckDBStore(settings.duckdb_path, settings.duckdb_memory_limit, settings.lock_timeout)


def store_exists(settings: StoreSettings) -> bool:
    """False only for a DuckDB file that was never written (a server is checked on connect)."""
    return bool(settings.url) or settings.duckdb_path.exists()
