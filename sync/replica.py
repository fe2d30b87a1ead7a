"""Restore the catalog from its Litestream replica, and verify the replica row by row.

``restore`` always runs under a timeout (Litestream waits minutes on an unreachable store).
``verify`` restores into a scratch file and compares every table with the live catalog — row
count and a SHA-256 over each row's values in primary-key order — because a replica can pass
``PRAGMA integrity_check`` and still miss rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import struct
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.errors import HallError
from appliance.settings import Settings
from sync.litestream import db_path, describe_target, run_bounded, sync_wait, write_config

# Litestream's own bookkeeping tables in the live catalog (absent from, or different in, a restore).
_SKIPPED_PREFIXES = ("sqlite_", "_litestream")


class ReplicaError(HallError):
    """The replica could not be restored (unreachable, empty, timed out)."""

    code = "replica_unavailable"


@dataclass(frozen=True)
class TableDigest:
    rows: int
    sha256: str


@dataclass(frozen=True)
class TableCheck:
    table: str
    ok: bool
    live: TableDigest | None
    replica: TableDigest | None


@dataclass
class VerifyReport:
    target: str
    synced: bool
    sync_error: str | None
    attempts: int
    tables: list[TableCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.tables) and all(t.ok for t in self.tables)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "target": self.target,
            "synced": self.synced,
            "sync_error": self.sync_error,
            "attempts": self.attempts,
            "tables": {
                t.table: {
                    "ok": t.ok,
                    "live": asdict(t.live) if t.live else None,
                    "replica": asdict(t.replica) if t.replica else None,
                }
                for t in self.tables
            },
        }


def restore(settings: Settings, dest: Path, *, timeout_s: float = 120.0) -> Path:
    """``litestream restore -o DEST`` of the catalog's latest replicated state; DEST must not exist.
    Raises :class:`ReplicaError` (naming the replica target) on failure or after ``timeout_s``."""
    dest = dest.expanduser().absolute()
    target = describe_target(settings)
    if dest.exists():
        raise ReplicaError(
            f"{dest} already exists; restore into a new path (the live catalog is never replaced)"
        )
    if not dest.parent.is_dir():
        raise ReplicaError(f"folder {dest.parent} does not exist; create it first")
    cfg = write_config(settings)
    args = ["restore", "-config", str(cfg), "-no-expand-env", "-o", str(dest), str(db_path(settings))]
    rc, out = run_bounded(args, settings, timeout=timeout_s)
    if rc == 0 and dest.is_file():
        return dest
    for p in _with_sidecars(dest):  # a partial file is worse than none
        p.unlink(missing_ok=True)
    if rc is None:
        raise ReplicaError(
            f"restore from the {target} did not finish within {timeout_s:g} s (stopped); "
            "check that the replica target is reachable"
        )
    detail = out.strip().splitlines()[-1] if out.strip() else f"exit status {rc}"
    raise ReplicaError(f"cannot restore from the {target}: {detail[:300]}")


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _encode(value: object) -> bytes:
    """Unambiguous bytes for one SQLite value (type tag + length where needed)."""
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"I" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return b"T" + struct.pack(">Q", len(raw)) + raw
    if isinstance(value, bytes):
        return b"B" + struct.pack(">Q", len(value)) + value
    raise TypeError(f"unexpected SQLite value type {type(value).__name__}")


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table' ORDER BY name").fetchall()
    return [
        str(name)
        for name, sql in rows
        if not str(name).startswith(_SKIPPED_PREFIXES)
        and not str(sql or "").upper().startswith("CREATE VIRTUAL TABLE")  # its shadow tables are compared
    ]


def _order_by(conn: sqlite3.Connection, table: str) -> str:
    info = conn.execute(f"PRAGMA table_info({_qi(table)})").fetchall()
    pk = sorted((int(r[5]), str(r[1])) for r in info if int(r[5]) > 0)
    without_rowid = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name=? AND sql LIKE '%WITHOUT ROWID%'", (table,)
    ).fetchone()
    cols = [_qi(name) for _, name in pk]
    if not without_rowid:
        cols.append("rowid")  # a total order even where the primary key allows NULLs
    return ", ".join(cols)


def table_digests(conn: sqlite3.Connection) -> dict[str, TableDigest]:
    """Row count and SHA-256 over every row's values (primary-key order) of each table, read in
    ONE read transaction (the caller's connection must not be inside another transaction)."""
    conn.execute("BEGIN")
    try:
        out: dict[str, TableDigest] = {}
        for table in _tables(conn):
            h = hashlib.sha256()
            n = 0
            cur = conn.execute(f"SELECT * FROM {_qi(table)} ORDER BY {_order_by(conn, table)}")
            for row in cur:
                n += 1
                h.update(b"R" + struct.pack(">I", len(row)))
                for value in row:
                    h.update(_encode(value))
            out[table] = TableDigest(rows=n, sha256=h.hexdigest())
        return out
    finally:
        conn.execute("COMMIT")


def _open_ro(path: Path) -> sqlite3.Connection:
    # Read-only: never checkpoints (the application must not checkpoint while Litestream runs).
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def digests_of(path: Path) -> dict[str, TableDigest]:
    conn = _open_ro(path)
    try:
        return table_digests(conn)
    finally:
        conn.close()


def compare(live: dict[str, TableDigest], replica: dict[str, TableDigest]) -> list[TableCheck]:
    return [
        TableCheck(
            name, live.get(name) == replica.get(name) and name in live, live.get(name), replica.get(name)
        )
        for name in sorted(set(live) | set(replica))
    ]


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def verify(settings: Settings, *, timeout_s: float = 120.0, attempts: int = 3) -> VerifyReport:
    """Restore the replica into a scratch file and compare it table by table with the live catalog.

    First ``litestream sync -wait`` (so the replica holds everything committed so far), then the
    live catalog is read in one read transaction and the replica restored. If the catalog changed
    during the round (``PRAGMA data_version``), a mismatch may be the catalog moving on, so the
    round is repeated (up to ``attempts``); a mismatch on a quiet catalog is reported at once.
    The scratch copy is always deleted."""
    target = describe_target(settings)
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    report = VerifyReport(target=target, synced=False, sync_error=None, attempts=0)
    watch = _open_ro(settings.catalog_path)
    try:
        for attempt in range(1, attempts + 1):
            report.attempts = attempt
            before = _data_version(watch)
            report.synced, why = sync_wait(
                settings, min(timeout_s, max(5.0, settings.replication.health_timeout_s))
            )
            report.sync_error = why or None
            live = table_digests(watch)
            scratch = settings.scratch_dir / f"replica-verify-{uuid.uuid4().hex}.db"
            try:
                restore(settings, scratch, timeout_s=timeout_s)
                replica = digests_of(scratch)
            finally:
                for p in _with_sidecars(scratch):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
            report.tables = compare(live, replica)
            if report.ok or _data_version(watch) == before:
                break
    finally:
        watch.close()
    return report
