"""The transfer outboxes (catalog schema 6): what still has to reach the central archive.

Rows are written inside the caller's transaction, together with the change that makes them
necessary, so a crash can never leave a stored record whose blobs are not queued, or a
confirmed record whose package is not queued:

* ``blob_outbox`` — one row per encrypted blob of every stored record (drafts too), written by
  :meth:`appliance.records.RecordWriter.write`; deleted once the object store holds the blob;
* ``transfer_outbox`` — one row per confirmed record, written by
  :func:`appliance.record_metadata.confirm` and set back to ``pending`` with the new version
  when a confirmed record is edited; deleted when a verified receipt is stored.

The sender is :mod:`sync.transfer`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any


def enqueue_blobs(
    conn: sqlite3.Connection,
    record_id: str,
    blobs: Iterable[tuple[str, int | None]],
    *,
    at: float | None = None,
) -> None:
    """Queue ``(ref, ciphertext size)`` pairs of a record (idempotent per ref)."""
    now = time.time() if at is None else at
    conn.executemany(
        "INSERT OR IGNORE INTO blob_outbox(ref, record_id, size, enqueued_at) VALUES (?,?,?,?)",
        [(ref, record_id, size, now) for ref, size in blobs],
    )


def enqueue_package(
    conn: sqlite3.Connection, record_id: str, version: int, *, at: float | None = None
) -> None:
    """Queue (or re-queue, with the new metadata version) the package of a confirmed record.
    A rejected or blocked package becomes pending again: the record changed, so it is a new
    package that deserves a new try."""
    now = time.time() if at is None else at
    conn.execute(
        "INSERT INTO transfer_outbox(record_id, version, state, attempts, next_attempt_at, enqueued_at,"
        " updated_at) VALUES (?, ?, 'pending', 0, 0, ?, ?)"
        " ON CONFLICT(record_id) DO UPDATE SET version=excluded.version, state='pending', attempts=0,"
        " next_attempt_at=0, last_error=NULL, failed_items=NULL, updated_at=excluded.updated_at",
        (record_id, version, now, now),
    )


def drop_record(conn: sqlite3.Connection, record_id: str) -> None:
    """Forget everything queued for a record (it was shredded: nothing of it may be sent)."""
    conn.execute("DELETE FROM blob_outbox WHERE record_id=?", (record_id,))
    conn.execute("DELETE FROM transfer_outbox WHERE record_id=?", (record_id,))


def record_transfer(conn: sqlite3.Connection, record_id: str) -> dict[str, Any]:
    """Where a record stands with the archive (for the record view): ``state`` is
    ``transferred`` (with the receipt), ``pending`` / ``rejected`` (with the archive's failed
    items) / ``blocked`` while its package is queued, ``waiting_blobs`` while only its blobs
    are, or ``none`` (a draft whose blobs are all shipped, or a shredded record)."""
    rec = conn.execute("SELECT status, transferred_at FROM records WHERE id=?", (record_id,)).fetchone()
    blobs = conn.execute("SELECT COUNT(*) FROM blob_outbox WHERE record_id=?", (record_id,)).fetchone()[0]
    row = conn.execute("SELECT * FROM transfer_outbox WHERE record_id=?", (record_id,)).fetchone()
    receipt = conn.execute(
        "SELECT version, receipt, received_at FROM receipts WHERE record_id=?"
        " ORDER BY received_at DESC LIMIT 1",
        (record_id,),
    ).fetchone()
    out: dict[str, Any] = {
        "state": "none",
        "pending_blobs": int(blobs),
        "transferred_at": rec["transferred_at"] if rec is not None else None,
        "receipt": None,
        "version": None,
        "attempts": 0,
        "last_error": None,
        "failed_items": [],
    }
    if receipt is not None:
        body = json.loads(receipt["receipt"])
        out["receipt"] = {
            "receipt_id": body.get("receipt_id"),
            "archive_id": body.get("archive_id"),
            "received_at": body.get("received_at"),
            "stored_at": receipt["received_at"],
            "version": receipt["version"],
        }
    if row is not None:
        failed = json.loads(row["failed_items"]) if row["failed_items"] else {}
        out.update(
            state=row["state"],
            version=row["version"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            failed_items=failed.get("failed", []) if isinstance(failed, dict) else [],
            rejected_at=failed.get("received_at") if isinstance(failed, dict) else None,
        )
    elif rec is not None and rec["status"] == "transferred":
        out["state"] = "transferred"
    elif blobs:
        out["state"] = "waiting_blobs"
    return out
