"""The record store: the one interface through which the pipeline persists results.

A record is written with :meth:`RecordStore.begin` → :meth:`RecordWriter.add_page` (page blobs
are written at once, content-addressed and idempotent) → :meth:`RecordWriter.commit`, which
inserts the record, its pages, OCR lines and events *and* marks the job stored in one
transaction. A crash before the commit leaves only unreferenced blobs; after it, the record and
the job state agree. Encryption at rest slots in here (blobs and personal fields are encrypted
by the writer), without touching the pipeline.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.blobstore import BlobStore
from appliance.catalog import transaction
from appliance.errors import RecordNotFound
from appliance.jobqueue import Job, add_event, assert_owned


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


@dataclass(frozen=True)
class _PageRow:
    page: NewPage
    cleaned_ref: str
    thumb_ref: str
    bilevel_ref: str


class DuplicateRecord(Exception):
    """Raised by commit when a record with the same master hash already exists."""

    def __init__(self, record_id: str) -> None:
        super().__init__(record_id)
        self.record_id = record_id


class RecordWriter:
    def __init__(self, store: RecordStore, job: Job, fmt: str, master: bytes) -> None:
        self._store = store
        self.job = job
        self.record_id = uuid.uuid4().hex
        self.format = fmt
        self.master_size = len(master)
        self.master_ref = store.blobs.put(master)
        self._pages: list[_PageRow] = []

    def add_page(self, page: NewPage) -> None:
        cleaned_ref = self._store.blobs.put(page.cleaned)
        thumb_ref = self._store.blobs.put(page.thumbnail)
        bilevel_ref = self._store.blobs.put(page.bilevel)
        self._pages.append(_PageRow(page, cleaned_ref, thumb_ref, bilevel_ref))

    def commit(self, extra_events: list[tuple[str, str, dict[str, Any]]] | None = None) -> str:
        conn = self._store.conn
        job = self.job
        assert job.sha256 is not None
        with transaction(conn):
            assert_owned(conn, job)
            existing = conn.execute("SELECT id FROM records WHERE sha256=?", (job.sha256,)).fetchone()
            if existing is not None:
                raise DuplicateRecord(existing["id"])
            now = time.time()
            conn.execute(
                "INSERT INTO records(id, job_id, sha256, counter, original_name, format, size, page_count,"
                " master_blob, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    self.record_id,
                    job.id,
                    job.sha256,
                    job.counter,
                    job.original_name,
                    self.format,
                    self.master_size,
                    len(self._pages),
                    self.master_ref,
                    now,
                ),
            )
            for row in self._pages:
                self._insert_page(conn, row)
            for type_, outcome, detail in extra_events or []:
                add_event(conn, job.id, type_, outcome, detail, record_id=self.record_id)
            add_event(
                conn,
                job.id,
                "storage",
                "success",
                {"pages": len(self._pages), "master_blob": self.master_ref},
                record_id=self.record_id,
            )
            conn.execute(
                "UPDATE jobs SET state='stored', record_id=?, finished_at=?, last_error=NULL WHERE id=?",
                (self.record_id, now, job.id),
            )
        return self.record_id

    def _insert_page(self, conn: sqlite3.Connection, row: _PageRow) -> None:
        p = row.page
        conn.execute(
            "INSERT INTO pages(record_id, idx, width, height, channels, dpi_x, dpi_y, source, cleaned_blob,"
            " thumb_blob, bilevel_blob, clean_report, orientation, ocr_engine, ocr_ms, text)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                "\n".join(line.text for line in p.lines),
            ),
        )
        conn.executemany(
            "INSERT INTO ocr_lines(record_id, page_idx, idx, text, box, confidence) VALUES (?,?,?,?,?,?)",
            [
                (
                    self.record_id,
                    p.idx,
                    i,
                    line.text,
                    json.dumps([list(pt) for pt in line.box]),
                    line.confidence,
                )
                for i, line in enumerate(p.lines)
            ],
        )
        for type_, outcome, detail in p.events:
            add_event(conn, self.job.id, type_, outcome, detail, record_id=self.record_id, page_idx=p.idx)


class RecordStore:
    def __init__(self, conn: sqlite3.Connection, blobs: BlobStore, quarantine_dir: Path) -> None:
        self.conn = conn
        self.blobs = blobs
        self.quarantine_dir = quarantine_dir

    # --- writing --------------------------------------------------------------------------
    def begin(self, job: Job, fmt: str, master: bytes) -> RecordWriter:
        return RecordWriter(self, job, fmt, master)

    def find_by_sha(self, sha256: str) -> str | None:
        row = self.conn.execute("SELECT id FROM records WHERE sha256=?", (sha256,)).fetchone()
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

    def quarantine_path(self, job: Job) -> Path:
        return self.quarantine_dir / job.id

    def mark_quarantined(
        self, job_id: str, code: str, reason: str, *, keep: Path | None, owner: Job | None = None
    ) -> None:
        """Record the quarantine decision. ``keep`` is where the bytes will be kept (the caller
        moves them there after this commit; :func:`appliance.spool.finalize` completes the move
        after a crash)."""
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

    # --- reading --------------------------------------------------------------------------
    def get(self, record_id: str) -> dict[str, Any]:
        rec = self.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
        if rec is None:
            raise RecordNotFound(f"no record {record_id!r}")
        job = self.conn.execute("SELECT * FROM jobs WHERE id=?", (rec["job_id"],)).fetchone()
        out: dict[str, Any] = {k: rec[k] for k in rec.keys()}  # noqa: SIM118 - sqlite3.Row
        out["landed_at"] = job["landed_at"]
        out["received_at"] = job["received_at"]
        out["stored_at"] = job["finished_at"]
        pages = []
        for p in self.conn.execute("SELECT * FROM pages WHERE record_id=? ORDER BY idx", (record_id,)):
            lines = [
                {"text": ln["text"], "box": json.loads(ln["box"]), "confidence": ln["confidence"]}
                for ln in self.conn.execute(
                    "SELECT * FROM ocr_lines WHERE record_id=? AND page_idx=? ORDER BY idx",
                    (record_id, p["idx"]),
                )
            ]
            page = {k: p[k] for k in p.keys() if k not in ("record_id", "clean_report", "text")}  # noqa: SIM118
            page["index"] = p["idx"]
            page["clean_report"] = json.loads(p["clean_report"])
            page["lines"] = lines
            pages.append(page)
        out["pages"] = pages
        out["events"] = [
            {
                "at": e["at"],
                "type": e["type"],
                "outcome": e["outcome"],
                "page": e["page_idx"],
                "detail": json.loads(e["detail"]),
            }
            for e in self.conn.execute("SELECT * FROM events WHERE job_id=? ORDER BY id", (rec["job_id"],))
        ]
        return out

    def page_blob(self, record_id: str, idx: int, kind: str) -> bytes:
        column = {"cleaned": "cleaned_blob", "thumbnail": "thumb_blob", "bilevel": "bilevel_blob"}[kind]
        row = self.conn.execute(
            f"SELECT {column} FROM pages WHERE record_id=? AND idx=?", (record_id, idx)
        ).fetchone()
        if row is None:
            raise RecordNotFound(f"no page {idx} in record {record_id!r}")
        return self.blobs.get(row[0])

    def master(self, record_id: str) -> bytes:
        row = self.conn.execute("SELECT master_blob FROM records WHERE id=?", (record_id,)).fetchone()
        if row is None:
            raise RecordNotFound(f"no record {record_id!r}")
        return self.blobs.get(row[0])

    def record_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM records ORDER BY created_at")]

    def latest_quarantine(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT q.job_id, q.reason_code, q.reason, q.path, q.at, j.original_name, j.counter"
            " FROM quarantine q JOIN jobs j ON j.id=q.job_id ORDER BY q.at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]
