"""The record store: the one interface through which the pipeline persists results, and the one
place that encrypts them.

A record is written with :meth:`RecordStore.begin` → :meth:`RecordWriter.add_page` (page blobs
are encrypted under the record's data key and written at once, content-addressed by the hash of
the ciphertext) → :meth:`RecordWriter.commit`, which inserts the record, its pages, the
encrypted OCR text and suggestions, the blind-index tokens, the processing events and the audit
entry *and* marks the job stored, in one transaction. A crash before the commit leaves only
unreferenced blobs; after it, the record and the job state agree.

Reading (:mod:`appliance.record_reader`) decrypts; metadata edits and confirmation live in
:mod:`appliance.record_metadata`; search in :mod:`appliance.search`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from appliance import outbox, record_reader, search_index
from appliance.auditor import Auditor
from appliance.blindindex import BlindIndex
from appliance.blobstore import BlobStore
from appliance.catalog import transaction
from appliance.fsutil import atomic_write, durable_rename, fsync_dir
from appliance.jobqueue import Job, add_event, assert_owned
from appliance.keyring import KeyRing


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: tuple[tuple[float, float], ...]  # four corners, clockwise from top-left, page pixels
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box], "confidence": self.confidence}


@dataclass
class NewPage:
    idx: int
    width: int
    height: int
    channels: int
    dpi: tuple[float, float] | None
    source: str
    cleaned: bytes  # encoded image (JPEG)
    thumbnail: bytes  # encoded image (JPEG)
    bilevel: bytes  # encoded bilevel copy (TIFF G4)
    clean_report: dict[str, Any]
    orientation: int
    ocr_engine: str
    ocr_ms: float
    lines: list[OcrLine]
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class _PageRow:
    page: NewPage
    cleaned_ref: str
    thumb_ref: str
    bilevel_ref: str
    ocr_ct: bytes


class DuplicateRecord(Exception):
    """Raised by commit when a record of the same file (same keyed fingerprint) already exists."""

    def __init__(self, record_id: str) -> None:
        super().__init__(record_id)
        self.record_id = record_id


def page_blob_name(idx: int, kind: str) -> str:
    return f"page/{idx}/{kind}"


class RecordWriter:
    def __init__(self, store: RecordStore, job: Job, fmt: str, master: bytes) -> None:
        self._store = store
        self.job = job
        self.record_id = uuid.uuid4().hex
        self.format = fmt
        self.master_size = len(master)
        self._blob_sizes: dict[str, int] = {}  # ref -> ciphertext bytes (queued for the archive)
        self.master_ref = self._put("master", master)
        self._pages: list[_PageRow] = []
        self._suggest_ct: bytes | None = None

    def _seal(self, name: str, data: bytes) -> bytes:
        store = self._store
        return store.keyring.encrypt(store.conn, self.job.id, self.record_id, name, data)

    def _put(self, name: str, data: bytes) -> str:
        sealed = self._seal(name, data)
        ref = self._store.blobs.put(sealed)
        self._blob_sizes[ref] = len(sealed)
        return ref

    def add_page(self, page: NewPage) -> None:
        put = self._put
        ocr = {"text": page.text, "lines": [line.to_dict() for line in page.lines]}
        self._pages.append(
            _PageRow(
                page,
                put(page_blob_name(page.idx, "cleaned"), page.cleaned),
                put(page_blob_name(page.idx, "thumbnail"), page.thumbnail),
                put(page_blob_name(page.idx, "bilevel"), page.bilevel),
                self._seal(f"page/{page.idx}/ocr", json.dumps(ocr, ensure_ascii=False).encode()),
            )
        )

    def prepare(self) -> bytes:
        """OCR suggestions, encrypted (computed once, outside the write transaction)."""
        if self._suggest_ct is None:
            suggestions = self._store.suggest([line.text for row in self._pages for line in row.page.lines])
            self._suggest_ct = self._seal("suggestions", json.dumps(suggestions, ensure_ascii=False).encode())
        return self._suggest_ct

    def commit(self, extra_events: list[tuple[str, str, dict[str, Any]]] | None = None) -> str:
        """Insert everything and mark the job stored, in one transaction."""
        self.prepare()
        with transaction(self._store.conn):
            self.write(extra_events)
        return self.record_id

    def write(self, extra_events: list[tuple[str, str, dict[str, Any]]] | None = None) -> None:
        """The rows of :meth:`commit`, inside the caller's transaction (bulk loaders batch many
        records per transaction; the pipeline uses :meth:`commit`)."""
        store, conn, job = self._store, self._store.conn, self.job
        assert job.fingerprint is not None
        suggest_ct = self.prepare()
        assert_owned(conn, job)
        existing = conn.execute("SELECT id FROM records WHERE fingerprint=?", (job.fingerprint,)).fetchone()
        if existing is not None:
            raise DuplicateRecord(existing["id"])
        now = time.time()
        conn.execute(
            "INSERT INTO records(id, job_id, dek_id, fingerprint, counter, format, size, page_count,"
            " master_blob, created_at, suggest_ct) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.record_id,
                job.id,
                job.id,
                job.fingerprint,
                job.counter,
                self.format,
                self.master_size,
                len(self._pages),
                self.master_ref,
                now,
                suggest_ct,
            ),
        )
        for row in self._pages:
            self._insert_page(conn, row)
            search_index.add(conn, store.index, self.record_id, f"page:{row.page.idx}", row.page.text)
        for type_, outcome, detail in extra_events or []:
            add_event(conn, job.id, type_, outcome, detail, record_id=self.record_id)
        add_event(
            conn,
            job.id,
            "storage",
            "success",
            {"pages": len(self._pages), "master_blob": self.master_ref, "encrypted": "AES-256-GCM"},
            record_id=self.record_id,
        )
        # Every blob of every stored record goes to the archive's object store (sync.transfer).
        outbox.enqueue_blobs(conn, self.record_id, self._blob_sizes.items(), at=now)
        conn.execute(
            "UPDATE jobs SET state='stored', record_id=?, finished_at=?, last_error=NULL WHERE id=?",
            (self.record_id, now, job.id),
        )
        actor = f"system:{job.worker or 'worker'}"
        store.audit.record(conn, actor, "record.store", self.record_id, {"pages": len(self._pages)})

    def _insert_page(self, conn: sqlite3.Connection, row: _PageRow) -> None:
        p = row.page
        confidences = [line.confidence for line in p.lines]
        conn.execute(
            "INSERT INTO pages(record_id, idx, width, height, channels, dpi_x, dpi_y, source, cleaned_blob,"
            " thumb_blob, bilevel_blob, clean_report, orientation, ocr_engine, ocr_ms, line_count, mean_conf,"
            " ocr_ct) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.record_id,
                p.idx,
                p.width,
                p.height,
                p.channels,
                p.dpi[0] if p.dpi else None,
                p.dpi[1] if p.dpi else None,
                p.source,
                row.cleaned_ref,
                row.thumb_ref,
                row.bilevel_ref,
                json.dumps(p.clean_report, ensure_ascii=False, sort_keys=True),
                p.orientation,
                p.ocr_engine,
                p.ocr_ms,
                len(p.lines),
                sum(confidences) / len(confidences) if confidences else None,
                row.ocr_ct,
            ),
        )
        for type_, outcome, detail in p.events:
            add_event(conn, self.job.id, type_, outcome, detail, record_id=self.record_id, page_idx=p.idx)


class RecordStore:
    def __init__(
        self,
        conn: sqlite3.Connection,
        blobs: BlobStore,
        quarantine_dir: Path,
        keyring: KeyRing,
        index: BlindIndex,
        audit: Auditor,
    ) -> None:
        self.conn = conn
        self.blobs = blobs
        self.quarantine_dir = quarantine_dir
        self.keyring = keyring
        self.index = index
        self.audit = audit

    # --- writing --------------------------------------------------------------------------
    def begin(self, job: Job, fmt: str, master: bytes) -> RecordWriter:
        return RecordWriter(self, job, fmt, master)

    @staticmethod
    def suggest(lines: list[str]) -> dict[str, Any]:
        """OCR-assisted metadata suggestions (never applied until a person confirms them)."""
        from appliance.prefill import suggest_metadata

        found = suggest_metadata(lines, today=date.today())
        return {k: {"value": s.value, "confidence": s.confidence, "line": s.line} for k, s in found.items()}

    def find_by_fingerprint(self, fingerprint: str) -> str | None:
        row = self.conn.execute("SELECT id FROM records WHERE fingerprint=?", (fingerprint,)).fetchone()
        return str(row["id"]) if row else None

    def mark_duplicate(self, job: Job, of_record: str) -> None:
        with transaction(self.conn):
            assert_owned(self.conn, job)
            self.conn.execute(
                "UPDATE jobs SET state='duplicate', duplicate_of=?, finished_at=?, last_error=NULL"
                " WHERE id=?",
                (of_record, time.time(), job.id),
            )
            add_event(self.conn, job.id, "duplicate detection", "duplicate", {"duplicate_of": of_record})

    def quarantine_path(self, job_id: str) -> Path:
        return self.quarantine_dir / f"{job_id}.enc"

    def mark_quarantined(
        self, job_id: str, code: str, reason: str, *, keep: Path | None, owner: Job | None = None
    ) -> None:
        """Record the quarantine decision. ``keep`` is where the bytes will be kept (the caller
        then calls :meth:`keep_quarantined`; :func:`appliance.spool.Spool.finalize` completes
        that after a crash)."""
        with transaction(self.conn):
            if owner is not None:
                assert_owned(self.conn, owner)
            self.conn.execute(
                "UPDATE jobs SET state='quarantined', reason_code=?, last_error=?, finished_at=? WHERE id=?",
                (code, reason, time.time(), job_id),
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO quarantine(job_id, reason_code, reason, path, at) VALUES (?,?,?,?,?)",
                (job_id, code, reason, str(keep) if keep else None, time.time()),
            )
            add_event(self.conn, job_id, "quarantine", "failure", {"code": code, "reason": reason})
            self.audit.record(self.conn, "system:pipeline", "quarantine", job_id, {"code": code})

    def keep_quarantined(self, job_id: str, src: Path) -> None:
        """Keep what was handed over in quarantine. A regular file is encrypted under the job's
        data key (``<job>.enc``) and the plaintext removed; anything else (a symlink, a FIFO)
        holds no scan content and is moved as it is, never followed or opened."""
        st = os.lstat(src)
        if not stat.S_ISREG(st.st_mode):
            kept = self.quarantine_dir / f"{job_id}.entry"
            durable_rename(src, kept)
            with transaction(self.conn):
                self.conn.execute("UPDATE quarantine SET path=? WHERE job_id=?", (str(kept), job_id))
            return
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        sealed = self.keyring.encrypt(self.conn, job_id, job_id, "quarantine/original", data)
        atomic_write(self.quarantine_path(job_id), sealed, mode=0o400)
        src.unlink()
        fsync_dir(src.parent)

    def quarantined_bytes(self, job_id: str) -> bytes:
        """The decrypted bytes of a quarantined file (for a supervisor's decision)."""
        blob = self.quarantine_path(job_id).read_bytes()
        return self.keyring.decrypt(self.conn, job_id, job_id, "quarantine/original", blob)

    # --- reading (decrypts; every content read by a person is audited) ----------------------
    def get(self, record_id: str, *, actor: str, search_id: int | None = None) -> dict[str, Any]:
        return record_reader.load(self, record_id, actor=actor, search_id=search_id)

    def page_blob(self, record_id: str, idx: int, kind: str, *, actor: str) -> bytes:
        return record_reader.page_image(self, record_id, idx, kind, actor=actor)

    def master(self, record_id: str, *, actor: str) -> bytes:
        return record_reader.master(self, record_id, actor=actor)

    def latest_quarantine(self, limit: int = 10, *, include_decided: bool = True) -> list[dict[str, Any]]:
        return record_reader.latest_quarantine(self, limit, include_decided=include_decided)

    # --- listing (no content) -------------------------------------------------------------
    def record_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM records ORDER BY created_at")]
