"""Crypto-shredding a record: destroy both copies of its data key (wrapped under the hall key and
sealed to the archive) so the record's pages, OCR text, metadata and original file name become
unreadable everywhere the ciphertext exists — this box, its blob store, its replica and the
archive's object store. The blind-index rows are removed first (while the text can still be
decrypted to recompute them). The record row itself stays, marked ``shredded``, and the audit
chain keeps its existence and the deletion.

Replicas (Litestream) keep older catalog snapshots, which still hold the wrapped key, until
their retention expires; the hall key itself is needed to use them.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from appliance import outbox, record_reader, search_index
from appliance.catalog import transaction
from appliance.errors import RecordNotFound, RecordShredded, StoreError
from appliance.jobqueue import add_event

if TYPE_CHECKING:
    from appliance.records import RecordStore

log = logging.getLogger(__name__)


def shred(store: RecordStore, record_id: str, *, actor: str, reason: str) -> None:
    conn = store.conn
    if not reason.strip():
        raise StoreError("a shred needs a reason (recorded in the audit chain), e.g. the approval number")
    rec = conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    if rec is None:
        raise RecordNotFound(f"no record {record_id!r}")
    if rec["status"] == "shredded":
        raise RecordShredded(f"record {record_id} was already shredded")
    texts = record_reader.texts(store, record_id)
    meta = record_reader.metadata(store, rec)
    with transaction(conn):
        if meta:
            texts["meta"] = search_index.metadata_text(meta)
        search_index.drop_record(conn, store.index, record_id, texts)
        store.keyring.shred(conn, rec["dek_id"])
        outbox.drop_record(conn, record_id)  # nothing of a shredded record is sent to the archive
        now = time.time()
        conn.execute(
            "UPDATE records SET status='shredded', shredded_at=?, meta_ct=NULL, suggest_ct=NULL WHERE id=?",
            (now, record_id),
        )
        conn.execute("UPDATE pages SET ocr_ct=x'' WHERE record_id=?", (record_id,))
        detail = {"method": "crypto-shredding"}
        add_event(conn, rec["job_id"], "deletion", "success", detail, record_id=record_id, agent=actor)
        store.audit.record(
            conn, actor, "record.shred", record_id, {"pages": rec["page_count"]}, sensitive={"reason": reason}
        )
    _flush_old_pages(conn)


def _flush_old_pages(conn: sqlite3.Connection) -> None:
    """The old versions of the changed pages (with the wrapped key) stay in the WAL — and in the
    database file until the WAL is checkpointed over them. When the application owns
    checkpointing (``wal_autocheckpoint`` > 0) it checkpoints now so the key bytes are gone from
    both files. Under Litestream (``wal_autocheckpoint=0``: Litestream alone checkpoints) they go
    at its next checkpoint; the replica keeps them until its retention expires (docs/security.md)."""
    if int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0:
        return
    for _ in range(20):
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return
        time.sleep(0.1)
    log.warning("a reader kept the checkpoint after a shred from finishing; the next checkpoint completes it")
