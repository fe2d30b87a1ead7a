"""What ``hall status`` reports: queue counts, latest quarantine reasons, per-counter figures,
disk space."""

from __future__ import annotations

import shutil
from typing import Any

from appliance.context import Context
from appliance.names import display_name
from appliance.watcher import lingering_ignored

LINGERING_SECONDS = 600.0


def status(ctx: Context, *, quarantine_limit: int = 10) -> dict[str, Any]:
    counts = ctx.queue.counts()
    conn = ctx.queue.conn
    per_counter = {
        r["counter"]: {"files": r["files"], "stored": r["stored"], "quarantined": r["quarantined"]}
        for r in conn.execute(
            "SELECT counter, COUNT(*) AS files, SUM(state='stored') AS stored,"
            " SUM(state='quarantined') AS quarantined FROM jobs GROUP BY counter"
        )
    }
    pages = conn.execute("SELECT COALESCE(SUM(page_count), 0) FROM records").fetchone()[0]
    disk = shutil.disk_usage(ctx.settings.data_dir)
    lingering = [
        {"counter": f.counter, "name": display_name(path.name), "age_s": round(age)}
        for f in ctx.settings.drop_folders
        for path, age in lingering_ignored(
            ctx.settings.drop_path(f), ctx.settings.intake.ignore_globs, LINGERING_SECONDS
        )
    ]
    return {
        "hall_id": ctx.settings.hall_id,
        "stored": counts["stored"],
        "quarantined": counts["quarantined"],
        "duplicate": counts["duplicate"],
        "pending": counts["received"] + counts["processing"],
        "processing": counts["processing"],
        "pages": pages,
        "per_counter": per_counter,
        "quarantine": ctx.store.latest_quarantine(quarantine_limit),
        "disk": {"free_bytes": disk.free, "total_bytes": disk.total},
        "lingering_temporary_files": lingering,
        "replication": replication_status(ctx),
        "transfer": transfer_status(ctx),
    }


def transfer_status(ctx: Context) -> dict[str, Any]:
    """Transfer to the central archive as the catalog tells it: counts, last receipt, last
    error, and a block (enrollment problem) if any (sync/transfer.py)."""
    from sync.transfer import catalog_status

    return catalog_status(ctx)


def replication_status(ctx: Context) -> dict[str, Any]:
    """Whether the catalog is replicated, to where, and whether the replica is up to date now
    (one bounded ``litestream sync -wait`` over the running service's control socket)."""
    rs = ctx.settings.replication
    if not rs.enabled:
        return {"enabled": False, "state": "not_configured"}
    from sync.litestream import describe_target, storage_alerts, sync_wait

    ok, reason = sync_wait(ctx.settings, timeout=rs.health_timeout_s)
    return {
        "enabled": True,
        "target": describe_target(ctx.settings),
        "state": "ok" if ok else "down",
        "detail": reason or "replicated up to the last commit",
        "alerts": storage_alerts(ctx.settings),
    }
