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

from appliance.audit import AUDIT_SCHEMA
from appliance.errors import DataDirError
from appliance.settings import StoreSettings

SCHEMA_VERSION = 6

# Catalogs of versions 1-2 were written by development builds that kept OCR text and names in
# plaintext; they cannot be upgraded in place (see :func:`migrate`).
_FIRST_SUPPORTED = 3
# ``_SCHEMA`` (+ the audit schema) is version 3 exactly. A fresh catalog is created at that
# version and brought up by the same ``_MIGRATIONS`` as an existing one, so every table is defined
# once. ``_MIGRATIONS[n]`` upgrades version n to n + 1 inside one transaction.
_BASE_SCHEMA_VERSION = 3
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 3 -> 4: staff accounts for the counter web UI (appliance.accounts). Only hashes of secrets
    # are stored: Argon2id password hashes, SHA-256 of session and API tokens.
    3: (
        """CREATE TABLE users (
            id             INTEGER PRIMARY KEY,
            username       TEXT NOT NULL UNIQUE,
            display_name   TEXT NOT NULL,
            role           TEXT NOT NULL CHECK (role IN ('clerk','supervisor','technician','admin')),
            pw_hash        TEXT NOT NULL,      -- Argon2id PHC string
            disabled       INTEGER NOT NULL DEFAULT 0,
            created_at     REAL NOT NULL,
            pw_changed_at  REAL NOT NULL
        )""",
        """CREATE TABLE sessions (
            id_hash     TEXT PRIMARY KEY,      -- SHA-256 hex of the session token (never the token)
            user_id     INTEGER NOT NULL REFERENCES users(id),
            csrf        TEXT NOT NULL,
            created_at  REAL NOT NULL,
            last_seen   REAL NOT NULL,
            client      TEXT,
            user_agent  TEXT
        )""",
        "CREATE INDEX sessions_user ON sessions(user_id)",
        """CREATE TABLE api_tokens (
            id          TEXT PRIMARY KEY,
            token_hash  TEXT NOT NULL UNIQUE,  -- SHA-256 hex of the secret (never the secret)
            user_id     INTEGER NOT NULL REFERENCES users(id),
            name        TEXT NOT NULL,
            scopes      TEXT NOT NULL,         -- JSON list of permissions
            created_at  REAL NOT NULL,
            expires_at  REAL,
            last_used   REAL,
            revoked_at  REAL
        )""",
        "CREATE INDEX api_tokens_user ON api_tokens(user_id)",
        """CREATE TABLE login_failures (
            id        INTEGER PRIMARY KEY,
            username  TEXT,                    -- NULL once a successful login cleared the account
            client    TEXT,
            at        REAL NOT NULL
        )""",
        "CREATE INDEX login_failures_user ON login_failures(username, at)",
        "CREATE INDEX login_failures_client ON login_failures(client, at)",
    ),
    # 4 -> 5: intake previews (thumbnail made before OCR, encrypted blob) and quarantine decisions.
    4: (
        """CREATE TABLE previews (
            job_id      TEXT PRIMARY KEY REFERENCES jobs(id),
            thumb_blob  TEXT NOT NULL,         -- sha256 of the encrypted thumbnail blob
            pages       INTEGER NOT NULL,      -- pages previewed (at most the first four)
            flags       TEXT NOT NULL,         -- JSON: quality flags per previewed page
            rescan      INTEGER NOT NULL,
            at          REAL NOT NULL
        )""",
        "ALTER TABLE quarantine ADD COLUMN decision TEXT",  # 'retry' | 'dismiss'
        "ALTER TABLE quarantine ADD COLUMN decided_by TEXT",
        "ALTER TABLE quarantine ADD COLUMN decided_at REAL",
    ),
    # 5 -> 6: transfer (移交) to the central archive (sync/transfer.py, docs/transfer.md). The
    # outboxes are written in the same transaction as the record (blobs) and its confirmation
    # (package), so nothing is ever lost between "stored" and "queued for the archive". Existing
    # records are queued by the migration itself: the blobs of every stored record, the packages
    # of the confirmed ones. Sizes of backfilled blobs are unknown here (NULL).
    5: (
        """CREATE TABLE blob_outbox (
            ref              TEXT PRIMARY KEY,  -- sha256 of the ciphertext = object key suffix
            record_id        TEXT NOT NULL,
            size             INTEGER,           -- ciphertext bytes (NULL: backfilled)
            enqueued_at      REAL NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL NOT NULL DEFAULT 0,
            last_error       TEXT
        )""",
        "CREATE INDEX blob_outbox_due ON blob_outbox(enqueued_at, record_id)",
        "CREATE INDEX blob_outbox_record ON blob_outbox(record_id)",
        """CREATE TABLE transfer_outbox (
            record_id        TEXT PRIMARY KEY REFERENCES records(id),
            version          INTEGER NOT NULL,  -- records.meta_version to send
            state            TEXT NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending','rejected','blocked')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL NOT NULL DEFAULT 0,
            last_error       TEXT,
            failed_items     TEXT,              -- JSON: the receipt's failed items (state 'rejected')
            enqueued_at      REAL NOT NULL,
            updated_at       REAL NOT NULL
        )""",
        "CREATE INDEX transfer_outbox_due ON transfer_outbox(state, enqueued_at)",
        """CREATE TABLE receipts (
            record_id        TEXT NOT NULL REFERENCES records(id),
            version          INTEGER NOT NULL,
            idempotency_key  TEXT NOT NULL UNIQUE,
            receipt          TEXT NOT NULL,     -- JSON: the signed receipt as received
            received_at      REAL NOT NULL
        )""",
        "CREATE INDEX receipts_record ON receipts(record_id, version)",
        "ALTER TABLE records ADD COLUMN transferred_at REAL",
        """INSERT OR IGNORE INTO blob_outbox(ref, record_id, size, enqueued_at)
            SELECT master_blob, id, NULL, created_at FROM records WHERE status != 'shredded'""",
        """INSERT OR IGNORE INTO blob_outbox(ref, record_id, size, enqueued_at)
            SELECT b.ref, r.id, NULL, r.created_at FROM records r JOIN (
                SELECT record_id, cleaned_blob AS ref FROM pages
                UNION ALL SELECT record_id, bilevel_blob FROM pages
                UNION ALL SELECT record_id, thumb_blob FROM pages
            ) b ON b.record_id = r.id WHERE r.status != 'shredded'""",
        """INSERT OR IGNORE INTO transfer_outbox(record_id, version, state, enqueued_at, updated_at)
            SELECT id, meta_version, 'pending', COALESCE(confirmed_at, created_at),
                   COALESCE(confirmed_at, created_at)
            FROM records WHERE status = 'confirmed'""",
    ),
}

# Nothing personal is stored in plaintext: names, OCR text and metadata are AES-256-GCM
# ciphertext (``*_ct`` columns, see appliance.envelope) and page images are encrypted blobs.
# Plaintext is operational only: ids, times, states, counts, sizes, geometry, hashes of
# ciphertext and keyed (HMAC) fingerprints.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One data key (DEK) per file handed to the box; the record made from it uses the same key.
-- 'audit' is the key of sealed audit details.
CREATE TABLE IF NOT EXISTS deks (
    id             TEXT PRIMARY KEY,
    kek_id         TEXT NOT NULL,          -- which hall key wraps it
    wrapped        BLOB,                   -- NULL once shredded
    sealed         BLOB,                   -- HPKE to the archive key; NULL once shredded
    archive_key_id TEXT,
    created_at     REAL NOT NULL,
    shredded_at    REAL
);
CREATE INDEX IF NOT EXISTS deks_kek ON deks(kek_id);

-- The durable job queue. One row per file handed to the box (drop folder or `hall ingest`).
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    counter       TEXT NOT NULL,
    name_ct       BLOB NOT NULL,          -- encrypted {"display": ..., "raw": hex of the name bytes}
    source        TEXT NOT NULL,          -- 'drop' | 'cli' | 'recovered'
    fingerprint   TEXT,                   -- keyed HMAC-SHA256 of the bytes; NULL for non-files
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
CREATE INDEX IF NOT EXISTS jobs_fp ON jobs(fingerprint);

CREATE TABLE IF NOT EXISTS records (
    id            TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL UNIQUE REFERENCES jobs(id),
    dek_id        TEXT NOT NULL REFERENCES deks(id),
    fingerprint   TEXT NOT NULL UNIQUE,   -- keyed hash of the master bytes: one record per file
    counter       TEXT NOT NULL,
    format        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    page_count    INTEGER NOT NULL,
    master_blob   TEXT NOT NULL,          -- sha256 of the master ciphertext
    created_at    REAL NOT NULL,
    status        TEXT NOT NULL DEFAULT 'draft' CHECK (status IN
                      ('draft','confirmed','transferred','shredded')),
    meta_ct       BLOB,                   -- encrypted DA/T 46 metadata (JSON)
    meta_version  INTEGER NOT NULL DEFAULT 0,
    suggest_ct    BLOB,                   -- encrypted OCR suggestions (JSON)
    code_token    TEXT UNIQUE,            -- blind index of the archival code (档号)
    code_prefix   TEXT,                   -- numbering sequence the 档号 came from
    code_item     INTEGER,                -- its item number in that sequence
    updated_at    REAL,
    confirmed_at  REAL,
    confirmed_by  TEXT,
    shredded_at   REAL,
    UNIQUE (code_prefix, code_item)
);
CREATE INDEX IF NOT EXISTS records_status ON records(status, created_at);

-- Gap-free 档号 item numbers: one row per (全宗-门类·年度-保管期限-机构) sequence.
CREATE TABLE IF NOT EXISTS code_sequences (
    prefix     TEXT PRIMARY KEY,
    last_item  INTEGER NOT NULL
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
    bilevel_blob  TEXT NOT NULL,
    clean_report  TEXT NOT NULL,          -- JSON: what each clean-up step did (geometry, metrics)
    orientation   INTEGER NOT NULL DEFAULT 0,
    ocr_engine    TEXT NOT NULL,
    ocr_ms        REAL NOT NULL,
    line_count    INTEGER NOT NULL,
    mean_conf     REAL,
    ocr_ct        BLOB NOT NULL,          -- encrypted {"text", "lines": [{text, box, confidence}]}
    PRIMARY KEY (record_id, idx)
);

-- Exact-match blind indexes (ID number, phone, applicant name, 档号): HMAC tokens only.
CREATE TABLE IF NOT EXISTS exact_index (
    kind       TEXT NOT NULL,
    token      TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (kind, token, record_id)
);
CREATE INDEX IF NOT EXISTS exact_index_record ON exact_index(record_id);

-- Full-text blind index: contentless FTS5 over HMAC tokens; search_docs maps its rowids.
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(seq, uni, whole, content='');
CREATE TABLE IF NOT EXISTS search_docs (
    rowid      INTEGER PRIMARY KEY,
    record_id  TEXT NOT NULL,
    part       TEXT NOT NULL,             -- 'meta' or 'page:<idx>'
    UNIQUE (record_id, part)
);

-- PREMIS-style processing history. ``detail`` is operational JSON (never personal data).
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL,
    record_id  TEXT,
    page_idx   INTEGER,
    at         REAL NOT NULL,
    type       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    agent      TEXT,
    detail     TEXT NOT NULL             -- JSON
);
CREATE INDEX IF NOT EXISTS events_record ON events(record_id);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);

CREATE TABLE IF NOT EXISTS quarantine (
    job_id       TEXT PRIMARY KEY REFERENCES jobs(id),
    reason_code  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    path         TEXT,                   -- where the (encrypted) bytes are kept; NULL if nothing
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
    # Deleted content (shredded keys, replaced metadata) is overwritten, not left in free pages.
    conn.execute("PRAGMA secure_delete=ON")
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
        conn.executescript(_SCHEMA + AUDIT_SCHEMA)
    with transaction(conn):
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            # Fresh (or created but never stamped): _SCHEMA is the base version; migrate up below.
            version = _BASE_SCHEMA_VERSION
            conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
        else:
            version = int(row[0])
        if version < _FIRST_SUPPORTED:
            raise DataDirError(
                f"catalog schema version {version} comes from a development build that stored text "
                "unencrypted; it cannot be upgraded. Move that data dir away and run `hall init`"
            )
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
