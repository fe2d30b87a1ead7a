"""The catalog database: one SQLite file (WAL) holding the job queue, records, pages, OCR lines,
processing events and quarantine entries. Page images live in the blob store beside it, so the
catalog stays small enough for continuous replication.

Every connection is opened through :func:`connect`, which sets the durability pragmas
(``journal_mode=WAL``, ``synchronous=FULL`` by default, ``busy_timeout``, ``foreign_keys``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from appliance.errors import DataDirError
from appliance.settings import StoreSettings

SCHEMA_VERSION = 2

# Upgrades from each version to the next, applied in order inside one transaction.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # v2: the bilevel (Sauvola + despeckle) archive/access copy of each page.
    1: ("ALTER TABLE pages ADD COLUMN bilevel_blob TEXT",),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- The durable job queue. One row per file handed to the box (drop folder or `hall ingest`).
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    counter       TEXT NOT NULL,
    original_name TEXT NOT NULL,          -- display-safe name (control/bidi chars escaped)
    name_bytes    TEXT NOT NULL,          -- hex of the raw name bytes, for fidelity
    source        TEXT NOT NULL,          -- 'drop' | 'cli' | 'recovered'
    sha256        TEXT,                   -- of the original bytes; NULL for non-files (FIFO, link)
    size          INTEGER,
    spool_path    TEXT,
    state         TEXT NOT NULL CHECK (state IN
                      ('received','processing','stored','quarantined','duplicate')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    reason_code   TEXT,
    record_id     TEXT,
    duplicate_of  TEXT,
    landed_at     REAL NOT NULL,          -- file mtime when taken (when the scanner finished it)
    received_at   REAL NOT NULL,          -- committed into the queue
    started_at    REAL,
    finished_at   REAL,
    worker        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, received_at);
CREATE INDEX IF NOT EXISTS jobs_sha ON jobs(sha256);

CREATE TABLE IF NOT EXISTS records (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    sha256        TEXT NOT NULL UNIQUE,   -- of the master bytes: one record per distinct file
    counter       TEXT NOT NULL,
    original_name TEXT NOT NULL,
    format        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    page_count    INTEGER NOT NULL,
    master_blob   TEXT NOT NULL,
    created_at    REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS pages (
    record_id     TEXT NOT NULL REFERENCES records(id),
    idx           INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    channels      INTEGER NOT NULL,
    dpi_x         REAL,
    dpi_y         REAL,
    source        TEXT NOT NULL,
    cleaned_blob  TEXT NOT NULL,
    thumb_blob    TEXT NOT NULL,
    bilevel_blob  TEXT,                   -- NULL for pages stored before v2
    clean_report  TEXT NOT NULL,          -- JSON: what each clean-up step did
    orientation   INTEGER NOT NULL DEFAULT 0,
    ocr_engine    TEXT NOT NULL,
    ocr_ms        REAL NOT NULL,
    text          TEXT NOT NULL,
    PRIMARY KEY (record_id, idx)
);

CREATE TABLE IF NOT EXISTS ocr_lines (
    record_id   TEXT NOT NULL,
    page_idx    INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    text        TEXT NOT NULL,
    box         TEXT NOT NULL,            -- JSON [[x,y] x 4] in cleaned-page pixels
    confidence  REAL NOT NULL,
    PRIMARY KEY (record_id, page_idx, idx),
    FOREIGN KEY (record_id, page_idx) REFERENCES pages(record_id, idx)
);

-- PREMIS-style processing history.
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL,
    record_id  TEXT,
    page_idx   INTEGER,
    at         REAL NOT NULL,
    type       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL             -- JSON
);
CREATE INDEX IF NOT EXISTS events_record ON events(record_id);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);

CREATE TABLE IF NOT EXISTS quarantine (
    job_id       TEXT PRIMARY KEY REFERENCES jobs(id),
    reason_code  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    path         TEXT,                   -- where the bytes are kept (NULL when nothing to keep)
    at           REAL NOT NULL
);
"""


def connect(path: Path, settings: StoreSettings, *, handed_over: bool = False) -> sqlite3.Connection:
    """Open the catalog with the durability pragmas. ``isolation_level=None``: transactions are
    explicit (``BEGIN IMMEDIATE`` via :func:`transaction`). ``handed_over=True`` allows the
    connection to be used by another thread than its creator (never by two at once)."""
    try:
        conn = sqlite3.connect(
            path,
            timeout=settings.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=not handed_over,
        )
    except sqlite3.OperationalError as e:
        raise DataDirError(
            f"cannot open catalog {path}: {e}; check the data dir exists and is writable"
        ) from e
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={settings.busy_timeout_ms}")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise DataDirError(
            f"catalog {path} cannot use WAL (got {mode}); the data dir must be on a local disk"
        )
    conn.execute(f"PRAGMA synchronous={settings.synchronous}")
    conn.execute(f"PRAGMA wal_autocheckpoint={settings.wal_autocheckpoint}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class transaction:  # noqa: N801 - used as a context manager, reads like a keyword
    """``with transaction(conn): ...`` runs the block in ``BEGIN IMMEDIATE`` … ``COMMIT``
    (``ROLLBACK`` on error). IMMEDIATE takes the write lock up front so two workers never
    deadlock upgrading read locks."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema (idempotent)."""
    fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None
    if fresh:
        conn.executescript(_SCHEMA)
    with transaction(conn):
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise DataDirError(
                f"catalog schema version {version} is newer than this software ({SCHEMA_VERSION}); "
                "install the newer hall-appliance release"
            )
        while version < SCHEMA_VERSION:
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            version += 1
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))


def as_utils(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """A sqlite-utils view of the same connection, for queries and reporting."""
    return sqlite_utils.Database(conn)
