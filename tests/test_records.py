"""The record store: one atomic commit per record, duplicates by content, lost claims refused."""

from __future__ import annotations

import pytest

from appliance.context import Context
from appliance.jobqueue import LostClaim, NewJob
from appliance.records import DuplicateRecord, NewPage, OcrLine


def _page(idx: int) -> NewPage:
    return NewPage(
        idx=idx,
        width=10,
        height=10,
        channels=1,
        dpi=(200.0, 200.0),
        source="png",
        cleaned=f"cleaned{idx}".encode(),
        thumbnail=f"thumb{idx}".encode(),
        bilevel=f"bilevel{idx}".encode(),
        clean_report={"deskew_deg": 1.5},
        orientation=0,
        ocr_engine="test",
        ocr_ms=1.0,
        lines=[OcrLine("公民身份号码", ((0, 0), (9, 0), (9, 4), (0, 4)), 0.98)],
    )


def _job(ctx: Context, n: int, sha: str) -> NewJob:
    job = NewJob(f"{n:032x}", "c", f"f{n}.png", b"f", "drop", sha, 3, None, 0.0)
    ctx.queue.enqueue(job)
    return job


def test_commit_writes_record_pages_lines_and_job_state_together(ctx: Context) -> None:
    _job(ctx, 1, "a" * 64)
    job = ctx.queue.claim("w0")
    assert job is not None
    w = ctx.store.begin(job, "png", b"master")
    w.add_page(_page(0))
    w.add_page(_page(1))
    rid = w.commit()
    rec = ctx.store.get(rid, actor="test")
    assert rec["page_count"] == 2 and [p["index"] for p in rec["pages"]] == [0, 1]
    assert rec["pages"][0]["lines"][0]["text"] == "公民身份号码"
    assert ctx.store.master(rid, actor="test") == b"master"
    assert ctx.store.page_blob(rid, 1, "thumbnail", actor="test") == b"thumb1"
    assert ctx.queue.get(job.id).state == "stored"  # type: ignore[union-attr]
    assert [e["type"] for e in rec["events"]][-1] == "storage"


def test_same_bytes_twice_is_a_duplicate_not_a_second_record(ctx: Context) -> None:
    _job(ctx, 1, "b" * 64)
    _job(ctx, 2, "b" * 64)
    first, second = ctx.queue.claim("w0"), ctx.queue.claim("w1")
    assert first and second
    w1 = ctx.store.begin(first, "png", b"m")
    w2 = ctx.store.begin(second, "png", b"m")
    rid = w1.commit()
    with pytest.raises(DuplicateRecord) as exc:
        w2.commit()
    assert exc.value.record_id == rid
    assert ctx.queue.conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 1


def test_a_worker_that_lost_its_claim_cannot_commit(ctx: Context) -> None:
    _job(ctx, 1, "c" * 64)
    stale = ctx.queue.claim("w0")
    assert stale is not None
    ctx.queue.recover_after_restart()  # service restarted; the job is requeued ...
    fresh = ctx.queue.claim("w1")  # ... and taken by another worker
    assert fresh is not None
    with pytest.raises(LostClaim):
        ctx.store.begin(stale, "png", b"m").commit()
    rid = ctx.store.begin(fresh, "png", b"m").commit()
    row = ctx.queue.conn.execute("SELECT state, record_id FROM jobs WHERE id=?", (fresh.id,)).fetchone()
    assert (row["state"], row["record_id"]) == ("stored", rid)
    with pytest.raises(LostClaim):
        ctx.store.mark_duplicate(stale, rid)
