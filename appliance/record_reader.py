"""Reading records back: decrypt, and put every read of content by a person into the audit
chain *before* the content is returned (no audit entry, no content)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from appliance.catalog import transaction
from appliance.errors import RecordNotFound, RecordShredded

if TYPE_CHECKING:
    from appliance.records import RecordStore

BLOB_COLUMNS = {"cleaned": "cleaned_blob", "thumbnail": "thumb_blob", "bilevel": "bilevel_blob"}


def _record_row(store: RecordStore, record_id: str) -> Any:
    rec = store.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    if rec is None:
        raise RecordNotFound(f"no record {record_id!r}")
    if rec["status"] == "shredded":
        raise RecordShredded(f"record {record_id} was shredded; its content no longer exists")
    return rec


def _audit_view(store: RecordStore, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    with transaction(store.conn):
        store.audit.record(store.conn, actor, action, target, detail)


def metadata(store: RecordStore, rec: Any) -> dict[str, Any]:
    if rec["meta_ct"] is None:
        return {}
    data = store.keyring.decrypt(
        store.conn, rec["dek_id"], rec["id"], "metadata", bytes(rec["meta_ct"]), rec["meta_version"]
    )
    out: dict[str, Any] = json.loads(data)
    return out


def suggestions(store: RecordStore, rec: Any) -> dict[str, Any]:
    if rec["suggest_ct"] is None:
        return {}
    data = store.keyring.decrypt(
        store.conn, rec["dek_id"], rec["id"], "suggestions", bytes(rec["suggest_ct"])
    )
    out: dict[str, Any] = json.loads(data)
    return out


def page_ocr(store: RecordStore, rec: Any, page: Any) -> dict[str, Any]:
    data = store.keyring.decrypt(
        store.conn, rec["dek_id"], rec["id"], f"page/{page['idx']}/ocr", bytes(page["ocr_ct"])
    )
    out: dict[str, Any] = json.loads(data)
    return out


def texts(store: RecordStore, record_id: str) -> dict[str, str]:
    """Decrypted page texts by index part name (``page:<idx>``) — internal use (index upkeep),
    not audited as a view."""
    rec = _record_row(store, record_id)
    out = {}
    for p in store.conn.execute("SELECT idx, ocr_ct FROM pages WHERE record_id=? ORDER BY idx", (record_id,)):
        out[f"page:{p['idx']}"] = str(page_ocr(store, rec, p)["text"])
    return out


def load(store: RecordStore, record_id: str, *, actor: str, search_id: int | None = None) -> dict[str, Any]:
    """The decrypted record. ``search_id``: the audit seq of the search that led here."""
    conn = store.conn
    rec = _record_row(store, record_id)
    _audit_view(store, actor, "record.view", record_id, {} if search_id is None else {"search": search_id})
    job = conn.execute("SELECT * FROM jobs WHERE id=?", (rec["job_id"],)).fetchone()
    hidden = {"meta_ct", "suggest_ct", "code_token", "fingerprint", "dek_id"}
    out: dict[str, Any] = {k: rec[k] for k in rec.keys() if k not in hidden}  # noqa: SIM118 - sqlite3.Row
    name = store_name(store, rec["job_id"], dek_id=rec["dek_id"])
    out["original_name"] = name
    out["landed_at"] = job["landed_at"]
    out["received_at"] = job["received_at"]
    out["stored_at"] = job["finished_at"]
    out["metadata"] = metadata(store, rec)
    out["suggestions"] = suggestions(store, rec)
    pages = []
    for p in conn.execute("SELECT * FROM pages WHERE record_id=? ORDER BY idx", (record_id,)):
        ocr = page_ocr(store, rec, p)
        page = {k: p[k] for k in p.keys() if k not in ("record_id", "clean_report", "ocr_ct")}  # noqa: SIM118
        page["index"] = p["idx"]
        page["clean_report"] = json.loads(p["clean_report"])
        page["text"] = ocr["text"]
        page["lines"] = ocr["lines"]
        pages.append(page)
    out["pages"] = pages
    out["events"] = [
        {
            "at": e["at"],
            "type": e["type"],
            "outcome": e["outcome"],
            "agent": e["agent"],
            "page": e["page_idx"],
            "detail": json.loads(e["detail"]),
        }
        for e in conn.execute("SELECT * FROM events WHERE job_id=? ORDER BY id", (rec["job_id"],))
    ]
    return out


def store_name(store: RecordStore, job_id: str, *, dek_id: str | None = None) -> str:
    """The original file name. Given the record's ``dek_id``, it is opened with the record's
    key, so a record whose plaintext ``job_id`` link was re-pointed fails authentication
    instead of showing another file's name."""
    row = store.conn.execute("SELECT name_ct FROM jobs WHERE id=?", (job_id,)).fetchone()
    if row is None:
        raise RecordNotFound(f"no job {job_id!r}")
    key = job_id if dek_id is None else dek_id
    data = json.loads(store.keyring.decrypt(store.conn, key, job_id, "job/name", bytes(row[0])))
    return str(data["display"])


def page_image(store: RecordStore, record_id: str, idx: int, kind: str, *, actor: str) -> bytes:
    if kind not in BLOB_COLUMNS:
        raise ValueError(f"unknown page image kind {kind!r}; expected one of {sorted(BLOB_COLUMNS)}")
    rec = _record_row(store, record_id)
    row = store.conn.execute(
        f"SELECT {BLOB_COLUMNS[kind]} FROM pages WHERE record_id=? AND idx=?", (record_id, idx)
    ).fetchone()
    if row is None:
        raise RecordNotFound(f"no page {idx} in record {record_id!r}")
    _audit_view(store, actor, "page.view", record_id, {"page": idx, "kind": kind})
    blob = store.blobs.get(row[0])
    return store.keyring.decrypt(store.conn, rec["dek_id"], record_id, f"page/{idx}/{kind}", blob)


def master(store: RecordStore, record_id: str, *, actor: str) -> bytes:
    rec = _record_row(store, record_id)
    _audit_view(store, actor, "master.view", record_id, {})
    blob = store.blobs.get(rec["master_blob"])
    return store.keyring.decrypt(store.conn, rec["dek_id"], record_id, "master", blob)


def latest_quarantine(
    store: RecordStore, limit: int, *, include_decided: bool = True
) -> list[dict[str, Any]]:
    where = "" if include_decided else " WHERE q.decision IS NULL"
    rows = store.conn.execute(
        "SELECT q.job_id, q.reason_code, q.reason, q.path IS NOT NULL AS kept, q.at, q.decision,"
        " q.decided_by, j.counter"
        f" FROM quarantine q JOIN jobs j ON j.id=q.job_id{where} ORDER BY q.at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    out = []
    for r in rows:
        item = dict(r)
        try:
            item["original_name"] = store_name(store, r["job_id"])
        except RecordShredded:
            item["original_name"] = "(shredded)"
        out.append(item)
    return out
