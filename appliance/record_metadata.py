"""Archive metadata of a record (DA/T 46): edit, confirm with a 档号, retention.

* :func:`edit` validates and stores the new metadata encrypted (version + 1, bound into the AAD
  so an older ciphertext cannot be put back), updates the blind index, and writes a processing
  event and an audit entry — old and new values sealed, field names in plaintext.
* :func:`confirm` is "confirm and archive": full validation, then, in one transaction, the next
  item number of the record's 档号 sequence (``code_sequences``), the 档号, status
  ``confirmed``. Numbering is gap-free and unique across workers and crashes because the
  counter and the record change commit together (``BEGIN IMMEDIATE`` serialises writers) and
  ``UNIQUE(code_prefix, code_item)`` backs it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from appliance import outbox, record_reader, search_index
from appliance.archival import (
    ArchivalCodeParts,
    FieldProblem,
    RecordMetadata,
    format_archival_code,
    normalise_metadata,
    validate,
)
from appliance.catalog import transaction
from appliance.errors import HallError, RecordNotFound
from appliance.jobqueue import add_event
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.records import RecordStore

RETENTION_YEARS = {"D30": 30, "D10": 10}
_LOCKED = {"archival_code", "pages", "fonds"}


class MetadataRejected(HallError):
    """Metadata failed validation; ``problems`` lists each field and why (zh + en)."""

    code = "metadata_invalid"

    def __init__(self, problems: list[FieldProblem]) -> None:
        text = "; ".join(f"{p.field}: {p.message_en}" for p in problems)
        super().__init__(f"metadata not accepted: {text}")
        self.problems = problems


class RecordStateError(HallError):
    code = "record_state"


def defaults(settings: Settings, page_count: int) -> dict[str, Any]:
    return {
        "creator": settings.hall_name,
        "source": settings.hall_name,
        "fonds": settings.archival.fonds,
        "retention": settings.archival.retention,
        "classification": settings.archival.classification,
        "pages": page_count,
    }


def _record(store: RecordStore, record_id: str) -> Any:
    rec = store.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    if rec is None:
        raise RecordNotFound(f"no record {record_id!r}")
    return rec


def current(store: RecordStore, settings: Settings, record_id: str) -> dict[str, Any]:
    """The stored metadata over the hall's defaults (not audited: callers audit their use)."""
    rec = _record(store, record_id)
    return {**defaults(settings, rec["page_count"]), **record_reader.metadata(store, rec)}


def _write(store: RecordStore, rec: Any, meta: dict[str, Any], old: dict[str, Any] | None) -> int:
    version = int(rec["meta_version"]) + 1
    blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
    ct = store.keyring.encrypt(store.conn, rec["dek_id"], rec["id"], "metadata", blob, version)
    store.conn.execute(
        "UPDATE records SET meta_ct=?, meta_version=?, updated_at=? WHERE id=?",
        (ct, version, time.time(), rec["id"]),
    )
    search_index.replace_metadata(store.conn, store.index, rec["id"], old, meta)
    return version


def edit(
    store: RecordStore,
    settings: Settings,
    record_id: str,
    changes: Mapping[str, Any],
    *,
    actor: str,
    today: dt.date | None = None,
) -> dict[str, Any]:
    rec = _record(store, record_id)
    if rec["status"] not in ("draft", "confirmed"):
        raise RecordStateError(f"record {record_id} is {rec['status']}; its metadata can no longer change")
    changes = RecordMetadata.from_dict(changes).to_dict()  # accepts Chinese labels; rejects unknown keys
    changes = {k: v for k, v in changes.items() if k in _given(changes)}
    if locked := _LOCKED & set(changes):
        raise RecordStateError(f"{', '.join(sorted(locked))} cannot be edited by hand")
    stored = record_reader.metadata(store, rec)
    old = {**defaults(settings, rec["page_count"]), **stored}
    merged = normalise_metadata(RecordMetadata.from_dict({**old, **changes})).to_dict()
    new = {k: v for k, v in merged.items() if v not in (None, "")}
    problems = validate(
        RecordMetadata.from_dict(new),
        for_confirmation=rec["status"] == "confirmed",
        today=today or dt.date.today(),
    )
    if problems:
        raise MetadataRejected(problems)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not changed:
        return new
    with transaction(store.conn):
        rec = _record(store, record_id)  # re-read under the write lock
        if rec["status"] not in ("draft", "confirmed"):  # transferred meanwhile
            raise RecordStateError(
                f"record {record_id} is {rec['status']}; its metadata can no longer change"
            )
        version = _write(store, rec, new, stored or None)
        if rec["status"] == "confirmed":  # the archive must get the new version (sync.transfer)
            outbox.enqueue_package(store.conn, record_id, version)
        add_event(
            store.conn,
            rec["job_id"],
            "metadata modification",
            "success",
            {"fields": changed, "version": version},
            record_id=record_id,
            agent=actor,
        )
        store.audit.record(
            store.conn,
            actor,
            "metadata.edit",
            record_id,
            {"fields": changed, "version": version},
            sensitive={k: [old.get(k), new.get(k)] for k in changed},
        )
    return new


def _given(changes: Mapping[str, Any]) -> set[str]:
    """Fields the caller set (None = not given; "" = clear the field)."""
    return {k for k, v in changes.items() if v is not None}


def confirm(
    store: RecordStore, settings: Settings, record_id: str, *, actor: str, today: dt.date | None = None
) -> str:
    """Validate for archiving, assign the 档号, mark the record confirmed. Returns the 档号."""
    conn = store.conn
    with transaction(conn):
        rec = _record(store, record_id)
        if rec["status"] != "draft":
            raise RecordStateError(f"record {record_id} is already {rec['status']}")
        stored = record_reader.metadata(store, rec)
        meta = {**defaults(settings, rec["page_count"]), **stored}
        record = normalise_metadata(RecordMetadata.from_dict(meta))
        problems = validate(record, for_confirmation=True, today=today or dt.date.today())
        if problems:
            raise MetadataRejected(problems)
        meta = {k: v for k, v in record.to_dict().items() if v not in (None, "")}
        year = dt.date.fromisoformat(str(meta["date"])).year
        a = settings.archival
        prefix = ArchivalCodeParts(a.fonds, a.category, year, str(meta["retention"]), a.department, 1).prefix
        row = conn.execute("SELECT last_item FROM code_sequences WHERE prefix=?", (prefix,)).fetchone()
        item = (row[0] if row else 0) + 1
        conn.execute(
            "INSERT INTO code_sequences(prefix, last_item) VALUES (?, ?)"
            " ON CONFLICT(prefix) DO UPDATE SET last_item=excluded.last_item",
            (prefix, item),
        )
        code = format_archival_code(
            ArchivalCodeParts(a.fonds, a.category, year, str(meta["retention"]), a.department, item)
        )
        meta["archival_code"] = code
        version = _write(store, rec, meta, stored or None)
        now = time.time()
        outbox.enqueue_package(conn, record_id, version, at=now)  # 移交 (sync.transfer)
        conn.execute(
            "UPDATE records SET status='confirmed', code_token=?, code_prefix=?, code_item=?, confirmed_at=?,"
            " confirmed_by=? WHERE id=?",
            (store.index.exact("archival_code", code), prefix, item, now, actor, record_id),
        )
        add_event(
            conn,
            rec["job_id"],
            "archival code assignment",
            "success",
            {"archival_code": code},
            record_id=record_id,
            agent=actor,
        )
        store.audit.record(conn, actor, "record.confirm", record_id, {"archival_code": code})
    return code


def expiry(meta: Mapping[str, Any]) -> dt.date | None:
    """When the retention period ends: counted in whole years from 1 January after the record's
    year (Y: never)."""
    years = RETENTION_YEARS.get(str(meta.get("retention")))
    if years is None or not meta.get("date"):
        return None
    return dt.date(dt.date.fromisoformat(str(meta["date"])).year + years + 1, 1, 1)


def retention_report(
    store: RecordStore, settings: Settings, *, actor: str, today: dt.date
) -> list[dict[str, Any]]:
    """Confirmed or transferred records whose retention period has ended (for appraisal)."""
    out = []
    rows = store.conn.execute(
        "SELECT id FROM records WHERE status IN ('confirmed','transferred') ORDER BY code_prefix, code_item"
    ).fetchall()
    for (rid,) in rows:
        meta = current(store, settings, rid)
        end = expiry(meta)
        if end is not None and end <= today:
            item = {k: meta.get(k) for k in ("archival_code", "title", "retention", "date")}
            out.append({"record_id": rid, **item, "expired_on": end.isoformat()})
    with transaction(store.conn):
        store.audit.record(
            store.conn, actor, "retention.report", None, {"expired": len(out), "checked": len(rows)}
        )
    return out
