"""A small portable database layer under the catalog: SQLite (``sqlite3``, WAL, synchronous=FULL)
or PostgreSQL (psycopg 3). SQL is written once with ``?`` placeholders (translated to ``%s`` for
PostgreSQL; so the SQL must not contain a literal ``?`` or ``%``). Rows come back as dicts.

Each thread gets its own connection (the FastAPI thread pool calls in from many threads);
:meth:`Database.close` closes them all. A write transaction is ``BEGIN IMMEDIATE`` on SQLite (one
writer at a time) and READ COMMITTED on PostgreSQL, where concurrent duplicates are resolved by
UNIQUE constraints: both backends raise :class:`~sync.archive.errors.CatalogConflict` for them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from sync.archive.errors import CatalogConflict, CatalogError

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]
Params = Sequence[Any]


class Tx:
    """One open transaction (or an autocommit connection for single reads)."""

    def __init__(self, dialect: Dialect, conn: sqlite3.Connection | psycopg.Connection[Row]) -> None:
        self.dialect = dialect
        self._conn = conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with _translated_errors():
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return max(int(cur.rowcount), 0)

    def one(self, sql: str, params: Params = ()) -> Row | None:
        with _translated_errors():
            cur = self._conn.execute(self._sql(sql), tuple(params))
            row = cur.fetchone()
        return _as_dict(row)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        with _translated_errors():
            cur = self._conn.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
        return [d for d in map(_as_dict, rows) if d is not None]

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))


def _as_dict(row: Any) -> Row | None:
    if row is None:
        return None
    if isinstance(row, sqlite3.Row):
        return {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row is not a mapping
    return dict(row)


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation) as e:
        raise CatalogConflict(f"the archive catalog refused a duplicate row: {e}") from e
    except psycopg.OperationalError as e:
        raise CatalogError(f"the PostgreSQL catalog is unavailable: {e}") from e
    except sqlite3.OperationalError as e:
        raise CatalogError(f"the SQLite catalog failed: {e}") from e


class Database:
    def __init__(self, dialect: Dialect, target: str) -> None:
        """``target``: the SQLite file path, or the PostgreSQL DSN."""
        self.dialect = dialect
        self._target = target
        self._local = threading.local()
        self._all: list[sqlite3.Connection | psycopg.Connection[Row]] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def sqlite(cls, path: Path) -> Database:
        return cls("sqlite", str(path))

    @classmethod
    def postgresql(cls, dsn: str) -> Database:
        return cls("postgresql", dsn)

    def describe(self) -> str:
        return f"sqlite {self._target}" if self.dialect == "sqlite" else "postgresql (catalog_dsn)"

    def _connect(self) -> sqlite3.Connection | psycopg.Connection[Row]:
        conn: sqlite3.Connection | psycopg.Connection[Row] | None = getattr(self._local, "conn", None)
        if isinstance(conn, psycopg.Connection) and (conn.closed or conn.broken):
            conn = None  # the server restarted or the link dropped: connect again
        if conn is not None:
            return conn
        if self._closed:
            raise CatalogError("the archive catalog is closed")
        if self.dialect == "sqlite":
            conn = _open_sqlite(Path(self._target))
        else:
            try:
                conn = psycopg.connect(
                    self._target, autocommit=True, row_factory=dict_row, connect_timeout=10
                )
            except psycopg.Error as e:
                raise CatalogError(f"cannot connect to the PostgreSQL catalog: {e}") from e
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back on any exception."""
        conn = self._connect()
        if isinstance(conn, sqlite3.Connection):
            with _translated_errors():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx("sqlite", conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            with _translated_errors():
                conn.execute("COMMIT")
        else:
            with _translated_errors(), conn.transaction():
                yield Tx("postgresql", conn)

    def read(self) -> Tx:
        """Autocommit access for reads (each statement sees the latest committed state)."""
        return Tx(self.dialect, self._connect())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()


def _open_sqlite(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    except sqlite3.Error as e:
        raise CatalogError(f"cannot open the SQLite catalog {path}: {e}") from e
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
