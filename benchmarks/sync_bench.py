"""Replication and transfer benchmark (issue 6), with real parts: SeaweedFS S3 on loopback, real
Litestream, a real archive receiver, and the box's real Transferer.

1. **Replication lag at 30 pages/minute.** One single-page record (realistic blob sizes) is
   committed on average every 2 s while the supervised Litestream streams the catalog to S3 (default
   ``sync-interval`` 1 s), at intervals drawn uniformly from 1-3 s so commits fall at any phase of
   Litestream's tick. For each commit: the first local LTX file Litestream writes after the
   commit gives the transaction id that holds it; the lag is the time from the commit until an LTX
   file covering that id is listed in the bucket (ListObjectsV2, polled every 20 ms).
2. **Draining a backlog after a 24-hour outage.** ``--pages`` confirmed single-page records (master
   JPEG + cleaned page + bilevel + thumbnail, sizes as measured on real scans) are waiting when the
   link comes back. The link is one 10 Mbit/s uplink (``--link-mbit``) shared by the two legs
   (box → object store, box → receiver): two fault proxies with one shared token bucket. After a
   day down the box probes the archive every 30-60 s (``probe_max_s`` 60 s, jitter in the upper
   half), so the transferer starts in that state: probe interval = probe_max_s. Drain time runs
   from the moment the link comes up until the last receipt is stored. The baseline, in the same
   run: the same number of bytes (every blob's ciphertext + every package body) pushed through the
   same capped link in one TCP stream to a sink. Ratio = drain / raw.

Targets: lag p95 ≤ 5 s; drain ≤ 1.3 × raw.

    .venv/bin/python benchmarks/sync_bench.py [--pages 2000] [--link-mbit 10] [--lag-commits 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.context import open_context  # noqa: E402
from appliance.samples.records import add_records, confirm_records  # noqa: E402
from sync import package as package_mod  # noqa: E402
from sync.archive import ArchiveServer, ArchiveSettings, init_archive, issue_enrollment_token  # noqa: E402
from sync.enrollment import enroll  # noqa: E402
from sync.litestream import LitestreamSupervisor  # noqa: E402
from sync.transfer import Transferer  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fault_proxy import FaultProxy, Faults, SharedLink  # noqa: E402
from tests.seaweed_harness import REGION, SeaweedS3, seaweed_s3  # noqa: E402

# Sizes measured on real scans through the pipeline (200-dpi A4 JPEG from the scanner): master
# ~450 KB, cleaned grey page ~650 KB, bilevel G4 ~25 KB, thumbnail ~12 KB (ciphertext).
PAGE_BYTES = (450_000, 650_000, 25_000, 12_000)
LS_KEY, LS_SECRET = "BENCH_LS_KEY", "BENCH_LS_SECRET"
AR_KEY, AR_SECRET = "BENCH_AR_KEY", "BENCH_AR_SECRET"


# --- a signed S3 listing (the replica's LTX files) -----------------------------------------------
def list_keys(s3: SeaweedS3, prefix: str, client: httpx.Client) -> list[str]:
    query = {"list-type": "2", "prefix": prefix}
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    path = f"/{s3.bucket}"
    now = dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = s3.endpoint.split("://", 1)[1]
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", path, canonical_query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
    )
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])

    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(h(f"AWS4{s3.secret_key}".encode(), day), REGION), "s3"), "aws4_request")
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={s3.access_key}/{scope}, SignedHeaders={signed}, Signature={sig}"
    )
    del headers["host"]
    r = client.get(f"{s3.endpoint}{path}?{canonical_query}", headers=headers)
    r.raise_for_status()
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    root = ET.fromstring(r.content)
    keys = [e.text or "" for e in root.iterfind(".//s3:Contents/s3:Key", ns)]
    if not keys:
        keys = [e.text or "" for e in root.iterfind(".//Contents/Key")]
    return keys


def _max_txid(names: list[str]) -> int:
    best = 0
    for n in names:
        stem = n.rsplit("/", 1)[-1]
        if stem.endswith(".ltx") and "-" in stem:
            best = max(best, int(stem.removesuffix(".ltx").split("-")[1], 16))
    return best


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# --- phase 1: replication lag ------------------------------------------------------------------
def replication_lag(s3: SeaweedS3, work: Path, commits: int, interval_s: float) -> dict[str, Any]:
    settings = make_settings(
        work / "lag",
        replication={
            "target": "s3", "s3_endpoint": s3.endpoint, "s3_bucket": s3.bucket, "s3_path": "lag",
            "s3_access_key_env": LS_KEY, "s3_secret_key_env": LS_SECRET,
        },
        transfer={"enabled": False},
    )  # fmt: skip
    local_l0 = settings.data_dir / ".catalog.db-litestream" / "ltx" / "0"
    sup = LitestreamSupervisor(settings)
    sup.start()
    lags: list[float] = []
    jitter = random.Random(7)
    client = httpx.Client(timeout=10)
    ctx = open_context(settings)
    try:
        deadline = time.monotonic() + 60
        while sup.health()["state"] != "ok":
            if time.monotonic() > deadline:
                raise SystemExit(f"replication never became ok: {sup.health()}")
            time.sleep(0.2)
        seed = 0
        next_at = time.monotonic()
        pending: list[tuple[float, int | None, int]] = []  # (commit time, txid, local txid before)
        while len(lags) < commits:
            now = time.monotonic()
            if len(lags) + len(pending) < commits and now >= next_at:
                before = _max_txid([p.name for p in local_l0.glob("*.ltx")])
                add_records(ctx, 1, seed=seed, page_bytes=PAGE_BYTES)
                seed += 1
                pending.append((time.monotonic(), None, before))
                next_at += interval_s * jitter.uniform(0.5, 1.5)  # mean rate kept; any phase
            local = _max_txid([p.name for p in local_l0.glob("*.ltx")])
            pending = [
                (t, tx if tx is not None else (local if local > b else None), b) for t, tx, b in pending
            ]
            if any(tx is not None for _, tx, _ in pending):
                remote = _max_txid(list_keys(s3, "lag/", client))
                done = [(t, tx) for t, tx, _ in pending if tx is not None and remote >= tx]
                seen = time.monotonic()
                for t, _tx in done:
                    lags.append(seen - t)
                pending = [p for p in pending if not (p[1] is not None and remote >= p[1])]
            time.sleep(0.02)
    finally:
        ctx.close()
        client.close()
        sup.stop(timeout=10, final_sync=False)
    return {
        "commits": len(lags),
        "rate_pages_per_min": round(60 / interval_s, 1),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p95_s": round(pct(lags, 0.95), 3),
        "lag_max_s": round(max(lags), 3),
    }


# --- phase 2: drain after an outage ------------------------------------------------------------
class Sink:
    """A TCP server that reads and discards; the baseline's far end."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.received = 0
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(1 << 16):
                self.received += len(chunk)
        self.done.set()

    def close(self) -> None:
        self.sock.close()


def raw_transfer_s(total: int, rate: float) -> float:
    sink = Sink()
    proxy = FaultProxy(sink.port, Faults(rate_bps=rate))
    with proxy:
        chunk = os.urandom(1 << 16)
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            sent = 0
            while sent < total:
                n = min(len(chunk), total - sent)
                s.sendall(chunk[:n])
                sent += n
            s.shutdown(socket.SHUT_WR)
            sink.done.wait(3600)
        took = time.monotonic() - t0
    sink.close()
    assert sink.received == total, (sink.received, total)
    return took


def drain(s3: SeaweedS3, work: Path, pages: int, rate: float) -> dict[str, Any]:
    archive_dir = work / "archive"
    init_archive(archive_dir, "central")
    s3_names = {
        "s3_bucket": s3.bucket,
        "s3_prefix": "archive",
        "s3_access_key_env": AR_KEY,
        "s3_secret_key_env": AR_SECRET,
    }
    archive = ArchiveSettings.load(archive_dir, {}, objects="s3", s3_endpoint=s3.endpoint, **s3_names)
    server = ArchiveServer(archive, "127.0.0.1", 0).start()
    link = SharedLink()
    to_store = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), Faults(rate_bps=rate), link=link)
    to_archive = FaultProxy(int(server.url.rsplit(":", 1)[1]), Faults(rate_bps=rate), link=link)
    try:
        with to_store, to_archive:
            settings = make_settings(
                work / "box",
                replication={"enabled": False},
                transfer={"object_store": "s3", "s3_endpoint": to_store.url, **s3_names,
                          "probe_interval_s": 60.0, "probe_max_s": 60.0},
            )  # fmt: skip
            token = issue_enrollment_token(archive, settings.hall_id)
            enroll(settings, to_archive.url, token, actor="bench")
            from appliance.settings import Settings

            settings = Settings.load(settings.data_dir)
            ctx = open_context(settings)
            t = time.monotonic()
            made = 0
            while made < pages:
                recs = add_records(ctx, min(100, pages - made), seed=made, page_bytes=PAGE_BYTES)
                confirm_records(ctx, recs)
                made += len(recs)
                print(f"  backlog: {made}/{pages} pages stored and confirmed", flush=True)
            build_s = time.monotonic() - t
            blob_bytes = int(ctx.conn.execute("SELECT COALESCE(SUM(size),0) FROM blob_outbox").fetchone()[0])
            pkg_bytes = sum(
                len(package_mod.build_package(ctx, str(rid)).body)
                for (rid,) in ctx.conn.execute("SELECT record_id FROM transfer_outbox").fetchall()
            )
            ctx.close()
            to_store.set_down(True)
            to_archive.set_down(True)
            transferer = Transferer(settings, rng=random.Random(1))
            transferer.start()
            deadline = time.monotonic() + 30
            while transferer.health()["state"] != "link_down":
                if time.monotonic() > deadline:
                    raise SystemExit(f"the transferer never saw the link down: {transferer.health()}")
                time.sleep(0.1)
            time.sleep(1.0)
            to_store.set_down(False)
            to_archive.set_down(False)
            t_up = time.monotonic()
            noticed = None
            with closing(sqlite3.connect(settings.catalog_path, timeout=30)) as db:
                while True:
                    left = db.execute(
                        "SELECT (SELECT COUNT(*) FROM blob_outbox) + (SELECT COUNT(*) FROM transfer_outbox)"
                    ).fetchone()[0]
                    if noticed is None and transferer.health()["link"]["state"] == "up":
                        noticed = time.monotonic() - t_up
                    if left == 0:
                        break
                    time.sleep(0.5)
                drain_s = time.monotonic() - t_up
                transferred = db.execute(
                    "SELECT COUNT(*) FROM records WHERE status='transferred'"
                ).fetchone()[0]
            health = transferer.health()
            transferer.stop()
            up_bytes = to_store.counters.bytes_up + to_archive.counters.bytes_up
            down_bytes = to_store.counters.bytes_down + to_archive.counters.bytes_down
    finally:
        server.stop()
    assert transferred == pages, (transferred, health)
    total = blob_bytes + pkg_bytes
    print(
        f"  drained {pages} pages ({total / 1e6:.0f} MB) in {drain_s:.1f} s; measuring the raw link ...",
        flush=True,
    )
    raw_s = raw_transfer_s(total, rate)
    return {
        "pages": pages,
        "backlog_build_s": round(build_s, 1),
        "blob_bytes": blob_bytes,
        "package_bytes": pkg_bytes,
        "link_mbit": rate * 8 / 1e6,
        "link_noticed_after_s": None if noticed is None else round(noticed, 1),
        "drain_s": round(drain_s, 1),
        "raw_s": round(raw_s, 1),
        "ratio": round(drain_s / raw_s, 3),
        "bytes_on_link_up": up_bytes,
        "bytes_on_link_down": down_bytes,
        "overhead_vs_payload": round((up_bytes + down_bytes) / total, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=2000, help="backlog to drain (pages)")
    ap.add_argument("--link-mbit", type=float, default=10.0, help="uplink cap (Mbit/s)")
    ap.add_argument("--lag-commits", type=int, default=60, help="commits in the lag phase")
    ap.add_argument("--rate", type=float, default=30.0, help="pages/minute in the lag phase")
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    for n in (LS_KEY, LS_SECRET, AR_KEY, AR_SECRET):
        os.environ.pop(n, None)
    os.environ.pop("AWS_CA_BUNDLE", None)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(tmp)
        with seaweed_s3(work / "weed") as s3:
            os.environ[LS_KEY] = os.environ[AR_KEY] = s3.access_key
            os.environ[LS_SECRET] = os.environ[AR_SECRET] = s3.secret_key
            print(
                f"== replication lag: {args.lag_commits} single-page records at {args.rate:g} pages/min",
                flush=True,
            )
            results["replication"] = replication_lag(s3, work, args.lag_commits, 60.0 / args.rate)
            print(json.dumps(results["replication"], indent=2), flush=True)
            if not args.skip_drain:
                rate = args.link_mbit * 1e6 / 8
                print(
                    f"== drain: {args.pages} pages after an outage, link {args.link_mbit:g} Mbit/s",
                    flush=True,
                )
                results["drain"] = drain(s3, work, args.pages, rate)
                print(json.dumps(results["drain"], indent=2), flush=True)
    rep = results["replication"]
    print(f"\nreplication lag at {rep['rate_pages_per_min']} pages/min: p50 {rep['lag_p50_s']} s, "
          f"p95 {rep['lag_p95_s']} s (target ≤ 5 s)")  # fmt: skip
    if "drain" in results:
        d = results["drain"]
        print(f"drain of {d['pages']} pages over {d['link_mbit']:g} Mbit/s: {d['drain_s']} s "
              f"vs raw {d['raw_s']} s = {d['ratio']}x (target ≤ 1.3x)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
