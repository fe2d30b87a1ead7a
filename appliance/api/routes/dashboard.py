"""Supervisor dashboard figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from appliance.api.deps import CtxDep, Principal, errors, require
from appliance.dashboard import dashboard as figures

router = APIRouter(tags=["dashboard"])
Supervisor = Annotated[Principal, require("dashboard.view")]


@router.get("/dashboard", responses=errors())
def dashboard(ctx: CtxDep, who: Supervisor, days: Annotated[int, Query(ge=1, le=90)] = 7) -> dict[str, Any]:
    return figures(ctx, days=days)
