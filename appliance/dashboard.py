"""Supervisor figures for the dashboard, from plaintext operational data only (times, counts,
flags, confidences, the audit log): no record content is decrypted here."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections import Counter, defaultdict
from typing import Any

from appliance.context import Context

CONFIDENCE_BINS = [round(i / 10, 1) for i in range(11)]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts)


def dashboard(ctx: Context, *, days: int = 7, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    conn = ctx.conn
    start = dt.datetime.combine(_local(now).date() - dt.timedelta(days=days - 1), dt.time.min).timestamp()
    today = dt.datetime.combine(_local(now).date(), dt.time.min).timestamp()
    rows = conn.execute(
        "SELECT r.id, r.counter, r.page_count, r.created_at, j.landed_at, j.finished_at FROM records r"
        " JOIN jobs j ON j.id = r.job_id WHERE r.created_at >= ?",
        (start,),
    ).fetchall()
    per_day: Counter[str] = Counter()
    per_hour: Counter[str] = Counter()
    latency: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        when = _local(r["created_at"])
        per_day[when.date().isoformat()] += r["page_count"]
        if r["created_at"] >= today:
            per_hour[when.strftime("%Y-%m-%dT%H")] += r["page_count"]
        if r["finished_at"] and r["landed_at"]:
            latency[when.date().isoformat()].append(r["finished_at"] - r["landed_at"])
    day_list = [(_local(start) + dt.timedelta(days=i)).date().isoformat() for i in range(days)]
    counters: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"pages": 0, "flagged": 0, "quarantined": 0, "flags": Counter()}
    )
    confidences = [0] * (len(CONFIDENCE_BINS) - 1)
    for p in conn.execute(
        "SELECT r.counter, p.clean_report, p.mean_conf FROM pages p JOIN records r ON r.id = p.record_id"
        " WHERE r.created_at >= ?",
        (start,),
    ):
        c = counters[p["counter"]]
        c["pages"] += 1
        flags = json.loads(p["clean_report"]).get("flags", [])
        if set(flags) - {"seal"}:  # a seal is information, not a quality problem
            c["flagged"] += 1
        c["flags"].update(flags)
        if p["mean_conf"] is not None:
            confidences[min(int(p["mean_conf"] * 10), 9)] += 1
    for q in conn.execute(
        "SELECT counter, COUNT(*) AS n FROM jobs WHERE state='quarantined' AND received_at >= ?"
        " GROUP BY counter",
        (start,),
    ):
        counters[q["counter"]]["quarantined"] = q["n"]
    searches = conn.execute(
        "SELECT seq FROM audit_log WHERE action='search' AND actor LIKE 'user:%' AND at >= ?", (start,)
    ).fetchall()
    opened = conn.execute(
        "SELECT COUNT(DISTINCT json_extract(detail, '$.search')) FROM audit_log WHERE action='record.view'"
        " AND json_extract(detail, '$.search') IS NOT NULL AND at >= ?",
        (start,),
    ).fetchone()[0]
    disk = shutil.disk_usage(ctx.settings.data_dir)
    return {
        "days": days,
        "pages_per_day": [{"day": d, "pages": per_day.get(d, 0)} for d in day_list],
        "pages_per_hour": [{"hour": h, "pages": n} for h, n in sorted(per_hour.items())],
        "queue": ctx.queue.counts(),
        "latency_s": [
            {"day": d, "p50": round(_pct(v, 0.5), 2), "p95": round(_pct(v, 0.95), 2), "n": len(v)}
            for d, v in sorted(latency.items())
        ],
        "per_counter": [
            {
                "counter": name,
                "pages": c["pages"],
                "quarantined": c["quarantined"],
                "flagged": c["flagged"],
                "flags": dict(c["flags"]),
            }
            for name, c in sorted(counters.items())
        ],
        "ocr_confidence": {"bins": CONFIDENCE_BINS, "counts": confidences},
        "retrieval": {"searches": len(searches), "opened": int(opened)},
        "replication": {"state": "not_configured", "backlog": 0},
        "transfer": _transfer(ctx),
        "disk": {"total": disk.total, "used": disk.used, "free": disk.free},
    }


def _transfer(ctx: Context) -> dict[str, Any]:
    """Transfer figures from the catalog; the API replaces them with the running service's live
    state (link, sending) when there is one."""
    from sync.transfer import catalog_status

    return catalog_status(ctx)
