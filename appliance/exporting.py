"""Exporting a record out of the box's protection: the decrypted original, each cleaned page and
the metadata with its processing history, named after the 档号 when there is one (DA/T 31: file
names derive from the 档号). The export is one audit entry, written before anything leaves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import record_reader
from appliance.catalog import transaction
from appliance.fsutil import atomic_write

if TYPE_CHECKING:
    from appliance.records import RecordStore

_EXT = {"jpeg": "jpg", "png": "png", "tiff": "tif", "pdf": "pdf"}


def export_record(store: RecordStore, record_id: str, out_dir: Path, *, actor: str) -> list[Path]:
    rec_row = store.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    meta = record_reader.metadata(store, rec_row) if rec_row is not None else {}
    stem = str(meta.get("archival_code") or record_id).replace("·", "-")
    with transaction(store.conn):
        store.audit.record(store.conn, actor, "record.export", record_id, {"to": "folder", "stem": stem})
    rec = record_reader.load(store, record_id, actor=actor)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    master = out_dir / f"{stem}.{_EXT.get(rec['format'], 'bin')}"
    atomic_write(master, record_reader.master(store, record_id, actor=actor), mode=0o600)
    written.append(master)
    for page in rec["pages"]:
        path = out_dir / f"{stem}-{page['index'] + 1:04d}.jpg"
        atomic_write(
            path,
            record_reader.page_image(store, record_id, page["index"], "cleaned", actor=actor),
            mode=0o600,
        )
        written.append(path)
    summary = {k: rec[k] for k in ("id", "status", "format", "page_count", "created_at", "original_name")}
    summary |= {
        "metadata": rec["metadata"],
        "events": rec["events"],
        "text": [p["text"] for p in rec["pages"]],
    }
    info = out_dir / f"{stem}.json"
    atomic_write(info, json.dumps(summary, ensure_ascii=False, indent=2).encode(), mode=0o600)
    written.append(info)
    os.sync()
    return written
