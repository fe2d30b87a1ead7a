"""Replacing a dead box: rebuild its data dir from the replica, the recovery keys and the archive's
object store (``hall replica rebuild``).

What survives a dead box, and where it comes from:

* the catalog (records, pages, encrypted OCR text and metadata, 档号 counters, audit chain,
  outboxes): the Litestream replica, up to its last replicated transaction;
* the keys (hall keys, index key, the archive's pinned public keys, the device key if the kit
  holds it): the technician's recovery kit, a folder laid out like ``keys/``;
* the page blobs: the archive's object store, where the transfer outbox shipped every blob of
  every stored record (drafts too).

What does not survive, and is named in the report so nobody believes it is safe: files that were
in the spool and not yet processed (each job is quarantined as ``lost_with_device``, with its
original name, so the counter can ask for the paper again), quarantined originals, and blobs the
dead box had not shipped yet (their records are listed).

Order, so an interrupted rebuild can be run again: keys first (never overwriting a different
key), the catalog restored into a scratch file and renamed into place only once it opens with
those keys, then blobs (idempotent, each checked against its content address), then the lost jobs,
then every record is opened. A data dir that already has a catalog is refused unless it is the
resumption of a rebuild (``meta.rebuild_pending``).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from appliance import record_reader
from appliance.catalog import connect, transaction
from appliance.context import Context, check_keys, make_layout, open_context
from appliance.errors import HallError, KeyProblem
from appliance.fsutil import atomic_write, fsync_dir
from appliance.jobqueue import add_event
from appliance.keys import FileKeySource
from appliance.settings import Settings
from sync.blob_restore import FetchReport, fetch_missing
from sync.replica import restore
from sync.transfer import object_store

ACTOR = "system:rebuild"
LOST_CODE = "lost_with_device"
LOST_REASON = (
    "this file reached the replaced box but had not been processed when the box died; "
    "ask for the paper again and scan it"
)
_PENDING = "rebuild_pending"


class RebuildRefused(HallError):
    """The data dir or the recovery kit is not fit for a rebuild (the message says why)."""

    code = "rebuild_refused"


@dataclass
class RecordCheck:
    record_id: str
    archival_code: str | None
    pages: int
    ok: bool
    problem: str | None = None


@dataclass
class RebuildReport:
    hall_id: str
    keys_installed: list[str]
    device_key: str  # "kept" (from the kit) | "new" (re-enroll: hall enroll)
    catalog_bytes: int
    blobs: FetchReport
    records: list[RecordCheck] = field(default_factory=list)
    lost_jobs: list[dict[str, Any]] = field(default_factory=list)
    lost_quarantine: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unreadable(self) -> list[RecordCheck]:
        return [r for r in self.records if not r.ok]

    @property
    def complete(self) -> bool:
        return self.blobs.complete and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {
            "hall_id": self.hall_id,
            "complete": self.complete,
            "keys_installed": self.keys_installed,
            "device_key": self.device_key,
            "catalog_bytes": self.catalog_bytes,
            "blobs": self.blobs.to_dict(),
            "records": len(self.records),
            "records_opened": sum(r.ok for r in self.records),
            "unreadable": [r.__dict__ for r in self.unreadable],
            "lost_jobs": self.lost_jobs,
            "lost_quarantine": self.lost_quarantine,
            "seconds": round(self.seconds, 2),
        }


# --- keys -------------------------------------------------------------------------------------
_PUBLIC = ("archive.x25519.pub", "archive.ed25519.pub")
_SECRET = ("index.key", "device.ed25519")


def install_keys(kit: Path, settings: Settings) -> tuple[list[str], str]:
    """Copy the recovery kit's keys into ``keys/`` with the service's modes. A key already there
    must be byte-identical (a rebuild never replaces a key). Without a device key in the kit a
    new device identity is made. Returns (files written, "kept" | "new")."""
    if not kit.is_dir():
        raise RebuildRefused(f"recovery kit {kit} is not a folder (expected the layout of keys/)")
    kek_files = sorted((kit / "kek").glob("kek-*.key")) if (kit / "kek").is_dir() else []
    if not kek_files:
        raise RebuildRefused(
            f"recovery kit {kit} holds no hall key (kek/kek-*.key): the records cannot be opened"
        )
    for name in ("index.key", "archive.x25519.pub"):
        if not (kit / name).is_file():
            raise RebuildRefused(f"recovery kit {kit} lacks {name}")
    keys = FileKeySource(settings.keys_dir)
    wanted: list[tuple[Path, Path, int]] = [(p, keys.kek_dir / p.name, 0o400) for p in kek_files]
    wanted += [(kit / n, keys.dir / n, 0o400) for n in _SECRET if (kit / n).is_file()]
    wanted += [(kit / n, keys.dir / n, 0o444) for n in _PUBLIC if (kit / n).is_file()]
    for d in (keys.dir, keys.kek_dir):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    written = []
    for src, dest, mode in wanted:
        data = src.read_bytes()
        if dest.exists():
            if dest.read_bytes() != data:
                raise RebuildRefused(
                    f"{dest} already holds a different key than the recovery kit's {src.name}; "
                    "a rebuild never replaces a key: use an empty data dir"
                )
            continue
        atomic_write(dest, data, mode=mode)
        written.append(str(dest))
    device = "kept" if (kit / "device.ed25519").is_file() else "new"
    written += keys.create_missing(None)  # only the device key can be missing here
    return written, device


# --- catalog ----------------------------------------------------------------------------------
def _restore_catalog(settings: Settings, timeout_s: float) -> None:
    scratch = settings.data_dir / "catalog.restoring.db"
    for p in (scratch, scratch.with_name(scratch.name + "-wal"), scratch.with_name(scratch.name + "-shm")):
        p.unlink(missing_ok=True)  # left by an interrupted rebuild: restore again
    restore(settings, scratch, timeout_s=timeout_s)
    conn = connect(scratch, settings.store)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='appliance_id'").fetchone()
        if row is None or row[0] != settings.hall_id:
            raise RebuildRefused(
                f"the replica holds the catalog of appliance {row[0] if row else '(none)'!r}, not of "
                f"hall_id={settings.hall_id!r}: check [replication] in hall.toml"
            )
        with transaction(conn):
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_PENDING, str(time.time()))
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one self-contained file before the rename
    finally:
        conn.close()
    try:
        check_keys(FileKeySource(settings.keys_dir), settings, catalog=scratch)
    except KeyProblem as e:
        raise RebuildRefused(f"the recovery kit does not open the restored catalog: {e}") from None
    os.replace(scratch, settings.catalog_path)
    fsync_dir(settings.data_dir)


def _pending(settings: Settings) -> bool:
    conn = connect(settings.catalog_path, settings.store)
    try:
        return conn.execute("SELECT 1 FROM meta WHERE key=?", (_PENDING,)).fetchone() is not None
    finally:
        conn.close()


# --- what was lost with the box ---------------------------------------------------------------
def _quarantine_lost_jobs(ctx: Context) -> list[dict[str, Any]]:
    """Jobs taken by the dead box and not processed: their spool files died with it."""
    lost = []
    rows = ctx.conn.execute(
        "SELECT id, counter, received_at FROM jobs WHERE state IN ('received','processing')"
        " ORDER BY received_at"
    ).fetchall()
    for r in rows:
        if ctx.spool.data_path(r["id"]).exists():
            continue
        name = ctx.queue.name(r["id"]).display
        ctx.store.mark_quarantined(r["id"], LOST_CODE, LOST_REASON, keep=None)
        lost.append(
            {"job_id": r["id"], "counter": r["counter"], "name": name, "received_at": r["received_at"]}
        )
    return lost


def _lost_quarantine(ctx: Context) -> list[dict[str, Any]]:
    """Quarantined originals that were kept on the dead box's disk only."""
    out = []
    rows = ctx.conn.execute(
        "SELECT job_id, reason_code, path FROM quarantine WHERE path IS NOT NULL"
    ).fetchall()
    for r in rows:
        if (ctx.settings.quarantine_dir / Path(r["path"]).name).exists():
            continue  # kept where the original data dir had it (same name under quarantine/)
        with transaction(ctx.conn):
            ctx.conn.execute("UPDATE quarantine SET path=NULL WHERE job_id=?", (r["job_id"],))
            add_event(ctx.conn, r["job_id"], "quarantine", "failure", {"code": LOST_CODE, "kept": False})
        out.append(
            {
                "job_id": r["job_id"],
                "reason_code": r["reason_code"],
                "name": ctx.queue.name(r["job_id"]).display,
            }
        )
    return out


# --- opening every record ---------------------------------------------------------------------
def _decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def open_record(ctx: Context, record_id: str) -> RecordCheck:
    """Decrypt everything a record holds and decode its page images (no audit entry per record:
    this is the box checking itself, summarised in one ``device.rebuild`` entry)."""
    store = ctx.store
    rec = ctx.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
    pages = ctx.conn.execute("SELECT * FROM pages WHERE record_id=? ORDER BY idx", (record_id,)).fetchall()
    check = RecordCheck(record_id, None, len(pages), ok=False)
    try:
        record_reader.store_name(store, rec["job_id"], dek_id=rec["dek_id"])
        check.archival_code = record_reader.metadata(store, rec).get("archival_code")
        master = store.keyring.decrypt(
            ctx.conn, rec["dek_id"], record_id, "master", store.blobs.get(rec["master_blob"])
        )
        if len(master) != rec["size"]:
            raise ValueError(f"the master holds {len(master)} bytes, the catalog says {rec['size']}")
        if len(pages) != rec["page_count"]:
            raise ValueError(f"{len(pages)} pages in the catalog, page_count says {rec['page_count']}")
        for p in pages:
            record_reader.page_ocr(store, rec, p)
            for kind, column in record_reader.BLOB_COLUMNS.items():
                blob = store.blobs.get(p[column])
                _decode(
                    store.keyring.decrypt(ctx.conn, rec["dek_id"], record_id, f"page/{p['idx']}/{kind}", blob)
                )
    except (HallError, OSError, ValueError, json.JSONDecodeError) as e:
        check.problem = f"{type(e).__name__}: {e}"[:300]
        return check
    check.ok = True
    return check


# --- the whole drill --------------------------------------------------------------------------
def rebuild(
    settings: Settings,
    kit: Path,
    *,
    timeout_s: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Rebuild this (new, empty) data dir from the replica, the recovery kit and the object store."""
    say = progress or (lambda _msg: None)
    t0 = time.monotonic()
    if settings.catalog_path.exists() and not _pending(settings):
        raise RebuildRefused(
            f"{settings.data_dir} already has a catalog: a rebuild only fills a new, empty data dir "
            "(it never replaces a live catalog)"
        )
    make_layout(settings)
    installed, device = install_keys(kit, settings)
    say(f"keys installed ({len(installed)} files, device key {device})")
    if not settings.catalog_path.exists():
        _restore_catalog(settings, timeout_s)
    say(f"catalog restored from the replica ({settings.catalog_path.stat().st_size} bytes)")
    ctx = open_context(settings)
    try:
        store = object_store(settings)
        try:
            blobs = fetch_missing(ctx.conn, ctx.store.blobs, store, settings.hall_id)
        finally:
            close = getattr(store, "close", None)
            if callable(close):
                close()
        say(f"blobs: {blobs.fetched} fetched, {blobs.present} present, {len(blobs.missing)} missing")
        report = RebuildReport(
            settings.hall_id, installed, device, settings.catalog_path.stat().st_size, blobs
        )
        report.lost_jobs = _quarantine_lost_jobs(ctx)
        report.lost_quarantine = _lost_quarantine(ctx)
        ids = [
            r[0]
            for r in ctx.conn.execute("SELECT id FROM records WHERE status != 'shredded' ORDER BY created_at")
        ]
        report.records = [open_record(ctx, rid) for rid in ids]
        say(f"records opened: {sum(r.ok for r in report.records)} of {len(ids)}")
        report.seconds = time.monotonic() - t0
        with transaction(ctx.conn):
            detail = {k: v for k, v in report.to_dict().items() if k not in ("lost_jobs", "lost_quarantine")}
            detail["lost_jobs"] = len(report.lost_jobs)
            detail["lost_quarantine"] = len(report.lost_quarantine)
            detail["unreadable"] = [r.record_id for r in report.unreadable]
            ctx.audit.record(ctx.conn, ACTOR, "device.rebuild", settings.hall_id, detail)
            ctx.conn.execute("DELETE FROM meta WHERE key=?", (_PENDING,))
    finally:
        ctx.close()
    return report
