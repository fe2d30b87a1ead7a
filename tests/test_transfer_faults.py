"""Transfer (移交) over a bad link: 1,000 confirmed records go from a box to a real receiver through
two :class:`~tests.fault_proxy.FaultProxy` instances — one in front of the receiver, one in front of
the archive's object store (real SeaweedFS S3, which the receiver reads directly) — that add
latency, throttle, cut requests mid-way, drop answers after the server has committed them, and
go down together for a few seconds mid-drain. The box's background transferer must still deliver
every record exactly once with a verified receipt, and a package whose receipt was lost must get
the same receipt again when it is resent.

The proxy draws its faults per TCP connection, so the box's HTTP clients here open one connection
per request (no keep-alive): every request faces the fault odds, not only the first on a
connection. Seeds are fixed (proxies, the transferer's jitter, the records)."""

from __future__ import annotations

import collections
import json
import random
import sqlite3
import threading
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.context import open_context
from appliance.samples.records import add_records, confirm_records
from sync import protocol
from sync.archive import ArchiveServer, ArchiveSettings, Receiver, Reply, public_keys
from sync.link import ArchiveClient
from sync.objectstore import S3ObjectStore
from sync.transfer import Transferer
from tests.fault_proxy import FaultProxy, Faults
from tests.seaweed_harness import seaweed_s3
from tests.transfer_harness import make_box, wait_for, with_transfer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RECORDS = 1000
KEY_ENV = "HALL_TEST_ARCHIVE_S3_KEY"
SECRET_ENV = "HALL_TEST_ARCHIVE_S3_SECRET"
LINK_DOWN_S = 3.0
DRAIN_DEADLINE_S = 200.0
TIMING = {  # fast retries, so ~1,000 injected faults cost seconds, not minutes
    "retry_base_s": 0.02,
    "retry_max_s": 0.5,
    "probe_interval_s": 0.02,
    "probe_max_s": 0.5,
    "request_timeout_s": 10.0,
    "concurrency": 8,
}


def _faults() -> Faults:
    """A few ms of latency, a moderate cap, 3% of connections cut mid-request, 3% answered
    and then dropped (each proxy its own)."""
    return Faults(delay_s=0.002, rate_bps=4e6, cut_request=0.03, drop_response=0.03)


def _no_keepalive() -> httpx.HTTPTransport:
    return httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _box_counts(catalog: Path) -> dict[str, int]:
    queries = {
        "transferred": "SELECT COUNT(*) FROM records WHERE status='transferred'",
        "blob_outbox": "SELECT COUNT(*) FROM blob_outbox",
        "transfer_outbox": "SELECT COUNT(*) FROM transfer_outbox",
    }
    with closing(sqlite3.connect(catalog, timeout=30)) as db:
        return {name: int(db.execute(q).fetchone()[0]) for name, q in queries.items()}


def test_a_thousand_records_cross_a_bad_link_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the receiver answered to every package POST it completed (whether or not the box heard it).
    answers: list[tuple[int, str | None, str | None]] = []
    lock = threading.Lock()
    real_accept = Receiver.accept

    def accept(self: Receiver, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        reply = real_accept(self, body, headers, method, path)
        with lock:
            answers.append((reply.status, reply.body.get("idempotency_key"), reply.body.get("receipt_id")))
        return reply

    monkeypatch.setattr(Receiver, "accept", accept)

    with seaweed_s3(tmp_path / "weed") as s3:
        monkeypatch.setenv(KEY_ENV, s3.access_key)
        monkeypatch.setenv(SECRET_ENV, s3.secret_key)
        s3_names = {"s3_bucket": s3.bucket, "s3_access_key_env": KEY_ENV, "s3_secret_key_env": SECRET_ENV}
        base = make_box(tmp_path / "data", **TIMING)
        archive = ArchiveSettings.load(
            base.local_archive_dir, {}, objects="s3", s3_endpoint=s3.endpoint, **s3_names
        )
        server = ArchiveServer(archive, "127.0.0.1", 0).start()
        to_store = FaultProxy(_port(s3.endpoint), _faults(), seed=11)
        to_archive = FaultProxy(_port(server.url), _faults(), seed=12)
        transferer: Transferer | None = None
        try:
            with to_store, to_archive:
                settings = with_transfer(
                    base,
                    archive_url=to_archive.url,
                    object_store="s3",
                    s3_endpoint=to_store.url,
                    **s3_names,
                )
                ctx = open_context(settings)
                try:
                    recs = add_records(ctx, RECORDS, seed=5, valid_images=True, image_bytes=1500)
                    confirm_records(ctx, recs)
                finally:
                    ctx.close()
                ids = {r.record_id for r in recs}

                timeout = settings.transfer.request_timeout_s
                store = S3ObjectStore(
                    to_store.url, s3.bucket, s3.access_key, s3.secret_key,
                    timeout_s=timeout, transport=_no_keepalive(),
                )  # fmt: skip
                client = ArchiveClient(to_archive.url, timeout_s=timeout, transport=_no_keepalive())
                transferer = Transferer(settings, store=store, client=client, rng=random.Random(3))
                t0 = time.monotonic()
                transferer.start()

                # Mid-drain, while blobs and packages are both on their way, the whole link goes
                # down (both proxies), then comes back.
                wait_for(
                    lambda: _box_counts(settings.catalog_path)["transferred"] >= RECORDS // 10,
                    DRAIN_DEADLINE_S,
                    "a tenth of the records transferred",
                    step=0.2,
                )
                assert _box_counts(settings.catalog_path)["blob_outbox"] > 0
                to_store.set_down(True)
                to_archive.set_down(True)
                time.sleep(1.0)  # what was in flight has failed or finished
                during = _box_counts(settings.catalog_path)["transferred"]
                time.sleep(LINK_DOWN_S - 1.0)
                assert _box_counts(settings.catalog_path)["transferred"] == during, "transferred while down"
                assert transferer.health()["state"] == "link_down", transferer.health()
                to_store.set_down(False)
                to_archive.set_down(False)

                wait_for(
                    lambda: (
                        _box_counts(settings.catalog_path)
                        == {"transferred": RECORDS, "blob_outbox": 0, "transfer_outbox": 0}
                    ),
                    DRAIN_DEADLINE_S - (time.monotonic() - t0),
                    f"the drain of {RECORDS} records",
                    step=0.2,
                )
                drained_s = time.monotonic() - t0
                health = transferer.health()
                transferer.stop()
                transferer = None
        finally:
            if transferer is not None:
                transferer.stop()
            server.stop()

    print(
        f"\n{RECORDS} records drained in {drained_s:.1f} s (link down {LINK_DOWN_S:.0f} s);"
        f" store proxy {to_store.counters}; archive proxy {to_archive.counters};"
        f" receiver answered {len(answers)} package POSTs"
    )
    assert health["state"] == "idle" and health["rejected"] == 0 and health["blocked"] == 0, health

    # The archive holds every record exactly once.
    with closing(sqlite3.connect(archive.sqlite_path)) as db:
        rows = db.execute("SELECT record_id, COUNT(*) FROM packages GROUP BY record_id").fetchall()
        per_record = dict(rows)
        assert set(per_record) == ids
        assert set(per_record.values()) == {1}, "a record was stored twice"
        stored = {r[0] for r in db.execute("SELECT record_id FROM records").fetchall()}
        assert stored == ids
        assert db.execute("SELECT COUNT(*) FROM rejections").fetchone()[0] == 0

    # Every record on the box is 已移交 with a receipt that verifies and matches what was sent.
    _encryption, signing = public_keys(base.local_archive_dir)
    box_receipts: dict[str, dict[str, Any]] = {}
    with closing(sqlite3.connect(settings.catalog_path)) as db:
        db.row_factory = sqlite3.Row
        assert dict(db.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall()) == {
            "transferred": RECORDS
        }
        assert db.execute("SELECT COUNT(*) FROM blob_outbox").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM transfer_outbox").fetchone()[0] == 0
        rows = db.execute("SELECT * FROM receipts").fetchall()
        assert {r["record_id"] for r in rows} == ids and len(rows) == RECORDS
        for r in rows:
            body = protocol.verify_receipt(signing, json.loads(r["receipt"]))
            assert body["status"] == "accepted"
            assert (body["record_id"], body["record_version"], body["idempotency_key"]) == (
                r["record_id"], r["version"], r["idempotency_key"],
            )  # fmt: skip
            box_receipts[r["idempotency_key"]] = body
        audited = db.execute("SELECT COUNT(*) FROM audit_log WHERE action='record.transfer'").fetchone()[0]
        assert audited == RECORDS, "one 移交 audit entry per record"

    # The faults really happened, on both legs of the link.
    for name, proxy in (("object store", to_store), ("archive", to_archive)):
        c = proxy.counters
        assert c.cut_requests > 0 and c.dropped_responses > 0, (name, c)
    assert to_archive.counters.refused > 0, to_archive.counters  # the health probes while down

    # Answers lost after the receiver had committed: the resend got the very same receipt.
    accepted = [(key, rid) for status, key, rid in answers if status == 200]
    assert len(accepted) > RECORDS, "no package was ever resent"
    by_key: dict[str | None, set[str | None]] = collections.defaultdict(set)
    for key, rid in accepted:
        by_key[key].add(rid)
    resent = {key for key, n in collections.Counter(k for k, _ in accepted).items() if n > 1}
    assert resent
    for key in resent:
        assert key in box_receipts
        assert by_key[key] == {box_receipts[key]["receipt_id"]}, "a resend got a different receipt"
    assert all(len(rids) == 1 for rids in by_key.values())
    print(f"{len(resent)} packages were resent after a lost answer; each got its first receipt again")
