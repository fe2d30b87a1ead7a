"""Replace-a-dead-box drill, with real parts: SeaweedFS S3 on loopback holds both the Litestream
replica of the catalog and the central archive's object store; a real receiver (``ArchiveServer``)
is the archive; real Litestream replicates; the rebuild runs as the real ``hall`` command.

Box A takes records (confirmed and drafts), ships them to the archive, leaves one scan taken but
unprocessed in its spool, one quarantined original, and one record stored after the last shipment.
Then it dies: its data dir is deleted, only the recovery kit (a copy of ``keys/``) and hall.toml
survive. ``hall replica rebuild`` on a new data dir must bring back every record that could be
brought back, byte for byte, name what was lost (the unprocessed scan, the quarantined original,
the record whose pages were never shipped) and leave a box that numbers on without a gap,
transfers to the archive and replicates to the same replica."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from appliance import audit, record_metadata
from appliance.context import Context, open_context
from appliance.keys import FileKeySource
from appliance.samples.records import add_records
from appliance.settings import Settings
from sync.archive import ArchiveServer, ArchiveSettings, init_archive, issue_enrollment_token
from sync.enrollment import enroll
from sync.litestream import LitestreamSupervisor
from sync.rebuild import LOST_CODE
from sync.replica import verify
from sync.transfer import Transferer
from tests.conftest import make_settings
from tests.seaweed_harness import SeaweedS3, seaweed_s3
from tests.transfer_harness import FAST_TRANSFER, add_confirmed, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HALL = str(Path(sys.executable).with_name("hall"))
ROOT = Path(__file__).resolve().parents[1]
LS_KEY, LS_SECRET = "HALL_DRILL_LS_KEY", "HALL_DRILL_LS_SECRET"
AR_KEY, AR_SECRET = "HALL_DRILL_AR_KEY", "HALL_DRILL_AR_SECRET"
CONFIRMED, DRAFTS = 6, 2
DRAFT_METADATA = {"title": "户口迁移申请", "date": "2026-12-01", "matter": "户籍迁移", "applicant": "李四"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed_s3(tmp_path_factory.mktemp("weed")) as server:
        yield server


def _box_settings(data_dir: Path, s3: SeaweedS3) -> Settings:
    return make_settings(
        data_dir,
        replication={
            "target": "s3",
            "s3_endpoint": s3.endpoint,
            "s3_bucket": s3.bucket,
            "s3_path": "replicas/drill",
            "s3_access_key_env": LS_KEY,
            "s3_secret_key_env": LS_SECRET,
            "sync_interval_s": 0.2,
            "health_timeout_s": 3.0,
        },
        transfer={
            **FAST_TRANSFER,
            "object_store": "s3",
            "s3_endpoint": s3.endpoint,
            "s3_bucket": s3.bucket,
            "s3_prefix": "archive",
            "s3_access_key_env": AR_KEY,
            "s3_secret_key_env": AR_SECRET,
        },
    )


def _content(ctx: Context, record_id: str) -> dict[str, Any]:
    """Everything a person can see of a record, decrypted (pages as bytes)."""
    rec = ctx.store.get(record_id, actor="user:drill")
    pages = {
        (p["idx"], kind): ctx.store.page_blob(record_id, p["idx"], kind, actor="user:drill")
        for p in rec["pages"]
        for kind in ("cleaned", "bilevel", "thumbnail")
    }
    return {
        "name": rec["original_name"],
        "metadata": rec["metadata"],
        "texts": [p["text"] for p in rec["pages"]],
        "pages": pages,
        "master": ctx.store.master(record_id, actor="user:drill"),
    }


def _hall(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HALL, "--data-dir", str(data_dir), *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


def test_a_dead_box_is_rebuilt_from_its_replica_kit_and_the_archive(
    s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (LS_KEY, AR_KEY):
        monkeypatch.setenv(name, s3.access_key)
    for name in (LS_SECRET, AR_SECRET):
        monkeypatch.setenv(name, s3.secret_key)
    archive_dir = tmp_path / "archive"
    init_archive(archive_dir, "central")
    archive = ArchiveSettings.load(
        archive_dir, {}, objects="s3", s3_endpoint=s3.endpoint, s3_bucket=s3.bucket, s3_prefix="archive",
        s3_access_key_env=AR_KEY, s3_secret_key_env=AR_SECRET,
    )  # fmt: skip
    server = ArchiveServer(archive, "127.0.0.1", 0).start()
    old_dir, new_dir, kit = tmp_path / "a", tmp_path / "b", tmp_path / "kit"
    try:
        # --- box A at work --------------------------------------------------------------------
        settings = _box_settings(old_dir, s3)
        enroll(settings, server.url, issue_enrollment_token(archive, settings.hall_id), actor="tech:drill")
        settings = Settings.load(old_dir)
        sup = LitestreamSupervisor(settings, probe_interval_s=0.5)
        sup.start()
        try:
            ctx = open_context(settings)
            try:
                confirmed = add_confirmed(ctx, CONFIRMED, seed=21, drafts=DRAFTS, image_bytes=2000)
                report = Transferer(settings).run_once(ctx)
                assert report.accepted == CONFIRMED, report.as_dict()
                unshipped = add_records(ctx, 1, seed=99, valid_images=True)[0].record_id
                scan = tmp_path / "申请表-张三.jpg"
                scan.write_bytes(b"\xff\xd8\xff\xe0 not processed yet")
                pending = ctx.spool.take(scan, counter="c1", root=None).job_id
                bad = tmp_path / "损坏.pdf"
                bad.write_bytes(b"%PDF-1.4 damaged")
                held = ctx.spool.take(bad, counter="c2", root=None).job_id
                ctx.store.mark_quarantined(
                    held, "corrupt_file", "damaged", keep=ctx.store.quarantine_path(held)
                )
                ctx.store.keep_quarantined(held, ctx.spool.data_path(held))
                ids = ctx.store.record_ids()
                truth = {rid: _content(ctx, rid) for rid in ids}
                sql = (
                    "SELECT code_prefix, MAX(code_item) FROM records WHERE code_prefix IS NOT NULL GROUP BY 1"
                )
                highest = dict(ctx.conn.execute(sql).fetchall())
            finally:
                ctx.close()
            wait_for(lambda: sup.health()["state"] == "ok", 30, "replication ok")
            check = verify(settings, timeout_s=60)
            assert check.ok and check.synced, check.to_dict()
        finally:
            sup.stop(timeout=10, final_sync=True)
        assert sum(highest.values()) == CONFIRMED and len(ids) == CONFIRMED + DRAFTS + 1

        # --- it dies; the technician has the kit and hall.toml ---------------------------------
        shutil.copytree(settings.keys_dir, kit)
        new_dir.mkdir()
        shutil.copy(settings.config_path, new_dir / "hall.toml")
        shutil.rmtree(old_dir)

        rebuilt = _hall(new_dir, "replica", "rebuild", "--keys", str(kit), "--json")
        assert rebuilt.returncode == 1, (rebuilt.stdout, rebuilt.stderr)  # one record lost its pages
        out = json.loads(rebuilt.stdout)
        assert out["blobs"]["records_affected"] == [unshipped], out
        assert out["records"] == len(ids) and out["records_opened"] == len(ids) - 1, out
        assert [u["record_id"] for u in out["unreadable"]] == [unshipped]
        assert [(j["job_id"], j["name"], j["counter"]) for j in out["lost_jobs"]] == [
            (pending, "申请表-张三.jpg", "c1")
        ]
        assert [(q["job_id"], q["name"]) for q in out["lost_quarantine"]] == [(held, "损坏.pdf")]
        assert out["device_key"] == "kept"
        again = _hall(new_dir, "replica", "rebuild", "--keys", str(kit))
        assert again.returncode == 2 and "already has a catalog" in again.stderr, again.stderr

        # --- box B: every record as it was ------------------------------------------------------
        new = Settings.load(new_dir)
        ctx = open_context(new)
        try:
            for rid in ids:
                if rid != unshipped:
                    assert _content(ctx, rid) == truth[rid], f"record {rid} differs after the rebuild"
            job = ctx.conn.execute("SELECT state, reason_code FROM jobs WHERE id=?", (pending,)).fetchone()
            assert tuple(job) == ("quarantined", LOST_CODE)
            status = _hall(new_dir, "status")
            assert "申请表-张三.jpg" in status.stdout and LOST_CODE in status.stdout, status.stdout
            public = FileKeySource(new.keys_dir).device_key().public_key()
            chain = audit.verify(ctx.conn, {audit.key_id(public): public}, appliance_id=new.hall_id)
            assert chain.ok, chain
            assert [e.action for e in audit.entries(ctx.conn, action="device.rebuild")] == ["device.rebuild"]
            # numbering continues without a gap; the archive takes the new record from the new box
            draft = next(r for r in ids if r not in confirmed and r != unshipped)
            record_metadata.edit(ctx.store, new, draft, DRAFT_METADATA, actor="user:drill")
            code = record_metadata.confirm(ctx.store, new, draft, actor="user:drill")
            prefix, item = code.rsplit("-", 1)
            assert int(item) == highest.get(prefix, 0) + 1, (code, highest)
            sent = Transferer(new).run_once(ctx)
            assert sent.accepted == 1, sent.as_dict()
            state = dict(ctx.conn.execute("SELECT id, status FROM records").fetchall())
            assert state[draft] == "transferred"
            assert all(state[r] == "transferred" for r in confirmed)
        finally:
            ctx.close()
        with closing(sqlite3.connect(archive.sqlite_path)) as db:
            held_there = {r[0] for r in db.execute("SELECT record_id FROM records")}
        assert held_there == {*confirmed, draft}

        # --- and it replicates to the same place --------------------------------------------------
        sup = LitestreamSupervisor(new, probe_interval_s=0.5)
        sup.start()
        try:
            ctx = open_context(new)
            try:
                add_records(ctx, 3, seed=123)
            finally:
                ctx.close()
            wait_for(lambda: sup.health()["state"] == "ok", 30, "replication ok on the new box")
            check = verify(new, timeout_s=60)
            assert check.ok and check.synced, check.to_dict()
        finally:
            sup.stop(timeout=10, final_sync=False)
    finally:
        server.stop()
