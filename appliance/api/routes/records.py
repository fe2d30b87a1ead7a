"""Records: list, view (audited), page images (decrypted for authorised sessions only, never
cached), metadata edit, confirm-and-archive, shred."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from appliance import outbox, record_metadata, record_reader
from appliance.api.deps import CtxDep, Principal, errors, problem, require
from appliance.archival import FIELD_LABELS
from appliance.catalog import transaction
from appliance.shredding import shred

router = APIRouter(prefix="/records", tags=["records"])
NO_STORE = {"Cache-Control": "no-store, private"}
Reader = Annotated[Principal, require("records.read")]
Editor = Annotated[Principal, require("records.edit")]
Confirmer = Annotated[Principal, require("records.confirm")]
Shredder = Annotated[Principal, require("records.shred")]


class MetadataChange(BaseModel):
    fields: dict[str, str | int | None] = Field(description="Field name (English or Chinese label) → value")


class ShredRequest(BaseModel):
    reason: str = Field(min_length=2, max_length=500)


def _flags(clean_report: dict[str, Any]) -> list[str]:
    return [str(f) for f in clean_report.get("flags", [])]


@router.get("", responses=errors())
def list_records(
    ctx: CtxDep,
    who: Reader,
    status: Literal["draft", "confirmed", "transferred", "shredded"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: float | None = None,
) -> dict[str, Any]:
    sql = "SELECT * FROM records WHERE 1=1"
    args: list[Any] = []
    if status:
        sql += " AND status=?"
        args.append(status)
    if before is not None:
        sql += " AND created_at < ?"
        args.append(before)
    rows = ctx.conn.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
    items = []
    for r in rows:
        meta = record_reader.metadata(ctx.store, r) if r["status"] != "shredded" else {}
        reports = ctx.conn.execute("SELECT clean_report FROM pages WHERE record_id=?", (r["id"],)).fetchall()
        flags = sorted({f for (rep,) in reports for f in _flags(json.loads(rep))})
        items.append(
            {
                "id": r["id"],
                "status": r["status"],
                "created_at": r["created_at"],
                "page_count": r["page_count"],
                "counter": r["counter"],
                "title": meta.get("title"),
                "archival_code": meta.get("archival_code"),
                "applicant": meta.get("applicant"),
                "flags": flags,
            }
        )
    with transaction(ctx.conn):
        ctx.audit.record(ctx.conn, who.actor, "records.list", None, {"count": len(items)})
    return {"items": items}


@router.get("/{record_id}", responses=errors(404, 410))
def get_record(record_id: str, ctx: CtxDep, who: Reader, search_id: int | None = None) -> dict[str, Any]:
    rec = ctx.store.get(record_id, actor=who.actor, search_id=search_id)
    settings = ctx.settings
    rec["stored_metadata"] = rec["metadata"]
    rec["metadata"] = {**record_metadata.defaults(settings, rec["page_count"]), **rec["metadata"]}
    for page in rec["pages"]:
        page["flags"] = _flags(page["clean_report"])
    rec["archival_code"] = rec["metadata"].get("archival_code")
    rec["field_labels"] = FIELD_LABELS
    rec["transfer"] = outbox.record_transfer(ctx.conn, record_id)
    return rec


def _original_jpeg(ctx: Any, record_id: str, idx: int, actor: str) -> bytes:
    """The master page as scanned (before clean-up), rendered to JPEG for the viewer."""
    import cv2

    from appliance.decoding import decode_sandboxed

    master = ctx.store.master(record_id, actor=actor)
    scratch = Path(tempfile.mkdtemp(dir=ctx.settings.scratch_dir))
    try:
        path = scratch / "master"
        path.write_bytes(master)
        pages = decode_sandboxed(path, ctx.settings.decode, scratch)
        if idx >= len(pages):
            raise problem(404, "no_page", "没有这一页", f"no page {idx}")
        image = pages[idx].load()
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise problem(500, "encode_failed", "无法显示原始页面", "cannot render the original page")
        return bytes(buf.tobytes())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@router.get(
    "/{record_id}/pages/{idx}/image",
    response_class=Response,
    responses={
        200: {"description": "The page image", "content": {"image/jpeg": {}, "image/tiff": {}}},
        # 400: the stored master cannot be rendered any more (kind=original)
        **errors(400, 404, 410),
    },
)
def page_image(
    record_id: str,
    idx: int,
    ctx: CtxDep,
    who: Reader,
    kind: Literal["cleaned", "thumbnail", "bilevel", "original"] = "cleaned",
) -> Response:
    if kind == "original":
        return Response(
            _original_jpeg(ctx, record_id, idx, who.actor), media_type="image/jpeg", headers=NO_STORE
        )
    data = ctx.store.page_blob(record_id, idx, kind, actor=who.actor)
    media = "image/tiff" if kind == "bilevel" else "image/jpeg"
    return Response(data, media_type=media, headers=NO_STORE)


@router.patch("/{record_id}/metadata", responses=errors(400, 404, 409, 410, 422))
def edit_metadata(
    record_id: str, body: MetadataChange, request: Request, ctx: CtxDep, who: Editor
) -> dict[str, Any]:
    try:
        meta = record_metadata.edit(
            ctx.store, request.app.state.settings, record_id, body.fields, actor=who.actor
        )
    except ValueError as e:  # an unknown field name
        raise problem(422, "unknown_field", "未知的字段", str(e)) from None
    return {"metadata": meta}


@router.post("/{record_id}/confirm", responses=errors(404, 409, 410, 422))
def confirm(record_id: str, request: Request, ctx: CtxDep, who: Confirmer) -> dict[str, Any]:
    code = record_metadata.confirm(ctx.store, request.app.state.settings, record_id, actor=who.actor)
    return {"archival_code": code}


@router.post("/{record_id}/shred", status_code=204, responses=errors(400, 404, 410))
def shred_record(record_id: str, body: ShredRequest, ctx: CtxDep, who: Shredder) -> None:
    shred(ctx.store, record_id, actor=who.actor, reason=body.reason)
