"""``hall keys rotate``: a new hall key (KEK); every data key re-wrapped under it; the old key
destroyed. Blobs and fields are not re-encrypted (their DEKs do not change).

Resumable after a kill at any point:

1. the new key file is written (fsync'd) — a file not yet named in the catalog is an orphan and
   is destroyed by the next run;
2. ``meta.kek_rotation_target`` names it (one transaction);
3. DEKs are re-wrapped in batches, each batch one transaction; a DEK row always names the key
   that wraps it, so a half-done rotation leaves every record readable (both keys exist);
4. one transaction checks that no DEK is left under another key, makes the new key current and
   clears the target, with an audit entry;
5. old key files that wrap nothing any more are destroyed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance import envelope
from appliance.auditor import Auditor
from appliance.catalog import transaction
from appliance.errors import HallError
from appliance.keyring import KeyRing


class RotationBusy(HallError):
    code = "rotation_busy"


@dataclass(frozen=True)
class RotationReport:
    new_kek: str
    rewrapped: int
    destroyed: list[str]
    resumed: bool
    seconds: float


def _rewrap_all(
    keyring: KeyRing,
    conn: sqlite3.Connection,
    target: str,
    batch: int,
    after_batch: Callable[[int], None] | None,
    done: int,
) -> int:
    keys, appliance = keyring.keys, keyring.appliance
    new_kek = keys.kek(target)
    while True:
        with transaction(conn):
            rows = conn.execute(
                "SELECT id, kek_id, wrapped FROM deks WHERE kek_id != ? AND wrapped IS NOT NULL LIMIT ?",
                (target, batch),
            ).fetchall()
            for r in rows:
                dek = envelope.unwrap_key(
                    keys.kek(r["kek_id"]),
                    r["kek_id"],
                    bytes(r["wrapped"]),
                    appliance=appliance,
                    dek_id=r["id"],
                )
                wrapped = envelope.wrap_key(new_kek, target, dek, appliance=appliance, dek_id=r["id"])
                conn.execute("UPDATE deks SET kek_id=?, wrapped=? WHERE id=?", (target, wrapped, r["id"]))
        if not rows:
            return done
        done += len(rows)
        if after_batch is not None:
            after_batch(done)


@contextlib.contextmanager
def _exclusive(conn: sqlite3.Connection) -> Iterator[None]:
    """One rotation at a time: two would each take the other's new key for an orphan."""
    db_file = conn.execute("PRAGMA database_list").fetchone()["file"]
    lock_path = Path(db_file).with_name("keys-rotation.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationBusy(
                "another `hall keys rotate` is running on this data dir; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def rotate(
    keyring: KeyRing,
    conn: sqlite3.Connection,
    auditor: Auditor,
    *,
    actor: str,
    batch: int = 500,
    after_batch: Callable[[int], None] | None = None,
) -> RotationReport:
    with _exclusive(conn):
        return _rotate(keyring, conn, auditor, actor=actor, batch=batch, after_batch=after_batch)


def _rotate(
    keyring: KeyRing,
    conn: sqlite3.Connection,
    auditor: Auditor,
    *,
    actor: str,
    batch: int,
    after_batch: Callable[[int], None] | None,
) -> RotationReport:
    t0 = time.monotonic()
    keys = keyring.keys
    keys.discard_unfinished()  # a key file cut short by a kill while it was written
    row = conn.execute("SELECT value FROM meta WHERE key='kek_rotation_target'").fetchone()
    resumed = row is not None
    if row is None:
        current = keyring.current_kek_id(conn)
        referenced = {
            r[0] for r in conn.execute("SELECT DISTINCT kek_id FROM deks WHERE wrapped IS NOT NULL")
        }
        for orphan in set(keys.kek_ids()) - referenced - {current}:
            keys.destroy_kek(orphan)  # left by a rotation killed before step 2
        target = keys.create_kek()
        with transaction(conn):
            conn.execute("INSERT INTO meta(key, value) VALUES ('kek_rotation_target', ?)", (target,))
    else:
        target = str(row[0])
    done = 0
    while True:
        done = _rewrap_all(keyring, conn, target, batch, after_batch, done)
        with transaction(conn):
            left = conn.execute(
                "SELECT COUNT(*) FROM deks WHERE kek_id != ? AND wrapped IS NOT NULL", (target,)
            ).fetchone()[0]
            if left:  # keys made meanwhile under the old hall key: go round again
                continue
            conn.execute("UPDATE meta SET value=? WHERE key='kek_current'", (target,))
            conn.execute("DELETE FROM meta WHERE key='kek_rotation_target'")
            # Shredded rows keep only the id of the key they had; point them at the new one.
            conn.execute("UPDATE deks SET kek_id=? WHERE wrapped IS NULL", (target,))
            auditor.record(conn, actor, "keys.rotate", target, {"rewrapped": done, "resumed": resumed})
            break
    destroyed = []
    for old in keys.kek_ids():
        if old != target:
            keys.destroy_kek(old)
            destroyed.append(old)
    return RotationReport(target, done, destroyed, resumed, round(time.monotonic() - t0, 3))
