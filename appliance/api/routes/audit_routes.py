"""The audit log, browsable, and the chain check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from appliance import audit
from appliance.api.deps import CtxDep, Principal, errors, require
from appliance.catalog import transaction
from appliance.keys import FileKeySource

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Principal, require("audit.view")]


@router.get("", responses=errors())
def entries(
    ctx: CtxDep,
    who: Auditor,
    before: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    action: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    rows = audit.entries(ctx.conn, limit=limit, action=action, descending=True, before=before)
    items = [
        {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
            "sealed": e.sealed is not None,
            "hash": e.hash,
        }
        for e in rows
    ]
    return {"items": items}


@router.post("/verify", responses=errors())
def verify(request: Request, ctx: CtxDep, who: Auditor) -> dict[str, Any]:
    settings = request.app.state.settings
    report = audit.verify(
        ctx.conn, FileKeySource(settings.keys_dir).device_public_keys(), appliance_id=settings.hall_id
    )
    with transaction(ctx.conn):
        ctx.audit.record(
            ctx.conn, who.actor, "audit.verify", None, {"ok": report.ok, "entries": report.entries}
        )
    return {
        "ok": report.ok,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "last_seq": report.last_seq,
        "breaks": [b.__dict__ for b in report.breaks],
    }
