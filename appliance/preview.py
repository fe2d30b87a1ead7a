"""Intake previews: within about a second of a file landing, before OCR, a thumbnail of its first
page and the quality flags of its first pages, so the clerk sees a bad scan while the citizen is
still at the counter. Made by the service right after the file is taken (decode in the sandbox,
native clean-up only), stored encrypted under the job's key, announced as a ``preview`` event.
The full record (all pages, OCR) follows from the workers as before."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import cv2

from appliance import imaging
from appliance.catalog import transaction
from appliance.context import Context
from appliance.decoding import decode_sandboxed
from appliance.errors import HallError
from appliance.jobqueue import add_event

log = logging.getLogger(__name__)
PREVIEW_PAGES = 4
RESCAN_FLAGS = frozenset({"blank", "blurry", "too_dark", "low_dpi", "duplicate"})


def make_preview(ctx: Context, job_id: str) -> bool:
    """Build and store the preview of a received job; False when there is nothing to show
    (the file is already processed, or it cannot be decoded — the worker quarantines it)."""
    row = ctx.conn.execute(
        "SELECT state, spool_path, counter, fingerprint FROM jobs WHERE id=?", (job_id,)
    ).fetchone()
    if row is None or row["spool_path"] is None or row["state"] not in ("received", "processing"):
        return False
    src = Path(row["spool_path"])
    scratch = ctx.settings.scratch_dir / f"preview-{job_id}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            pages = decode_sandboxed(src, ctx.settings.decode, scratch, first_pages=PREVIEW_PAGES)
        except (HallError, FileNotFoundError):
            return False
        if not pages:
            return False
        flags: list[list[str]] = []
        thumb = b""
        for i, page in enumerate(pages):
            cleaned = imaging.clean_page(
                page.load(), thumbnail_max_side=ctx.settings.clean.thumbnail_max_side
            )
            flags.append(list(cleaned.report.flags))
            if i == 0:
                ok, buf = cv2.imencode(".jpg", cleaned.thumbnail, [cv2.IMWRITE_JPEG_QUALITY, 80])
                thumb = bytes(buf.tobytes()) if ok else b""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    duplicate = ctx.store.find_by_fingerprint(row["fingerprint"]) is not None if row["fingerprint"] else False
    every = sorted({f for page_flags in flags for f in page_flags} | ({"duplicate"} if duplicate else set()))
    rescan = bool(RESCAN_FLAGS & set(every))
    sealed = ctx.keyring.encrypt(ctx.conn, job_id, job_id, "preview/thumbnail", thumb)
    ref = ctx.store.blobs.put(sealed)
    with transaction(ctx.conn):
        ctx.conn.execute(
            "INSERT OR REPLACE INTO previews(job_id, thumb_blob, pages, flags, rescan, at)"
            " VALUES (?,?,?,?,?,?)",
            (job_id, ref, len(pages), json.dumps(flags), int(rescan), time.time()),
        )
        detail = {
            "pages": len(pages),
            "flags": every,
            "page_flags": flags,
            "rescan": rescan,
            "counter": row["counter"],
        }
        add_event(ctx.conn, job_id, "preview", "success", detail)
    return True


def preview_image(ctx: Context, job_id: str) -> bytes | None:
    row = ctx.conn.execute("SELECT thumb_blob FROM previews WHERE job_id=?", (job_id,)).fetchone()
    if row is None:
        return None
    return ctx.keyring.decrypt(ctx.conn, job_id, job_id, "preview/thumbnail", ctx.store.blobs.get(row[0]))
