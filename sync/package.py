"""Build the signed transfer package of one record (``docs/transfer.md``).

The manifest is a pure function of the record's stored state: the same record version always
gives the same bytes and so the same idempotency key, however often it is rebuilt (after a crash,
after a lost response). Nothing personal is in the clear: metadata and OCR text travel as the
ciphertext the box stores, with the sealed DEK that only the archive can open.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance import record_reader
from appliance.blobstore import FileBlobStore
from appliance.context import Context
from appliance.errors import RecordNotFound, RecordShredded, StoreError
from sync import protocol
from sync.protocol import b64

PAGE_BLOBS = ("cleaned", "bilevel", "thumbnail")
TRANSFER_EVENT = "transfer"


class NotTransferable(StoreError):
    """The record cannot be packaged (not confirmed, shredded, or its data key is not sealed to
    the archive)."""

    code = "not_transferable"


@dataclass(frozen=True)
class BuiltPackage:
    package: dict[str, Any]
    body: bytes  # canonical JSON of ``package``: what is POSTed
    idempotency_key: str
    blob_refs: list[str]

    @property
    def record_id(self) -> str:
        return str(self.package["manifest"]["record_id"])

    @property
    def version(self) -> int:
        return int(self.package["manifest"]["record_version"])


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_blob_refs(conn: sqlite3.Connection, record_id: str) -> list[str]:
    """Every blob a record references: its master and each page's cleaned, bilevel and thumbnail
    copies (deduplicated, in a stable order)."""
    rec = conn.execute("SELECT master_blob FROM records WHERE id=?", (record_id,)).fetchone()
    if rec is None:
        raise RecordNotFound(f"no record {record_id}")
    refs = [str(rec[0])]
    for row in conn.execute(
        "SELECT cleaned_blob, bilevel_blob, thumb_blob FROM pages WHERE record_id=? ORDER BY idx",
        (record_id,),
    ):
        refs.extend(str(r) for r in row)
    return list(dict.fromkeys(refs))


def _aad(owner: str, name: str, key_id: str, version: int = 1) -> dict[str, Any]:
    return {"owner": owner, "version": version, "name": name, "key_id": key_id}


def _blob(blobs: FileBlobStore, ref: str, aad: dict[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "size": blobs.size(ref), "aad": aad}


def _plain(value: Any) -> Any:
    """Event details may hold floats (timings); signed documents carry none, so render them."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _events(conn: sqlite3.Connection, record_id: str, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT at, type, outcome, agent, page_idx, detail FROM events"
        " WHERE (record_id=? OR (record_id IS NULL AND job_id=?)) AND type != ? ORDER BY id",
        (record_id, job_id, TRANSFER_EVENT),
    ).fetchall()
    return [
        {
            "at": iso(float(r["at"])),
            "type": r["type"],
            "outcome": r["outcome"],
            "agent": r["agent"],
            "page_idx": r["page_idx"],
            "detail": _plain(json.loads(r["detail"])),
        }
        for r in rows
    ]


def _checkpoint(conn: sqlite3.Connection, as_of: float) -> dict[str, Any] | None:
    """The newest signed audit checkpoint made at or before ``as_of`` (deterministic: the
    checkpoints are append-only), so the archive keeps the box's audit chain anchored."""
    row = conn.execute(
        "SELECT seq, entry_hash, key_id, signature FROM audit_checkpoints WHERE at <= ?"
        " ORDER BY seq DESC LIMIT 1",
        (as_of,),
    ).fetchone()
    if row is None:
        return None
    return {
        "seq": int(row["seq"]),
        "entry_hash": row["entry_hash"],
        "key_id": row["key_id"],
        "signature": b64(bytes(row["signature"])),
    }


def build_manifest(ctx: Context, record_id: str) -> dict[str, Any]:
    conn = ctx.conn
    hall_id = ctx.settings.hall_id
    rec = conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    if rec is None:
        raise RecordNotFound(f"no record {record_id}")
    if rec["status"] == "shredded":
        raise RecordShredded(f"record {record_id} was shredded; there is nothing to transfer")
    if rec["status"] not in ("confirmed", "transferred") or rec["meta_ct"] is None:
        raise NotTransferable(
            f"record {record_id} is {rec['status']}: only confirmed records are transferred"
        )
    dek_id = str(rec["dek_id"])
    dek = conn.execute("SELECT sealed, archive_key_id FROM deks WHERE id=?", (dek_id,)).fetchone()
    if dek is None or dek["sealed"] is None:
        raise NotTransferable(f"record {record_id} has no data key sealed to the archive")
    archival_code = record_reader.metadata(ctx.store, rec).get("archival_code")
    if not archival_code:
        raise NotTransferable(f"record {record_id} has no 档号; confirm it first")
    blobs = ctx.store.blobs
    if not isinstance(blobs, FileBlobStore):
        raise StoreError("transfer needs the local file blob store")
    pages = []
    for p in conn.execute("SELECT * FROM pages WHERE record_id=? ORDER BY idx", (record_id,)):
        idx = int(p["idx"])
        refs = {"cleaned": p["cleaned_blob"], "bilevel": p["bilevel_blob"], "thumbnail": p["thumb_blob"]}
        pages.append(
            {
                "idx": idx,
                "width": int(p["width"]),
                "height": int(p["height"]),
                "channels": int(p["channels"]),
                "dpi": None if p["dpi_x"] is None else [round(p["dpi_x"]), round(p["dpi_y"] or p["dpi_x"])],
                "line_count": int(p["line_count"]),
                "ocr_engine": p["ocr_engine"],
                "blobs": {
                    kind: _blob(blobs, str(refs[kind]), _aad(record_id, f"page/{idx}/{kind}", dek_id))
                    for kind in PAGE_BLOBS
                },
                "ocr": {"ct": b64(bytes(p["ocr_ct"])), "aad": _aad(record_id, f"page/{idx}/ocr", dek_id)},
            }
        )
    master = {
        **_blob(blobs, str(rec["master_blob"]), _aad(record_id, "master", dek_id)),
        "format": rec["format"],
        "plain_size": int(rec["size"]),
    }
    listed = [master, *(b for page in pages for b in page["blobs"].values())]
    unique = {b["ref"]: b["size"] for b in listed}
    version = int(rec["meta_version"])
    as_of = max(float(rec["confirmed_at"] or 0), float(rec["updated_at"] or 0))
    return {
        "format": protocol.MANIFEST_FORMAT,
        "hall_id": hall_id,
        "record_id": record_id,
        "record_version": version,
        "archival_code": archival_code,
        "counter": rec["counter"],
        "created_at": iso(float(rec["created_at"])),
        "confirmed_at": iso(rec["confirmed_at"]),
        "confirmed_by": rec["confirmed_by"],
        "dek": {"id": dek_id, "archive_key_id": dek["archive_key_id"], "sealed": b64(bytes(dek["sealed"]))},
        "metadata": {"ct": b64(bytes(rec["meta_ct"])), "aad": _aad(record_id, "metadata", dek_id, version)},
        "master": master,
        "page_count": int(rec["page_count"]),
        "pages": pages,
        "events": _events(conn, record_id, str(rec["job_id"])),
        "audit_checkpoint": _checkpoint(conn, as_of),
        "fixity": {"algorithm": "sha-256", "blob_bytes": sum(unique.values()), "blob_count": len(unique)},
    }


def build_package(ctx: Context, record_id: str) -> BuiltPackage:
    """The signed package (device key) and its idempotency key. Read in one snapshot."""
    conn = ctx.conn
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")
    try:
        manifest = build_manifest(ctx, record_id)
        refs = record_blob_refs(conn, record_id)
    finally:
        if began:
            conn.execute("COMMIT")
    package = protocol.sign_package(ctx.store.keyring.keys.device_key(), manifest)
    key = protocol.idempotency_key(manifest["hall_id"], record_id, manifest["record_version"], manifest)
    return BuiltPackage(package, protocol.canonical_json(package), key, refs)
