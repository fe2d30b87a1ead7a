"""Live intake: the queue, the event stream (server-sent events), intake previews, quarantine."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from appliance.accounts import Accounts
from appliance.api.deps import CtxDep, Principal, errors, problem, require
from appliance.catalog import transaction
from appliance.context import Context
from appliance.jobqueue import add_event
from appliance.preview import preview_image

router = APIRouter(tags=["intake"])
NO_STORE = {"Cache-Control": "no-store, private"}
QueueViewer = Annotated[Principal, require("queue.view")]
IntakeViewer = Annotated[Principal, require("intake.view")]
QuarantineViewer = Annotated[Principal, require("quarantine.view")]
QuarantineDecider = Annotated[Principal, require("quarantine.decide")]
EVENT_TYPES = {
    "ingestion": "job.received",
    "preview": "job.preview",
    "storage": "job.stored",
    "quarantine": "job.quarantined",
    "duplicate detection": "job.duplicate",
}
POLL_S = 0.1
QUEUE_EVERY_S = 5.0
SESSION_CHECK_S = 30.0
MAX_EVENT_ID = 2**63 - 1  # event ids are SQLite integers


class Decision(BaseModel):
    action: Literal["retry", "dismiss"]
    note: str = Field(default="", max_length=500)


def _job_summary(ctx: Context, row: Any) -> dict[str, Any]:
    prev = ctx.conn.execute(
        "SELECT pages, flags, rescan FROM previews WHERE job_id=?", (row["id"],)
    ).fetchone()
    pages = row["pages"] if "pages" in row.keys() else None  # noqa: SIM118 - sqlite3.Row
    return {
        "id": row["id"],
        "counter": row["counter"],
        "state": row["state"],
        "landed_at": row["landed_at"],
        "received_at": row["received_at"],
        "finished_at": row["finished_at"],
        "record_id": row["record_id"],
        "pages": pages,
        "reason_code": row["reason_code"],
        "reason": row["last_error"] if row["state"] == "quarantined" else None,
        "preview": None
        if prev is None
        else {"flags": json.loads(prev["flags"]), "pages": prev["pages"], "rescan": bool(prev["rescan"])},
    }


@router.get("/queue", responses=errors())
def queue(ctx: CtxDep, who: QueueViewer, limit: Annotated[int, Query(ge=1, le=200)] = 30) -> dict[str, Any]:
    rows = ctx.conn.execute(
        "SELECT j.*, r.page_count AS pages FROM jobs j LEFT JOIN records r ON r.id = j.record_id"
        " ORDER BY j.received_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    recent = [_job_summary(ctx, r) for r in rows] if "intake.view" in who.permissions else []
    return {"counts": ctx.queue.counts(), "recent": recent}


@router.get(
    "/jobs/{job_id}/preview",
    response_class=Response,
    responses={200: {"description": "JPEG thumbnail", "content": {"image/jpeg": {}}}, **errors(404)},
)
def job_preview(job_id: str, ctx: CtxDep, who: IntakeViewer) -> Response:
    data = preview_image(ctx, job_id)
    if data is None:
        raise problem(404, "no_preview", "还没有预览", "no preview (yet) for this job")
    with transaction(ctx.conn):
        ctx.audit.record(ctx.conn, who.actor, "preview.view", job_id, {})
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


def _event_payload(row: Any) -> dict[str, Any]:
    detail = json.loads(row["detail"])
    out: dict[str, Any] = {"job_id": row["job_id"], "at": row["at"]}
    kind = row["type"]
    if kind == "ingestion":
        out["counter"] = detail.get("counter")
        out["landed_at"] = row["landed_at"]
    elif kind == "preview":
        out |= {
            "pages": detail.get("pages"),
            "flags": detail.get("flags", []),
            "rescan": detail.get("rescan"),
            "page_flags": detail.get("page_flags", []),
            "counter": detail.get("counter"),
            "thumbnail": f"/api/v1/jobs/{row['job_id']}/preview",
        }
    elif kind == "storage":
        out |= {"record_id": row["record_id"], "pages": detail.get("pages")}
    elif kind == "quarantine":
        out |= {"reason_code": detail.get("code"), "reason": detail.get("reason")}
    else:
        out["duplicate_of"] = detail.get("duplicate_of")
    return out


def _fetch(pool: Any, after: int) -> list[Any]:
    ctx: Context = pool.get()
    marks = ",".join("?" * len(EVENT_TYPES))
    return list(
        ctx.conn.execute(
            "SELECT e.id, e.job_id, e.record_id, e.at, e.type, e.detail, j.landed_at FROM events e"
            f" JOIN jobs j ON j.id = e.job_id WHERE e.id > ? AND e.type IN ({marks})"
            " AND e.page_idx IS NULL ORDER BY e.id LIMIT 200",
            (after, *EVENT_TYPES),
        ).fetchall()
    )


def _counts(pool: Any) -> dict[str, int]:
    ctx: Context = pool.get()
    return ctx.queue.counts()


def _last_id(pool: Any) -> int:
    ctx: Context = pool.get()
    return int(ctx.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def _still_valid(request: Request, who: Principal) -> bool:
    """The stream ends when its session does (logout, idle timeout, user disabled)."""
    if who.session is None:
        return True
    cookie = request.cookies.get(request.app.state.cookie_name)
    ctx: Context = request.app.state.pool.get()
    return cookie is not None and Accounts(ctx.conn, ctx.settings.auth, ctx.audit).session(cookie) is not None


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-sent events", "content": {"text/event-stream": {}}}, **errors()},
)
async def events(
    request: Request,
    who: QueueViewer,
    last_event_id: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
) -> StreamingResponse:
    """Server-sent events: job.* for staff who may see intake, `queue` counts for everyone
    allowed to see the queue. ``Last-Event-ID`` (or ``?last_event_id=``, for a new EventSource)
    resumes after a reconnect; the stream ends with ``session.ended`` when the session does."""
    pool = request.app.state.pool
    detailed = "intake.view" in who.permissions
    last = request.headers.get("last-event-id", "")
    if last.isascii() and last.isdigit() and int(last) <= MAX_EVENT_ID:  # else: not one of ours
        after = int(last)
    elif last_event_id is not None:
        after = last_event_id
    else:
        after = await run_in_threadpool(_last_id, pool)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal after
        next_counts = 0.0
        next_session_check = time.monotonic() + SESSION_CHECK_S
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            if time.monotonic() >= next_session_check:
                if not await run_in_threadpool(_still_valid, request, who):
                    yield b"event: session.ended\ndata: {}\n\n"
                    return
                next_session_check = time.monotonic() + SESSION_CHECK_S
            if detailed:
                rows = await run_in_threadpool(_fetch, pool, after)
                for row in rows:
                    after = row["id"]
                    data = json.dumps(_event_payload(row), ensure_ascii=False)
                    yield f"id: {row['id']}\nevent: {EVENT_TYPES[row['type']]}\ndata: {data}\n\n".encode()
                if rows:
                    next_counts = 0.0  # a job moved: send the counts with it, not up to 5 s later
            if time.monotonic() >= next_counts:
                counts = await run_in_threadpool(_counts, pool)
                yield f"event: queue\ndata: {json.dumps({'counts': counts})}\n\n".encode()
                next_counts = time.monotonic() + QUEUE_EVERY_S
            await asyncio.sleep(POLL_S)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/quarantine", responses=errors())
def quarantine(
    ctx: CtxDep, who: QuarantineViewer, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    items = ctx.store.latest_quarantine(limit, include_decided=False)
    return {"items": items}


@router.get(
    "/quarantine/{job_id}/file",
    response_class=Response,
    responses={
        200: {"description": "The decrypted file", "content": {"application/octet-stream": {}}},
        **errors(404),
    },
)
def quarantine_file(job_id: str, ctx: CtxDep, who: QuarantineDecider) -> Response:
    if ctx.conn.execute("SELECT 1 FROM quarantine WHERE job_id=?", (job_id,)).fetchone() is None:
        raise problem(404, "not_quarantined", "隔离区中没有此文件", "no such quarantined file")
    if not ctx.store.quarantine_path(job_id).exists():
        raise problem(
            404, "nothing_kept", "此条目没有保存文件内容（链接或管道）", "nothing was kept (a link or pipe)"
        )
    with transaction(ctx.conn):
        ctx.audit.record(ctx.conn, who.actor, "quarantine.download", job_id, {})
    data = ctx.store.quarantined_bytes(job_id)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{job_id}.bin"'}
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.post("/quarantine/{job_id}/decision", status_code=204, responses=errors(400, 404, 409))
def quarantine_decision(job_id: str, body: Decision, ctx: CtxDep, who: QuarantineDecider) -> None:
    row = ctx.conn.execute(
        "SELECT q.*, j.counter FROM quarantine q JOIN jobs j ON j.id=q.job_id WHERE job_id=?", (job_id,)
    ).fetchone()
    if row is None:
        raise problem(404, "not_quarantined", "隔离区中没有此文件", "no such quarantined file")
    if row["decision"] is not None:
        raise problem(409, "already_decided", "已经处理过", "a decision was already taken")
    new_job = None
    if body.action == "retry":
        if not ctx.store.quarantine_path(job_id).exists():
            raise problem(409, "nothing_kept", "没有可重试的文件内容", "nothing was kept to retry")
        data = ctx.store.quarantined_bytes(job_id)
        with tempfile.TemporaryDirectory(dir=ctx.settings.scratch_dir) as tmp:
            path = Path(tmp) / ctx.queue.name(job_id).raw.decode("utf-8", "replace").replace("/", "_")[:120]
            path.write_bytes(data)
            new_job = ctx.spool.take(path, counter=row["counter"], root=None, move=False).job_id
    with transaction(ctx.conn):
        ctx.conn.execute(
            "UPDATE quarantine SET decision=?, decided_by=?, decided_at=? WHERE job_id=?",
            (body.action, who.actor, time.time(), job_id),
        )
        add_event(
            ctx.conn,
            job_id,
            "quarantine decision",
            "success",
            {"action": body.action, "retry_job": new_job},
            agent=who.actor,
        )
        ctx.audit.record(
            ctx.conn,
            who.actor,
            "quarantine.decide",
            job_id,
            {"action": body.action, "retry_job": new_job},
            sensitive={"note": body.note} if body.note else None,
        )
