"""The per-file pipeline, top to bottom: duplicate check → decode (sandboxed) → for each page:
clean (native kernels) → OCR → encode → store; then one commit. Bad input is quarantined with
its reason; nothing is dropped."""

from __future__ import annotations

import io
import logging
import shutil
import time
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from appliance import imaging
from appliance.decoding import DecodedPage, decode_sandboxed, sniff_format
from appliance.errors import DecodeError, HallError
from appliance.jobqueue import Job, JobQueue, LostClaim
from appliance.ocr import OcrEngine
from appliance.reading_order import rotate_lines_180, sort_lines
from appliance.records import DuplicateRecord, NewPage, RecordStore
from appliance.settings import Settings
from appliance.spool import Spool

log = logging.getLogger(__name__)

FLIPPED_PAGE_SHARE = 0.6  # above this share of upside-down text, the page itself is upside down


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # stored | quarantined | duplicate | retry
    record_id: str | None = None
    pages: int = 0
    reason: str | None = None
    reason_code: str | None = None


def _encode_g4(bilevel: np.ndarray) -> bytes:
    """The bilevel archive/access copy as CCITT Group 4 TIFF (lossless, the archive's bilevel format)."""
    buf = io.BytesIO()
    Image.fromarray(bilevel).convert("1").save(buf, "TIFF", compression="group4")
    return buf.getvalue()


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise HallError("could not encode a page image as JPEG")
    return bytes(buf)


class Pipeline:
    def __init__(
        self, settings: Settings, queue: JobQueue, store: RecordStore, spool: Spool, engine: OcrEngine
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.store = store
        self.spool = spool
        self.engine = engine

    def process(self, job: Job) -> Outcome:
        """Run one claimed job to a final state (or back to the queue on an unexpected error)."""
        try:
            outcome = self._run(job)
        except LostClaim:
            log.warning("job %s was requeued while this worker held it; dropping this attempt", job.id)
            return Outcome(job.id, "retry", reason="lost claim")
        except Exception as e:  # unexpected: retry, then give up into quarantine
            log.exception("job %s failed", job.id)
            reason = f"processing failed: {type(e).__name__}: {e}"
            if job.attempts >= self.settings.pipeline.max_attempts:
                return self._quarantine(
                    job, "processing_failed", f"{reason} (gave up after {job.attempts} attempts)"
                )
            self.queue.release(job.id, reason)
            return Outcome(job.id, "retry", reason=reason)
        self.spool.finish(job.id, outcome.status)
        return outcome

    def _quarantine(self, job: Job, code: str, reason: str) -> Outcome:
        self.store.mark_quarantined(job.id, code, reason, keep=self.store.quarantine_path(job.id), owner=job)
        self.spool.finish(job.id, "quarantined")
        return Outcome(job.id, "quarantined", reason=reason, reason_code=code)

    def _run(self, job: Job) -> Outcome:
        assert job.spool_path is not None and job.fingerprint is not None
        first = self.store.find_by_fingerprint(job.fingerprint)
        if first is not None:
            self.store.mark_duplicate(job, first)
            return Outcome(job.id, "duplicate", record_id=first)
        scratch = self.settings.scratch_dir / job.id
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            try:
                with job.spool_path.open("rb") as f:
                    fmt = sniff_format(f.read(1024))
                t0 = time.perf_counter()
                pages = decode_sandboxed(job.spool_path, self.settings.decode, scratch)
                decode_ms = (time.perf_counter() - t0) * 1000
            except DecodeError as e:
                return self._quarantine(job, e.code, str(e))
            if not pages:
                return self._quarantine(job, "no_pages", "the file contains no pages")
            writer = self.store.begin(job, fmt, job.spool_path.read_bytes())
            for decoded in pages:
                writer.add_page(self._page(decoded))
                decoded.path.unlink(missing_ok=True)
            try:
                record_id = writer.commit(
                    [
                        ("format identification", "success", {"format": fmt}),
                        ("decoding", "success", {"pages": len(pages), "ms": round(decode_ms, 1)}),
                    ]
                )
            except DuplicateRecord as d:  # a concurrent job stored the same bytes first
                self.store.mark_duplicate(job, d.record_id)
                return Outcome(job.id, "duplicate", record_id=d.record_id)
            return Outcome(job.id, "stored", record_id=record_id, pages=len(pages))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _page(self, decoded: DecodedPage) -> NewPage:
        cs = self.settings.clean
        t0 = time.perf_counter()
        cleaned = imaging.clean_page(
            decoded.load(), thumbnail_max_side=cs.thumbnail_max_side, max_skew_deg=cs.max_skew_deg
        )
        clean_ms = (time.perf_counter() - t0) * 1000
        ocr = self.engine.read(cleaned.ocr_input)
        image, thumb, bilevel, lines = cleaned.image, cleaned.thumbnail, cleaned.bilevel, ocr.lines
        height, width = image.shape[:2]
        native_orientation = cleaned.report.orientation_deg  # already applied by clean_page
        orientation = native_orientation
        corrected = bool(lines) and ocr.flipped_share > FLIPPED_PAGE_SHARE
        if corrected:  # the OCR direction classifier overrules the native estimate
            orientation = (orientation + 180) % 360
            image, thumb, bilevel = (np.ascontiguousarray(a[::-1, ::-1]) for a in (image, thumb, bilevel))
            lines = rotate_lines_180(lines, width, height)
        lines = sort_lines(lines)
        report = cleaned.report.to_dict()
        events: list[tuple[str, str, dict[str, object]]] = [
            (
                "deskew",
                "success",
                {"angle_deg": report["deskew_deg"], "confidence": report["skew_confidence"]},
            ),
            ("crop", "success", {"box": report["crop_box"], "border_share": report["border_share"]}),
            ("clean-up", "success", {"ms": round(clean_ms, 1)}),
        ]
        if orientation:
            by = "ocr direction classifier" if corrected else "native estimate"
            detail = {"rotated_deg": orientation, "by": by, "confidence": report["orientation_confidence"]}
            events.append(("orientation", "success", detail))
        events.append(("quality check", "success", {"flags": report["flags"], "blank": report["blank"]}))
        events.append(
            (
                "ocr",
                "success",
                {"engine": self.engine.name, "lines": len(lines), "ms": round(ocr.elapsed_ms, 1)},
            )
        )
        return NewPage(
            idx=decoded.index,
            width=width,
            height=height,
            channels=1 if image.ndim == 2 else 3,
            dpi=decoded.dpi,
            source=decoded.source,
            cleaned=_encode_jpeg(image, cs.cleaned_jpeg_quality),
            bilevel=_encode_g4(bilevel),
            thumbnail=_encode_jpeg(thumb, 80),
            clean_report={**report, "orientation_applied_by_decoder": decoded.orientation_applied},
            orientation=orientation,
            ocr_engine=self.engine.name,
            ocr_ms=round(ocr.elapsed_ms, 1),
            lines=lines,
            events=events,
        )


def job_outcome(queue: JobQueue, job_id: str) -> Outcome:
    """The outcome of a finished job, read back from the catalog."""
    row = queue.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    pages = 0
    record = row["record_id"] or row["duplicate_of"]
    if row["state"] == "stored":
        pages = queue.conn.execute(
            "SELECT page_count FROM records WHERE id=?", (row["record_id"],)
        ).fetchone()[0]
    return Outcome(
        job_id,
        row["state"],
        record_id=record,
        pages=pages,
        reason=row["last_error"] if row["state"] == "quarantined" else None,
        reason_code=row["reason_code"],
    )
