"""Transfer (移交) end to end against a real receiver on loopback (``sync.archive``): confirmed
records reach the archive exactly once with verified receipts, crash-resume, a dead link, a
rejection, the bandwidth cap, transfer windows, a revoked device, enrollment with another
archive, and the catalog migration that queues what existed before."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from appliance.context import initialise, open_context
from appliance.keyring import archive_key_id
from appliance.keys import FileKeySource
from appliance.outbox import record_transfer
from appliance.samples.records import archive_metadata
from appliance.settings import Settings
from sync import local_archive, protocol
from sync.archive import ArchiveServer, init_archive, issue_enrollment_token
from sync.archive.backends import open_catalog
from sync.enrollment import enroll
from sync.objectstore import FolderObjectStore, blob_key
from sync.package import record_blob_refs
from sync.transfer import Transferer, catalog_status
from tests.transfer_harness import (
    SwitchProxy,
    add_confirmed,
    closed_window_now,
    confirmed_box,
    make_box,
    serve_archive,
    wait_for,
    with_transfer,
)

HALL = [sys.executable, "-m", "appliance.cli"]


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Settings, ArchiveServer]]:
    base = make_box(tmp_path / "data")
    server = serve_archive(base)
    try:
        yield with_transfer(base, archive_url=server.url), server
    finally:
        server.stop()


def hall(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HALL, "--data-dir", str(settings.data_dir), *args], capture_output=True, text=True, timeout=120
    )


def archive_count(settings: Settings, table: str) -> int:
    with closing(sqlite3.connect(settings.local_archive_dir / "archive.db")) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def catalog(settings: Settings) -> sqlite3.Connection:
    conn = sqlite3.connect(settings.catalog_path)
    conn.row_factory = sqlite3.Row
    return conn


def statuses(settings: Settings) -> dict[str, int]:
    with closing(catalog(settings)) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall())


# --- the happy path ---------------------------------------------------------------------------
def test_confirmed_records_are_transferred_once_with_verified_receipts(
    box: tuple[Settings, ArchiveServer],
) -> None:
    settings, _server = box
    ctx = open_context(settings)
    try:
        confirmed = add_confirmed(ctx, 4, drafts=1)
        all_ids = ctx.store.record_ids()
        refs = {rid: record_blob_refs(ctx.conn, rid) for rid in all_ids}
    finally:
        ctx.close()

    result = hall(settings, "transfer", "run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accepted"] == 4 and report["rejected"] == 0 and report["state"] == "idle"
    assert report["blobs_sent"] == sum(len(r) for r in refs.values()), "the draft's blobs are shipped too"

    assert statuses(settings) == {"transferred": 4, "draft": 1}
    pinned = FileKeySource(settings.keys_dir).archive_signing_key()
    with closing(catalog(settings)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM blob_outbox").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM transfer_outbox").fetchone()[0] == 0
        receipts = conn.execute("SELECT * FROM receipts").fetchall()
        assert sorted(r["record_id"] for r in receipts) == sorted(confirmed)
        for r in receipts:
            body = protocol.verify_receipt(pinned, json.loads(r["receipt"]))
            assert body["status"] == "accepted"
            assert (body["record_id"], body["record_version"], body["idempotency_key"]) == (
                r["record_id"], r["version"], r["idempotency_key"],
            )  # fmt: skip
        events = conn.execute("SELECT record_id, agent, outcome FROM events WHERE type='transfer'").fetchall()
        assert sorted(e["record_id"] for e in events) == sorted(confirmed)
        assert {(e["agent"], e["outcome"]) for e in events} == {("system:transfer", "success")}
        audited = conn.execute("SELECT target FROM audit_log WHERE action='record.transfer'").fetchall()
        assert sorted(a[0] for a in audited) == sorted(confirmed)
        assert all(
            r["transferred_at"]
            for r in conn.execute("SELECT transferred_at FROM records WHERE status='transferred'")
        )

    store = FolderObjectStore(settings.local_archive_dir / "objects")
    for rid in all_ids:
        for ref in refs[rid]:
            assert hashlib.sha256(store.get(blob_key(settings.hall_id, ref))).hexdigest() == ref
    assert archive_count(settings, "packages") == 4

    ctx = open_context(settings)
    try:
        shown = record_transfer(ctx.conn, confirmed[0])
        assert shown["state"] == "transferred" and shown["receipt"]["receipt_id"]
        st = catalog_status(ctx)
        assert (st["transferred"], st["pending_packages"], st["pending_blobs"]) == (4, 0, 0)
    finally:
        ctx.close()

    again = Transferer(settings).run_once()  # nothing left: nothing sent
    assert (again.blobs_sent, again.accepted) == (0, 0)
    assert archive_count(settings, "packages") == 4


# --- crashes --------------------------------------------------------------------------------
def test_a_crash_between_the_receipt_and_the_commit_transfers_exactly_once(
    box: tuple[Settings, ArchiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive stored the package but the box died before it wrote the receipt: the resend
    (same idempotency key) gets the stored receipt back, and the archive keeps one package."""
    settings, _ = box
    ids = confirmed_box(settings, 3)
    real = Transferer._accepted
    calls = {"n": 0}

    def crash_on_second(self: Transferer, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Transferer, "_accepted", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        Transferer(settings).run_once()
    monkeypatch.setattr(Transferer, "_accepted", real)
    assert archive_count(settings, "packages") == 2
    assert statuses(settings) == {"transferred": 1, "confirmed": 2}

    report = Transferer(settings).run_once()
    assert report.accepted == 2
    assert statuses(settings) == {"transferred": 3}
    assert archive_count(settings, "packages") == 3, "exactly once at the archive"
    with closing(catalog(settings)) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT record_id FROM receipts")) == sorted(ids)


def test_kill_9_mid_drain_then_resume_transfers_everything_exactly_once(
    box: tuple[Settings, ArchiveServer],
) -> None:
    settings, _ = box
    n = 16
    confirmed_box(settings, n)
    proc = subprocess.Popen(
        [*HALL, "--data-dir", str(settings.data_dir), "transfer", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: archive_count(settings, "packages") >= 3 or proc.poll() is not None, 60, "packages")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    sent = archive_count(settings, "packages")
    assert sent < n, "the kill came too late to test anything"

    result = hall(settings, "transfer", "run", "--json")
    assert result.returncode == 0, result.stderr
    assert statuses(settings) == {"transferred": n}
    assert archive_count(settings, "packages") == n
    assert archive_count(settings, "rejections") == 0


# --- the link -------------------------------------------------------------------------------
def test_a_dead_link_is_probed_with_backoff_and_drained_when_it_returns(tmp_path: Path) -> None:
    base = make_box(tmp_path / "data")
    server = serve_archive(base)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    proxy = SwitchProxy((host, int(port))).start()
    settings = with_transfer(base, archive_url=proxy.url)
    transferer = Transferer(settings)
    try:
        proxy.set_up(False)
        confirmed_box(settings, 3)
        transferer.start()
        wait_for(lambda: transferer.health()["state"] == "link_down", 10, "link_down")
        health = transferer.health()
        assert health["link"]["state"] == "down" and health["last_error"]
        before = len(proxy.attempts)
        time.sleep(3.0)
        during = [line for at, line in proxy.attempts[before:]]
        # probes only (no package traffic), and backing off: 0.2 s doubling to 1 s, jitter in its upper half
        assert all(line.startswith("GET /api/v1/health") for line in during), during
        assert 1 <= len(during) <= 8, during
        assert statuses(settings) == {"confirmed": 3}

        proxy.set_up(True)
        wait_for(lambda: statuses(settings) == {"transferred": 3}, 20, "the drain after the link returned")
        wait_for(lambda: transferer.health()["state"] == "idle", 5, "idle")
        health = transferer.health()
        assert health["link"]["state"] == "up" and health["transferred"] == 3
        assert health["pending_packages"] == 0 and health["last_success"]
    finally:
        transferer.stop()
        proxy.stop()
        server.stop()
    assert archive_count(settings, "packages") == 3


# --- rejection ------------------------------------------------------------------------------
def test_a_rejected_package_shows_its_failed_items_and_waits_for_retry(
    box: tuple[Settings, ArchiveServer],
) -> None:
    settings, _ = box
    ctx = open_context(settings)
    try:
        bad, _good = add_confirmed(ctx, 2)
        master = record_blob_refs(ctx.conn, bad)[0]
    finally:
        ctx.close()
    store = FolderObjectStore(settings.local_archive_dir / "objects")
    store.put(blob_key(settings.hall_id, master), b"not the blob that hashes to this key")  # skipped: exists

    report = Transferer(settings).run_once()
    assert (report.accepted, report.rejected) == (1, 1)
    assert statuses(settings) == {"transferred": 1, "confirmed": 1}
    ctx = open_context(settings)
    try:
        shown = record_transfer(ctx.conn, bad)
        assert shown["state"] == "rejected"
        assert {(f["property"], f["item"]) for f in shown["failed_items"]} >= {("integrity", "blob_hash")}
        st = catalog_status(ctx)
        assert st["rejected"] == 1
        events = [e for e in ctx.store.get(bad, actor="t")["events"] if e["type"] == "transfer"]
        assert [e["outcome"] for e in events] == ["failure"]
    finally:
        ctx.close()

    again = Transferer(settings).run_once()  # parked: not retried by itself
    assert (again.accepted, again.rejected, again.failed) == (0, 0, 0)
    assert archive_count(settings, "rejections") == 1

    listed = hall(settings, "transfer", "status")
    assert "blob_hash" in listed.stdout and bad in listed.stdout
    result = hall(settings, "transfer", "retry", bad)
    assert result.returncode == 0, result.stderr
    with closing(catalog(settings)) as conn:
        assert (
            conn.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action='record.transfer_retry' AND target=?", (bad,)
            ).fetchone()[0]
            == 1
        )
    final = Transferer(settings).run_once()  # the archive deleted the bad object: shipped again
    assert final.accepted == 1
    assert statuses(settings) == {"transferred": 2}
    assert archive_count(settings, "rejections") == 1


# --- bandwidth and windows ----------------------------------------------------------------------
def test_the_bandwidth_cap_is_honoured(tmp_path: Path) -> None:
    base = make_box(tmp_path / "data")
    server = serve_archive(base)
    try:
        settings = with_transfer(base, archive_url=server.url, bandwidth_kbit=4000)
        ctx = open_context(settings)
        try:
            from appliance.samples.records import add_records

            add_records(ctx, 8, valid_images=True, image_bytes=120_000)  # drafts: blobs only
            total = ctx.conn.execute("SELECT SUM(size) FROM blob_outbox").fetchone()[0]
        finally:
            ctx.close()
        assert 1_600_000 < total < 2_600_000, total
        t0 = time.monotonic()
        report = Transferer(settings).run_once()
        elapsed = time.monotonic() - t0
    finally:
        server.stop()
    assert report.bytes_sent == total
    expected = (total - 64 * 1024) / (4000 * 1000 / 8)  # the first 64 KiB burst is free
    assert 0.8 * expected <= elapsed <= 1.2 * expected, (elapsed, expected)


def test_outside_the_transfer_window_nothing_is_sent(box: tuple[Settings, ArchiveServer]) -> None:
    settings, _ = box
    settings = with_transfer(settings, windows=[closed_window_now()])
    confirmed_box(settings, 2)
    report = Transferer(settings).run_once()
    assert report.state == "outside_window"
    assert (report.blobs_sent, report.accepted) == (0, 0)
    assert not any(p.is_file() for p in (settings.local_archive_dir / "objects").rglob("*"))
    assert archive_count(settings, "packages") == 0
    ctx = open_context(settings)
    try:
        assert catalog_status(ctx)["state"] == "outside_window"
    finally:
        ctx.close()


# --- enrollment ----------------------------------------------------------------------------------
def test_a_revoked_device_blocks_the_transfer_and_is_re_probed_slowly(
    box: tuple[Settings, ArchiveServer],
) -> None:
    settings, server = box
    archive = local_archive.archive_settings(settings)
    cat = open_catalog(archive)
    try:
        assert cat.revoke_hall(settings.hall_id, time.time())
    finally:
        cat.close()
    first, second = confirmed_box(settings, 2)

    report = Transferer(settings).run_once()
    assert report.state == "blocked" and report.problem and report.problem.startswith("enrollment problem")
    with closing(catalog(settings)) as conn:
        rows = {r["record_id"]: r for r in conn.execute("SELECT * FROM transfer_outbox")}
    assert rows[first]["state"] == "blocked"
    assert rows[second]["state"] == "pending" and rows[second]["attempts"] == 0, "no hammering"
    st = hall(settings, "status", "--json")
    assert json.loads(st.stdout)["transfer"]["state"] == "blocked"

    # A revoked key cannot simply be enrolled again (the archive wants a new device key) ...
    token = issue_enrollment_token(archive, settings.hall_id)
    result = hall(settings, "enroll", "--archive", server.url, "--token", token)
    assert result.returncode == 2 and "enrollment_refused" in result.stderr

    # ... but a block the archive lifts is noticed by the next (slow) re-probe of a real package.
    with closing(sqlite3.connect(archive.sqlite_path)) as db:
        db.execute("UPDATE devices SET revoked_at=NULL")
        db.commit()
    transferer = Transferer(settings)
    transferer.start()
    try:
        wait_for(lambda: statuses(settings) == {"transferred": 2}, 15, "the drain after the block was lifted")
        wait_for(lambda: transferer.health()["state"] == "idle", 5, "idle")
        assert transferer.health()["problem"] is None
    finally:
        transferer.stop()
    with closing(catalog(settings)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM transfer_outbox").fetchone()[0] == 0


def test_enrolling_with_another_archive_reseals_every_key_and_sends_everything_there(
    box: tuple[Settings, ArchiveServer], tmp_path: Path
) -> None:
    settings, _ = box
    confirmed_box(settings, 2)
    assert Transferer(settings).run_once().accepted == 2  # to the local archive first

    central = init_archive(tmp_path / "central", "central")
    with ArchiveServer(central.settings, "127.0.0.1", 0) as real:
        token = issue_enrollment_token(central.settings, settings.hall_id)
        result = enroll(settings, real.url, token, actor="cli:test")
        assert result.archive_id == "central" and result.requeued and result.resealed > 0
        moved = Settings.load(settings.data_dir, {})
        assert moved.transfer.archive_url == real.url
        keys = FileKeySource(settings.keys_dir)
        with closing(catalog(settings)) as conn:
            assert {
                r[0] for r in conn.execute("SELECT archive_key_id FROM deks WHERE wrapped IS NOT NULL")
            } == {archive_key_id(keys)}
            assert conn.execute("SELECT COUNT(*) FROM transfer_outbox").fetchone()[0] == 2
        store = FolderObjectStore(central.settings.objects_path)  # (a real archive: s3)
        report = Transferer(moved, store=store).run_once()
        assert report.accepted == 2, report
    assert statuses(settings) == {"transferred": 2}
    with closing(sqlite3.connect(central.settings.sqlite_path)) as db:
        assert db.execute("SELECT COUNT(*) FROM packages").fetchone()[0] == 2


# --- existing data dirs ----------------------------------------------------------------------------
def test_migration_queues_the_records_stored_before_transfer_existed(
    box: tuple[Settings, ArchiveServer],
) -> None:
    settings, _ = box
    ctx = open_context(settings)
    try:
        confirmed = add_confirmed(ctx, 2, drafts=1)
        refs = sum(len(record_blob_refs(ctx.conn, rid)) for rid in ctx.store.record_ids())
    finally:
        ctx.close()
    with closing(catalog(settings)) as conn:  # back to schema 5, as an old release left it
        conn.executescript(
            "DROP TABLE blob_outbox; DROP TABLE transfer_outbox; DROP TABLE receipts;"
            " ALTER TABLE records DROP COLUMN transferred_at;"
            " UPDATE meta SET value='5' WHERE key='schema_version';"
        )
    ctx = open_context(settings)
    try:
        assert ctx.conn.execute("SELECT COUNT(*) FROM blob_outbox").fetchone()[0] == refs
        queued = [
            r[0] for r in ctx.conn.execute("SELECT record_id FROM transfer_outbox WHERE state='pending'")
        ]
        assert sorted(queued) == sorted(confirmed)
    finally:
        ctx.close()
    assert Transferer(settings).run_once().accepted == 2


def test_an_old_data_dir_gets_the_receipt_key_pinned_on_the_next_init(tmp_path: Path) -> None:
    settings = make_box(tmp_path / "data")
    keys = FileKeySource(settings.keys_dir)
    pinned = keys.archive_signing_path.read_bytes()
    keys.archive_signing_path.unlink()  # as a data dir made before transfer existed
    with closing(catalog(settings)) as conn:
        conn.execute("DELETE FROM meta WHERE key='archive_id'")
        conn.commit()
    created = initialise(settings)
    assert created == [str(keys.archive_signing_path)]
    assert keys.archive_signing_path.read_bytes() == pinned
    assert initialise(settings) == []
    record = confirmed_box(settings, 1)
    with serve_archive(settings) as server:
        report = Transferer(with_transfer(settings, archive_url=server.url)).run_once()
    assert report.accepted == 1, report
    assert statuses(settings) == {"transferred": 1} and record


def test_editing_a_confirmed_record_sends_the_new_version(box: tuple[Settings, ArchiveServer]) -> None:
    from appliance import record_metadata
    from appliance.samples.records import add_records

    settings, _ = box
    ctx = open_context(settings)
    try:
        (rec,) = add_records(ctx, 1, valid_images=True)
        record_metadata.edit(ctx.store, settings, rec.record_id, archive_metadata(rec), actor="user:t")
        record_metadata.confirm(ctx.store, settings, rec.record_id, actor="user:t")
        v1 = ctx.conn.execute("SELECT version FROM transfer_outbox").fetchone()[0]
        record_metadata.edit(ctx.store, settings, rec.record_id, {"remarks": "补充说明"}, actor="user:t")
        row = ctx.conn.execute("SELECT version, state FROM transfer_outbox").fetchone()
        assert (row["version"], row["state"]) == (v1 + 1, "pending")
    finally:
        ctx.close()
    assert Transferer(settings).run_once().accepted == 1
    with closing(catalog(settings)) as conn:
        assert conn.execute("SELECT version FROM receipts").fetchone()[0] == v1 + 1


# --- what staff see ---------------------------------------------------------------------------------
def test_the_api_shows_receipts_rejections_and_the_dashboard_card(
    box: tuple[Settings, ArchiveServer],
) -> None:
    from fastapi.testclient import TestClient

    from appliance.api import create_app
    from tests.api_client import add_staff, login

    settings, _ = box
    add_staff(settings)
    ctx = open_context(settings)
    try:
        bad, good = add_confirmed(ctx, 2)
        master = record_blob_refs(ctx.conn, bad)[0]
    finally:
        ctx.close()
    FolderObjectStore(settings.local_archive_dir / "objects").put(blob_key(settings.hall_id, master), b"x")
    Transferer(settings).run_once()

    with TestClient(create_app(settings), base_url="https://testserver") as client:
        clerk = login(client, "clerk1")
        done = clerk.client.get(f"/api/v1/records/{good}").json()
        assert done["status"] == "transferred"
        assert done["transfer"]["state"] == "transferred" and done["transfer"]["receipt"]["received_at"]
        refused = clerk.client.get(f"/api/v1/records/{bad}").json()
        assert refused["status"] == "confirmed" and refused["transfer"]["state"] == "rejected"
        assert ("integrity", "blob_hash") in {
            (f["property"], f["item"]) for f in refused["transfer"]["failed_items"]
        }
        listed = clerk.client.get("/api/v1/records", params={"status": "transferred"}).json()["items"]
        assert [i["id"] for i in listed] == [good]
        boss = login(client, "supervisor1")
        card = boss.client.get("/api/v1/dashboard").json()["transfer"]
        assert (card["transferred"], card["rejected"], card["pending_packages"]) == (1, 1, 0)
        assert card["state"] in ("idle", "outside_window")


def test_the_service_serves_the_local_archive_and_transfers_in_the_background(tmp_path: Path) -> None:
    """Embedded defaults (archive_url "local"): `hall serve` runs the receiver in-process and the
    transferer in a thread; its health is part of the service's."""
    import socket

    from appliance.service import Service

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = with_transfer(make_box(tmp_path / "data"), local_port=port)
    assert settings.transfer.archive_url == "local"
    confirmed_box(settings, 2)
    service = Service(settings)
    try:
        service._start_transfer()
        assert service.local_archive is not None
        wait_for(lambda: statuses(settings) == {"transferred": 2}, 20, "the background transfer")
        wait_for(lambda: service.health()["transfer"]["state"] == "idle", 5, "idle")  # type: ignore[index]
        health = service.health()["transfer"]
        assert isinstance(health, dict) and health["transferred"] == 2 and health["link"]["state"] == "up"
    finally:
        service._stop_transfer()
        service.ctx.close()
    assert service.local_archive is None
