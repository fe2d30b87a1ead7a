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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance import audit, record_metadata
from appliance.context import Context, open_context
from appliance.keys import FileKeySource
from appliance.samples.records import add_records
from appliance.settings import Settings
from provisioning.recovery_kit import make_kit
from sync import protocol
from sync.archive import ArchiveServer, ArchiveSettings, init_archive, issue_enrollment_token, public_keys
from sync.enrollment import enroll
from sync.link import ArchiveClient, EnrollmentProblem
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
SEQUENCES = "SELECT code_prefix, MAX(code_item) FROM records WHERE code_item > 0 GROUP BY 1"  # 档号 state
DRAFT_METADATA = {"title": "户口迁移申请", "date": "2026-12-01", "matter": "户籍迁移", "applicant": "李四"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed_s3(tmp_path_factory.mktemp("weed")) as server:
        yield server


@dataclass
class Central:
    dir: Path
    settings: ArchiveSettings
    server: ArchiveServer


@pytest.fixture
def central(s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Central]:
    """The central archive: a receiver whose object store is the S3 bucket (prefix archive/); the
    credentials of both the box's Litestream and its transfer in the environment."""
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
    try:
        yield Central(archive_dir, archive, server)
    finally:
        server.stop()


def _enrolled_box(data_dir: Path, s3: SeaweedS3, central: Central, replica_path: str) -> Settings:
    """Box A: its catalog replicated to ``replica_path`` in the bucket, its blobs shipped to the
    archive's object store, enrolled with the central archive (its keys pinned)."""
    settings = _box_settings(data_dir, s3, replica_path)
    token = issue_enrollment_token(central.settings, settings.hall_id)
    enroll(settings, central.server.url, token, actor="tech:drill")
    return Settings.load(data_dir)


def _box_settings(data_dir: Path, s3: SeaweedS3, replica_path: str) -> Settings:
    return make_settings(
        data_dir,
        replication={
            "target": "s3",
            "s3_endpoint": s3.endpoint,
            "s3_bucket": s3.bucket,
            "s3_path": replica_path,
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
    s3: SeaweedS3, central: Central, tmp_path: Path
) -> None:
    archive, server = central.settings, central.server
    old_dir, new_dir, kit = tmp_path / "a", tmp_path / "b", tmp_path / "kit"
    try:
        # --- box A at work --------------------------------------------------------------------
        settings = _enrolled_box(old_dir, s3, central, "replicas/drill")
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
                highest = dict(ctx.conn.execute(SEQUENCES).fetchall())
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


def test_provision_replace_takes_a_dead_boxs_place(s3: SeaweedS3, central: Central, tmp_path: Path) -> None:
    """The technician's way (issue 7): the recovery sheets instead of a key folder, a new device
    key (the dead one revoked at the archive), and numbering resumed after a record the dead box
    confirmed and sent after its replica's last transaction."""
    archive_dir, archive, server = central.dir, central.settings, central.server
    old_dir, new_dir = tmp_path / "a", tmp_path / "b"
    try:
        settings = _enrolled_box(old_dir, s3, central, "replicas/replace")
        sup = LitestreamSupervisor(settings, probe_interval_s=0.5)
        sup.start()
        try:
            ctx = open_context(settings)
            try:
                confirmed = add_confirmed(ctx, 4, seed=41, drafts=2, image_bytes=2000)
                assert Transferer(settings).run_once(ctx).accepted == 4
                ids = ctx.store.record_ids()
                truth = {rid: _content(ctx, rid) for rid in ids}
                replicated = dict(ctx.conn.execute(SEQUENCES).fetchall())
            finally:
                ctx.close()
            wait_for(lambda: sup.health()["state"] == "ok", 30, "replication ok")
            assert verify(settings, timeout_s=60).ok
        finally:
            sup.stop(timeout=10, final_sync=True)
        # After the replica's last transaction: one more record confirmed and sent to the archive.
        drafts = [r for r in ids if r not in confirmed]
        ctx = open_context(settings)
        try:
            record_metadata.edit(ctx.store, settings, drafts[0], DRAFT_METADATA, actor="user:drill")
            late_code = record_metadata.confirm(ctx.store, settings, drafts[0], actor="user:drill")
            assert Transferer(settings).run_once(ctx).accepted == 1
        finally:
            ctx.close()
        late_prefix, late_item = late_code.rsplit("-", 1)
        keys = FileKeySource(settings.keys_dir)
        kit = make_kit(keys, settings.hall_id, 2, 3)
        old_device = keys.device_key()
        old_kid = protocol.key_id(old_device.public_key())
        answers = tmp_path / "answers.toml"
        key_ids = sorted(protocol.key_id(k) for k in public_keys(archive_dir))
        answers.write_text(
            settings.config_path.read_text(encoding="utf-8")
            + f'\n[provision]\nenrollment_token = "{issue_enrollment_token(archive, settings.hall_id)}"\n'
            + f"archive_key_ids = {json.dumps(key_ids)}\n",
            encoding="utf-8",
        )
        shares = tmp_path / "shares.txt"
        shares.write_text(f"{kit.shares[2]}\n{kit.shares[0]}\n")
        shutil.rmtree(old_dir)  # the box is dead; the sheets, the answers and the archive survive

        done = _hall(
            new_dir, "provision", "replace", "--answers", str(answers), "--shares", str(shares), "--json"
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        out = json.loads(done.stdout)
        assert out["records_opened"] == out["records"] == len(ids), out
        assert out["revoked_device_keys"] == [old_kid] and out["device_key"] == "new"
        assert out["numbering_moved"] == {late_prefix: [replicated.get(late_prefix, 0), int(late_item)]}, out

        new = Settings.load(new_dir)
        new_keys = FileKeySource(new.keys_dir)
        assert protocol.key_id(new_keys.device_key().public_key()) != old_kid
        ctx = open_context(new)
        try:
            for rid in ids:
                assert _content(ctx, rid) == truth[rid], f"record {rid} differs on the new box"
            record_metadata.edit(ctx.store, new, drafts[1], DRAFT_METADATA, actor="user:drill")
            code = record_metadata.confirm(ctx.store, new, drafts[1], actor="user:drill")
            assert code == f"{late_prefix}-{int(late_item) + 1:04d}", (code, late_code)
            sent = Transferer(new).run_once(ctx)
            assert sent.accepted == 1 and sent.rejected == 0, sent.as_dict()
        finally:
            ctx.close()
        assert _hall(new_dir, "audit", "verify").returncode == 0, "checkpoints of the old key still verify"
        client = ArchiveClient(server.url)
        try:
            with pytest.raises(EnrollmentProblem, match="revoked"):
                client.signed_call(old_device, "/api/v1/device")
            assert client.signed_call(new_keys.device_key(), "/api/v1/device")["hall_id"] == new.hall_id
        finally:
            client.close()
    finally:
        server.stop()
