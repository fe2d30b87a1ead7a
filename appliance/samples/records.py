"""Synthetic records written straight into a store (no images, no OCR): for tests of the
encrypted store and for the search benchmark at 100,000 records.

Each record gets the text lines of a generated application form (the same forms the scan
generator draws) as its OCR text, so names, ID numbers, phone numbers, addresses, dates and
form words are realistic and known. The store path is the real one: a job with its own data
key, :class:`~appliance.records.RecordWriter` encryption and blind indexing, audit entries.
Many records share one transaction (``batch``) so that 100,000 load in minutes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.catalog import transaction
from appliance.jobqueue import Job, NewJob
from appliance.records import NewPage, OcrLine
from appliance.samples.forms import FormContent, format_date, make_form_content

if TYPE_CHECKING:
    from appliance.context import Context


@dataclass(frozen=True)
class SyntheticRecord:
    record_id: str
    content: FormContent
    lines: list[str]


def form_lines(c: FormContent) -> list[str]:
    """The form's text in reading order, as OCR would return it."""
    p = c.person
    lines = [
        c.title,
        f"编号：{c.serial}",
        f"申请日期：{format_date(c.apply_date, c.date_style)}",
        "姓名",
        p.name,
        "性别",
        p.sex,
        "民族",
        p.ethnicity,
        "出生日期",
        format_date(p.birth_date, c.date_style),
        "联系电话",
        p.phone,
        "公民身份号码",
        p.id_number,
        "住址",
        p.address,
        c.matter_label,
        c.matter,
    ]
    for label, value in c.extra_rows:
        lines += [label, value]
    lines += ["家庭成员信息", "姓名", "与申请人关系", "公民身份号码", "联系电话"]
    for name, relation, id_number, phone in c.family:
        lines += [name, relation, id_number] + ([phone] if phone else [])
    lines += ["申请人承诺：", c.declaration, "申请人签名：", format_date(c.apply_date, c.date_style)]
    approved = format_date(c.approve_date, c.date_style)
    lines += ["审核意见：", c.opinion, f"经办人：{c.clerk}", c.unit_name, approved]
    lines += ["附件：", *c.attachments]
    return lines


def _encoded_images(rng: random.Random, image_bytes: int) -> tuple[bytes, bytes, bytes, tuple[int, int]]:
    """A real JPEG of noise (about ``image_bytes``), a JPEG thumbnail and a PNG bilevel copy, so
    that a receiver can decode every page. Noise compresses poorly: about 1 byte per pixel."""
    import cv2
    import numpy as np

    side = max(16, int(image_bytes**0.5))
    gen = np.random.default_rng(rng.getrandbits(32))
    pixels = gen.integers(0, 256, size=(side, side), dtype=np.uint8)
    ok1, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    ok2, thumb = cv2.imencode(".jpg", pixels[:16, :16], [cv2.IMWRITE_JPEG_QUALITY, 80])
    ok3, bilevel = cv2.imencode(".png", np.where(pixels > 127, 255, 0).astype(np.uint8))
    if not (ok1 and ok2 and ok3):
        raise RuntimeError("OpenCV could not encode a synthetic image")
    return jpeg.tobytes(), thumb.tobytes(), bilevel.tobytes(), (side, side)


def _sized_images(
    rng: random.Random, sizes: tuple[int, int, int, int]
) -> tuple[bytes, bytes, bytes, bytes, tuple[int, int]]:
    """Master, cleaned, bilevel and thumbnail of about the given encoded sizes (bytes), each a real
    image of noise (JPEG about 0.8 byte per pixel, 1-bit PNG about 0.13), for transfer benchmarks."""
    import cv2
    import numpy as np

    gen = np.random.default_rng(rng.getrandbits(32))

    def noise(nbytes: int, per_pixel: float) -> np.ndarray:
        side = max(16, int((nbytes / per_pixel) ** 0.5))
        return gen.integers(0, 256, size=(side, side), dtype=np.uint8)

    master_px, cleaned_px = noise(sizes[0], 0.8), noise(sizes[1], 0.8)
    bilevel_px, thumb_px = noise(sizes[2], 0.13), noise(sizes[3], 0.8)
    out = [
        cv2.imencode(".jpg", master_px, [cv2.IMWRITE_JPEG_QUALITY, 90]),
        cv2.imencode(".jpg", cleaned_px, [cv2.IMWRITE_JPEG_QUALITY, 90]),
        cv2.imencode(
            ".png", np.where(bilevel_px > 127, 255, 0).astype(np.uint8), [cv2.IMWRITE_PNG_BILEVEL, 1]
        ),
        cv2.imencode(".jpg", thumb_px, [cv2.IMWRITE_JPEG_QUALITY, 90]),
    ]
    if not all(ok for ok, _ in out):
        raise RuntimeError("OpenCV could not encode a synthetic image")
    master, cleaned, bilevel, thumb = (buf.tobytes() for _, buf in out)
    return master, cleaned, bilevel, thumb, (cleaned_px.shape[1], cleaned_px.shape[0])


def _page(
    idx: int,
    lines: list[str],
    image: bytes,
    *,
    thumbnail: bytes | None = None,
    bilevel: bytes | None = None,
    size: tuple[int, int] = (1654, 2339),
) -> NewPage:
    ocr = []
    for i, t in enumerate(lines):
        top, bottom = 30.0 * i, 30.0 * i + 24
        ocr.append(OcrLine(t, ((0.0, top), (900.0, top), (900.0, bottom), (0.0, bottom)), 0.97))
    return NewPage(
        idx=idx,
        width=size[0],
        height=size[1],
        channels=1,
        dpi=(200.0, 200.0),
        source="synthetic",
        cleaned=image,
        thumbnail=image[:64] if thumbnail is None else thumbnail,
        bilevel=image[:32] if bilevel is None else bilevel,
        clean_report={"synthetic": True},
        orientation=0,
        ocr_engine="synthetic",
        ocr_ms=0.0,
        lines=ocr,
    )


def add_records(
    app: Context,
    count: int,
    *,
    seed: int = 0,
    batch: int = 200,
    image_bytes: int = 256,
    valid_images: bool = False,
    page_bytes: tuple[int, int, int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SyntheticRecord]:
    """Write ``count`` records; returns what each contains (its truth). With ``valid_images``
    the master and page blobs are real encoded images (a JPEG of noise of about
    ``image_bytes``) that decode; otherwise random bytes (enough for store and search tests).
    ``page_bytes`` (implies ``valid_images``): about how large the master, cleaned, bilevel and
    thumbnail images are, each its own image (realistic sizes for transfer benchmarks)."""
    rng = random.Random(seed)
    conn = app.conn
    out: list[SyntheticRecord] = []
    while len(out) < count:
        pending = []
        for _ in range(min(batch, count - len(out))):
            content = make_form_content(rng)
            lines = form_lines(content)
            job_id = uuid.UUID(int=rng.getrandbits(128)).hex
            pending.append((job_id, content, lines))
        with transaction(conn):
            for job_id, content, lines in pending:
                fp = uuid.UUID(int=rng.getrandbits(128)).hex * 2
                name = f"{content.person.name}.jpg"
                app.queue.insert(NewJob(job_id, "synthetic", name, name.encode(), "cli", fp, 1000, None, 0.0))
                conn.execute("UPDATE jobs SET state='processing', worker='synthetic' WHERE id=?", (job_id,))
                job = Job.from_row(conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())
                if page_bytes is not None:
                    image, cleaned, bilevel, thumb, size = _sized_images(rng, page_bytes)
                    page = _page(1, lines, cleaned, thumbnail=thumb, bilevel=bilevel, size=size)
                elif valid_images:
                    image, thumb, bilevel, size = _encoded_images(rng, image_bytes)
                    page = _page(1, lines, image, thumbnail=thumb, bilevel=bilevel, size=size)
                else:
                    image = rng.randbytes(image_bytes)
                    page = _page(0, lines, image)
                writer = app.store.begin(job, "jpeg", image)
                writer.add_page(page)
                writer.write()
                out.append(SyntheticRecord(writer.record_id, content, lines))
        if progress is not None:
            progress(len(out))
    return out


def archive_metadata(r: SyntheticRecord) -> dict[str, str]:
    """The metadata a clerk would enter for a synthetic record (enough to confirm it)."""
    c = r.content
    return {
        "title": c.title,
        "date": c.apply_date.isoformat(),
        "matter": c.matter,
        "applicant": c.person.name,
    }


def confirm_records(app: Context, records: list[SyntheticRecord], *, actor: str = "user:sample") -> list[str]:
    """Enter the metadata of each record and confirm it (assigns the 档号); returns the 档号."""
    from appliance import record_metadata

    codes = []
    for r in records:
        record_metadata.edit(app.store, app.settings, r.record_id, archive_metadata(r), actor=actor)
        codes.append(record_metadata.confirm(app.store, app.settings, r.record_id, actor=actor))
    return codes
