"""The durable job queue (rows of the ``jobs`` table).

States: ``received`` → ``processing`` → ``stored`` | ``quarantined`` | ``duplicate``.
A claim is one ``UPDATE … RETURNING`` inside ``BEGIN IMMEDIATE``, so two workers never take the
same job. Finishing a job (record insert + state change) is one transaction elsewhere
(:mod:`appliance.records`), so a crash leaves either the old state or the finished one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.auditor import Auditor
from appliance.catalog import transaction
from appliance.errors import StoreError
from appliance.keyring import KeyRing

TERMINAL_STATES = ("stored", "quarantined", "duplicate")


@dataclass(frozen=True)
class Job:
    id: str
    counter: str
    source: str
    fingerprint: str | None  # keyed HMAC-SHA256 of the bytes (see BlindIndex.fingerprint)
    size: int | None
    spool_path: Path | None
    state: str
    attempts: int
    landed_at: float
    received_at: float
    worker: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            counter=row["counter"],
            source=row["source"],
            fingerprint=row["fingerprint"],
            size=row["size"],
            spool_path=Path(row["spool_path"]) if row["spool_path"] else None,
            state=row["state"],
            attempts=row["attempts"],
            landed_at=row["landed_at"],
            received_at=row["received_at"],
            worker=row["worker"],
        )


@dataclass(frozen=True)
class NewJob:
    id: str
    counter: str
    original_name: str
    name_bytes: bytes
    source: str
    fingerprint: str | None
    size: int | None
    spool_path: Path | None
    landed_at: float


class LostClaim(Exception):
    """The job is no longer claimed by this worker (the service restarted and requeued it)."""


def assert_owned(conn: sqlite3.Connection, job: Job) -> None:
    """Inside a transaction: refuse to finish a job another worker now owns."""
    row = conn.execute("SELECT state, worker FROM jobs WHERE id=?", (job.id,)).fetchone()
    if row is None or row["state"] != "processing" or row["worker"] != job.worker:
        raise LostClaim(f"job {job.id} is no longer claimed by worker {job.worker}")


def add_event(
    conn: sqlite3.Connection,
    job_id: str,
    type_: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    *,
    record_id: str | None = None,
    page_idx: int | None = None,
    at: float | None = None,
    agent: str | None = None,
) -> None:
    """Append a processing-history event (call inside the caller's transaction). ``detail`` is
    stored in plaintext: operational values only, never names, numbers or text from a scan."""
    conn.execute(
        "INSERT INTO events(job_id, record_id, page_idx, at, type, outcome, agent, detail)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            job_id,
            record_id,
            page_idx,
            time.time() if at is None else at,
            type_,
            outcome,
            agent,
            json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        ),
    )


@dataclass(frozen=True)
class JobName:
    display: str  # display-safe (control/bidi characters escaped)
    raw: bytes  # the name bytes exactly as the file system had them


class JobQueue:
    def __init__(self, conn: sqlite3.Connection, keyring: KeyRing, audit: Auditor) -> None:
        self.conn = conn
        self.keyring = keyring
        self.audit = audit

    # --- producing ------------------------------------------------------------------------
    def insert(self, job: NewJob, *, state: str = "received") -> None:
        """Insert a job row with its new data key (inside the caller's transaction). The file
        name is personal data (people name scans after the citizen): it is stored encrypted."""
        self.keyring.create_dek(self.conn, job.id)
        name = json.dumps({"display": job.original_name, "raw": job.name_bytes.hex()}, ensure_ascii=False)
        name_ct = self.keyring.encrypt(self.conn, job.id, job.id, "job/name", name.encode())
        self.conn.execute(
            "INSERT INTO jobs(id, counter, name_ct, source, fingerprint, size, spool_path,"
            " state, landed_at, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                job.id,
                job.counter,
                name_ct,
                job.source,
                job.fingerprint,
                job.size,
                str(job.spool_path) if job.spool_path else None,
                state,
                job.landed_at,
                time.time(),
            ),
        )
        add_event(
            self.conn,
            job.id,
            "ingestion",
            "success",
            {"counter": job.counter, "source": job.source, "fingerprint": job.fingerprint, "size": job.size},
        )
        self.audit.record(
            self.conn, "system:intake", "ingest", job.id, {"counter": job.counter, "source": job.source}
        )

    def enqueue(self, job: NewJob) -> None:
        with transaction(self.conn):
            self.insert(job)

    def exists(self, job_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone() is not None

    # --- consuming ------------------------------------------------------------------------
    def claim(self, worker: str) -> Job | None:
        """Take the oldest received job, or None when the queue is empty."""
        with transaction(self.conn):
            row = self.conn.execute(
                "UPDATE jobs SET state='processing', attempts=attempts+1, started_at=?, worker=?"
                " WHERE id = (SELECT id FROM jobs WHERE state='received' ORDER BY received_at, id LIMIT 1)"
                " RETURNING *",
                (time.time(), worker),
            ).fetchone()
        return Job.from_row(row) if row else None

    def claim_id(self, job_id: str, worker: str) -> Job | None:
        """Take one specific received job (used by synchronous ``hall ingest``)."""
        with transaction(self.conn):
            row = self.conn.execute(
                "UPDATE jobs SET state='processing', attempts=attempts+1, started_at=?, worker=?"
                " WHERE id=? AND state='received' RETURNING *",
                (time.time(), worker, job_id),
            ).fetchone()
        return Job.from_row(row) if row else None

    def release(self, job_id: str, error: str) -> None:
        """Put a job back after a failure that may be transient."""
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE jobs SET state='received', last_error=?, worker=NULL"
                " WHERE id=? AND state='processing'",
                (error, job_id),
            )
            add_event(self.conn, job_id, "processing", "failure", {"error": error, "retry": True})

    def release_worker(self, worker: str, error: str) -> list[str]:
        """A worker process died: put its jobs back (the attempt stays counted)."""
        with transaction(self.conn):
            rows = self.conn.execute(
                "UPDATE jobs SET state='received', last_error=?, worker=NULL"
                " WHERE state='processing' AND worker=? RETURNING id",
                (error, worker),
            ).fetchall()
            for r in rows:
                add_event(self.conn, r["id"], "processing", "failure", {"error": error, "retry": True})
        return [r["id"] for r in rows]

    def recover_after_restart(self) -> int:
        """At service start no job can be in progress: put 'processing' jobs back. The service
        stopping (power loss, kill) is not the file's fault, so that attempt is not counted."""
        with transaction(self.conn):
            cur = self.conn.execute(
                "UPDATE jobs SET state='received', worker=NULL, attempts=MAX(attempts-1, 0)"
                " WHERE state='processing'"
            )
        return cur.rowcount

    def name(self, job_id: str) -> JobName:
        """The decrypted original file name (:class:`RecordShredded` once the key is gone)."""
        row = self.conn.execute("SELECT name_ct FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise StoreError(f"no job {job_id}")
        data = json.loads(self.keyring.decrypt(self.conn, job_id, job_id, "job/name", bytes(row[0])))
        return JobName(str(data["display"]), bytes.fromhex(data["raw"]))

    def get(self, job_id: str) -> Job | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def pending(self) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('received','processing')"
        ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("received", "processing", *TERMINAL_STATES)}
        for row in self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[row[0]] = row[1]
        return out
