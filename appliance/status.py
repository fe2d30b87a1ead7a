"""What ``hall status`` reports: queue counts, latest quarantine reasons, per-counter figures,
disk space."""

from __future__ import annotations

import shutil
from typing import Any

from appliance.context import Context


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
    }
