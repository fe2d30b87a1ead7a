"""Supervisor dashboard figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from appliance.api.deps import CtxDep, Principal, errors, require
from appliance.dashboard import dashboard as figures

router = APIRouter(tags=["dashboard"])
Supervisor = Annotated[Principal, require("dashboard.view")]


@router.get("/dashboard", responses=errors())
def dashboard(
    request: Request, ctx: CtxDep, who: Supervisor, days: Annotated[int, Query(ge=1, le=90)] = 7
) -> dict[str, Any]:
    out = figures(ctx, days=days)
    services = getattr(request.app.state, "services", None)
    health = services() if callable(services) else {}
    replication = health.get("replication")
    if isinstance(replication, dict):  # the service's Litestream supervisor (sync/litestream.py)
        out["replication"] = {
            "state": replication.get("state", "not_configured"),
            "last_sync": replication.get("last_sync"),
            "error": replication.get("error"),
            "target": replication.get("target"),
            "backlog": 0 if replication.get("state") == "ok" else None,
            "alerts": replication.get("alerts", []),
        }
    transfer = health.get("transfer")
    if isinstance(transfer, dict):  # the service's transferer (sync/transfer.py): live link state
        out["transfer"] = transfer
    return out
