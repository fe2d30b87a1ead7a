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


def _page(idx: int, lines: list[str], image: bytes) -> NewPage:
    ocr = []
    for i, t in enumerate(lines):
        top, bottom = 30.0 * i, 30.0 * i + 24
        ocr.append(OcrLine(t, ((0.0, top), (900.0, top), (900.0, bottom), (0.0, bottom)), 0.97))
    return NewPage(
        idx=idx,
        width=1654,
        height=2339,
        channels=1,
        dpi=(200.0, 200.0),
        source="synthetic",
        cleaned=image,
        thumbnail=image[:64],
        bilevel=image[:32],
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
    progress: Callable[[int], None] | None = None,
) -> list[SyntheticRecord]:
    """Write ``count`` records; returns what each contains (its truth)."""
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
                image = rng.randbytes(image_bytes)
                writer = app.store.begin(job, "jpeg", image)
                writer.add_page(_page(0, lines, image))
                writer.write()
                out.append(SyntheticRecord(writer.record_id, content, lines))
        if progress is not None:
            progress(len(out))
    return out
