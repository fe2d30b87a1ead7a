"""Device status for technicians (no record content), and the open health probe."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError

from appliance import __version__
from appliance.api.deps import CtxDep, Principal, errors, problem, require
from appliance.catalog import transaction
from appliance.fsutil import atomic_write
from appliance.keys import FileKeySource
from appliance.settings import Settings

router = APIRouter(tags=["device"])
Technician = Annotated[Principal, require("device.view")]


def _key_kind(name: str) -> str:
    for prefix, kind in (
        ("hall key", "kek"),
        ("index", "index"),
        ("device", "device"),
        ("archive", "archive"),
    ):
        if name.startswith(prefix):
            return kind
    return "other"


@router.get("/health")
def health() -> dict[str, Any]:
    """Open: tells a load balancer or the technician's laptop that the service answers."""
    return {"ok": True, "version": __version__}


@router.get("/device", responses=errors())
def device(request: Request, ctx: CtxDep, who: Technician) -> dict[str, Any]:
    settings = ctx.settings
    keys = [
        {
            "name": k.name,
            "kind": _key_kind(k.name),
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


Configurer = Annotated[Principal, require("device.configure")]
# What a technician may change from the UI (the rest needs `hall provision` or hall.toml).
CONFIGURABLE: dict[str, tuple[str, str]] = {
    "hall_name": ("", "hall_name"),
    "settle_seconds": ("intake", "settle_seconds"),
    "closed_settle_seconds": ("intake", "closed_settle_seconds"),
    "rescan_seconds": ("intake", "rescan_seconds"),
    "workers": ("pipeline", "workers"),
    "ocr_threads": ("ocr", "threads"),
}


class ConfigChange(BaseModel):
    values: dict[str, str | int | float] = Field(description=f"Any of: {', '.join(CONFIGURABLE)}")


@router.put("/device/config", responses=errors(400, 422))
def configure(body: ConfigChange, ctx: CtxDep, who: Configurer) -> dict[str, Any]:
    """Validate and write the changes to hall.toml; they take effect when the service restarts."""
    unknown = sorted(set(body.values) - set(CONFIGURABLE))
    if unknown:
        raise problem(
            422, "not_configurable", "这些设置不能在此修改", f"not configurable here: {', '.join(unknown)}"
        )
    raw = ctx.settings.model_dump(mode="json")
    for key, value in body.values.items():
        section, name = CONFIGURABLE[key]
        (raw[section] if section else raw)[name] = value
    try:
        new = Settings.model_validate(raw)
    except ValidationError as e:
        raise problem(422, "invalid_setting", "设置值无效", str(e).splitlines()[0]) from None
    atomic_write(new.config_path, new.to_toml().encode("utf-8"), mode=0o640)
    with transaction(ctx.conn):
        ctx.audit.record(ctx.conn, who.actor, "device.configure", None, {"changed": sorted(body.values)})
    return {"written": str(new.config_path), "restart_required": True, "changed": sorted(body.values)}
