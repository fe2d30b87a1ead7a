"""Fetch a catalog's blobs back from the archive's object store (replacing a dead box).

The catalog comes back from the Litestream replica; the page blobs come back from the object
store, where the transfer outbox shipped every blob of every stored record. Each fetched blob is
checked against its content address before it is written, so a damaged or foreign object is
reported, never installed. Blobs the dead box had not shipped yet are listed with their records:
those pages are lost with the box, and the technician must know which.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.blobstore import BlobStore
from sync.objectstore import ObjectNotFound, ObjectStore, blob_key


@dataclass
class FetchReport:
    total: int = 0
    present: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)  # ref -> records using it
    corrupt: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.corrupt

    def records_affected(self) -> list[str]:
        return sorted({r for refs in (*self.missing.values(), *self.corrupt.values()) for r in refs})

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "present": self.present,
            "fetched": self.fetched,
            "fetched_bytes": self.fetched_bytes,
            "missing": len(self.missing),
            "corrupt": len(self.corrupt),
            "records_affected": self.records_affected(),
            "complete": self.complete,
        }


def catalog_blobs(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every blob the catalog refers to, with the records that use it (shredded records have no
    key left, so their blobs are not needed)."""
    out: dict[str, list[str]] = {}
    rows = conn.execute(
        "SELECT r.id, r.master_blob, p.cleaned_blob, p.bilevel_blob, p.thumb_blob FROM records r"
        " LEFT JOIN pages p ON p.record_id = r.id WHERE r.status != 'shredded' ORDER BY r.created_at, p.idx"
    )
    for record_id, *refs in rows:
        for ref in refs:
            if ref is not None:
                users = out.setdefault(str(ref), [])
                if record_id not in users:
                    users.append(str(record_id))
    return out


def fetch_missing(
    conn: sqlite3.Connection,
    blobs: BlobStore,
    store: ObjectStore,
    hall_id: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> FetchReport:
    """Download every referenced blob that is not on the local disk (idempotent, resumable)."""
    wanted = catalog_blobs(conn)
    report = FetchReport(total=len(wanted))
    for n, (ref, users) in enumerate(wanted.items(), 1):
        if blobs.exists(ref):
            report.present += 1
        else:
            try:
                data = store.get(blob_key(hall_id, ref))
            except ObjectNotFound:
                report.missing[ref] = users
            else:
                if hashlib.sha256(data).hexdigest() != ref:
                    report.corrupt[ref] = users
                else:
                    blobs.put(data)
                    report.fetched += 1
                    report.fetched_bytes += len(data)
        if progress is not None:
            progress(n, report.total)
    return report
