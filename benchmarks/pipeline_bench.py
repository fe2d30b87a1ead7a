"""Pipeline benchmark: pushes generated scans through a real `hall serve` and reports

* sustained throughput (pages/minute, text pages/minute) with the whole set dropped at once;
* scan-to-stored latency p50/p95 with scans arriving at a steady rate (default 30 pages/minute);
* peak RSS of the whole appliance (the service and all its child processes, summed).

Usage: .venv/bin/python benchmarks/pipeline_bench.py [--docs 20] [--rate 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from appliance.context import initialise
from appliance.samples import generate_documents
from appliance.settings import Settings

HALL = str(Path(sys.executable).with_name("hall"))


class RssSampler(threading.Thread):
    """Peak memory of the whole appliance (the service and every child process). ``peak`` is
    the sum of PSS (shared pages split between the processes that share them, so the forked
    decoder children are not counted twice); ``peak_rss_sum`` is the plain RSS sum, an upper
    bound."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_rss_sum = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.2):
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                pss = rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        info = p.memory_full_info()
                        pss += info.pss
                        rss += info.rss
                self.peak = max(self.peak, pss)
                self.peak_rss_sum = max(self.peak_rss_sum, rss)
            except psutil.Error:
                pass


def _serve(data_dir: Path, settle: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HALL_INTAKE__SETTLE_SECONDS": str(settle)}
    log = (data_dir / "bench-serve.log").open("ab")
    return subprocess.Popen(
        [HALL, "--data-dir", str(data_dir), "serve"], stdout=log, stderr=log, env=env, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(120)


def _wait(data_dir: Path, n: int, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{data_dir / 'catalog.db'}?mode=ro", uri=True)
        done, pending = conn.execute(
            "SELECT SUM(state IN ('stored','quarantined','duplicate')),"
            " SUM(state IN ('received','processing'))"
            " FROM jobs"
        ).fetchone()
        conn.close()
        if (done or 0) >= n and not pending:
            return
        time.sleep(0.5)
    raise SystemExit("benchmark timed out")


def _rows(data_dir: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(data_dir / "catalog.db")
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT j.landed_at, j.received_at, j.finished_at, j.state, r.page_count,"
        " (SELECT COUNT(*) FROM pages p WHERE p.record_id = r.id AND p.line_count > 0) AS text_pages"
        " FROM jobs j LEFT JOIN records r ON r.id = j.record_id"
    ).fetchall()
    conn.close()
    return rows


def _fresh(root: Path, name: str) -> Path:
    d = root / name
    initialise(Settings.load(d, {}))
    return d


def throughput(root: Path, src: Path, docs: list, settle: float) -> dict[str, float]:  # type: ignore[type-arg]
    data = _fresh(root, "throughput")
    inbox = data / "inbox"
    proc = _serve(data, settle)
    rss = RssSampler(proc.pid)
    rss.start()
    time.sleep(3)  # let workers load their models before the clock starts
    t0 = time.time()
    for d in docs:
        os.utime(src / d.filename)
        os.replace(src / d.filename, inbox / d.filename)
    _wait(data, len(docs))
    rss.stop_flag.set()
    _stop(proc)
    rows = _rows(data)
    pages = sum(r["page_count"] or 0 for r in rows)
    text_pages = sum(r["text_pages"] or 0 for r in rows)
    elapsed = max(r["finished_at"] for r in rows) - t0
    return {
        "pages": pages,
        "text_pages": text_pages,
        "seconds": round(elapsed, 1),
        "pages_per_min": round(pages / elapsed * 60, 1),
        "text_pages_per_min": round(text_pages / elapsed * 60, 1),
        "peak_pss_mb": round(rss.peak / 2**20),
        "peak_rss_sum_mb": round(rss.peak_rss_sum / 2**20),
    }


def latency(root: Path, src: Path, docs: list, rate: float, settle: float) -> dict[str, float]:  # type: ignore[type-arg]
    data = _fresh(root, "latency")
    inbox = data / "inbox"
    proc = _serve(data, settle)
    rss = RssSampler(proc.pid)
    rss.start()
    time.sleep(3)
    for d in docs:  # a steady stream: each document's pages at `rate` pages per minute
        os.utime(src / d.filename)  # a scanner writes the file as it lands: mtime = landing time
        os.replace(src / d.filename, inbox / d.filename)
        time.sleep(len(d.pages) * 60.0 / rate)
    _wait(data, len(docs))
    rss.stop_flag.set()
    _stop(proc)
    lat = sorted(r["finished_at"] - r["landed_at"] for r in _rows(data))
    return {
        "files": len(lat),
        "rate_pages_per_min": rate,
        "p50_s": round(statistics.median(lat), 2),
        "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2),
        "max_s": round(lat[-1], 2),
        "peak_pss_mb": round(rss.peak / 2**20),
        "peak_rss_sum_mb": round(rss.peak_rss_sum / 2**20),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hall-bench-") as tmp:
        root = Path(tmp)
        src1, src2 = root / "set1", root / "set2"
        docs1 = generate_documents(src1, args.docs, seed=1, dpi=200)
        docs2 = generate_documents(src2, args.docs, seed=2, dpi=200)
        res = {
            "throughput": throughput(root, src1, docs1, args.settle),
            "latency": latency(root, src2, docs2, args.rate, args.settle),
        }
    t, lat = res["throughput"], res["latency"]
    print(
        f"throughput: {t['pages']} pages ({t['text_pages']} with text) in {t['seconds']} s = "
        f"{t['pages_per_min']} pages/min, {t['text_pages_per_min']} text pages/min (target >= 40)"
    )
    print(
        f"latency at {lat['rate_pages_per_min']} pages/min: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, "
        f"max {lat['max_s']} s (target p95 < 10 s)"
    )
    pss = max(t["peak_pss_mb"], lat["peak_pss_mb"])
    rss_sum = max(t["peak_rss_sum_mb"], lat["peak_rss_sum_mb"])
    print(f"peak memory of the whole appliance: {pss} MB PSS (target < 1536 MB); plain RSS sum {rss_sum} MB")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
