"""Device status for technicians (no record content), and the open health probe."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Request

from appliance import __version__
from appliance.api.deps import CtxDep, Principal, require
from appliance.keys import FileKeySource

router = APIRouter(tags=["device"])
Technician = Annotated[Principal, require("device.view")]


@router.get("/health")
def health() -> dict[str, Any]:
    """Open: tells a load balancer or the technician's laptop that the service answers."""
    return {"ok": True, "version": __version__}


@router.get("/device")
def device(request: Request, ctx: CtxDep, who: Technician) -> dict[str, Any]:
    settings = ctx.settings
    keys = [
        {
            "name": k.name,
            "path": str(k.path),
            "present": k.present,
            "mode": k.mode,
            "ok": k.ok,
            "problem": k.problem,
        }
        for k in FileKeySource(settings.keys_dir).status()
    ]
    disk = shutil.disk_usage(settings.data_dir)
    folders = []
    for f in settings.drop_folders:
        path = settings.drop_path(f)
        folders.append(
            {"counter": f.counter, "path": str(path), "exists": path.is_dir(), "polling": f.polling}
        )
    services = getattr(request.app.state, "services", None)
    return {
        "version": __version__,
        "hall_id": settings.hall_id,
        "hall_name": settings.hall_name,
        "keys": keys,
        "drop_folders": folders,
        "disk": {"total": disk.total, "used": disk.used, "free": disk.free},
        "services": services() if callable(services) else {"api": "running"},
        "tls": settings.api.tls_cert is not None,
        "settings": {
            "workers": settings.pipeline.workers,
            "ocr_engine": settings.ocr.engine,
            "settle_seconds": settings.intake.settle_seconds,
            "fonds": settings.archival.fonds,
            "department": settings.archival.department,
        },
    }
