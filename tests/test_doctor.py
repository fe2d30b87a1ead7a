"""``hall doctor``: every check passes on a healthy box (real kernels, real OCR models, a real
Litestream replica, the local archive's real receiver), and each fails with its own message when
its condition is broken."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from appliance.context import open_context
from appliance.keys import raw_public
from appliance.samples.records import add_records
from appliance.settings import Settings
from provisioning.doctor import NAMES, Outcome, run
from sync import local_archive
from sync.archive import ArchiveServer, Receiver
from sync.litestream import LitestreamSupervisor
from tests.conftest import make_settings
from tests.seaweed_harness import free_port
from tests.transfer_harness import wait_for, with_transfer

HALL = str(Path(sys.executable).with_name("hall"))


def _box(data_dir: Path) -> Settings:
    """A box on embedded defaults whose file replica holds its catalog (Litestream ran)."""
    settings = make_settings(data_dir, transfer={"local_port": free_port()})
    sup = LitestreamSupervisor(settings, probe_interval_s=0.3)
    sup.start()
    try:
        ctx = open_context(settings)
        try:
            add_records(ctx, 3, seed=5)
        finally:
            ctx.close()
        wait_for(lambda: sup.health()["state"] == "ok", 30, "replication ok")
    finally:
        sup.stop(timeout=10, final_sync=True)
    return settings


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Settings]:
    yield _box(tmp_path / "d")


def _one(settings: Settings, name: str) -> Outcome:
    (out,) = run(settings, only=[name])
    return out


def test_a_healthy_box_passes_every_check(box: Settings) -> None:
    done = subprocess.run(
        [HALL, "--data-dir", str(box.data_dir), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(done.stdout)
    assert [o["name"] for o in report] == list(NAMES)
    assert all(o["passed"] for o in report), report
    assert done.returncode == 0
    by = {o["name"]: o["measured"] for o in report}
    assert "CER 0.0%" in by["ocr"]
    assert "on a page turned 3.0°" in by["native"]
    assert "enrolled as" in by["archive"] and box.hall_id in by["archive"]
    assert "rows compared" in by["replica"]
    text = subprocess.run(
        [HALL, "--data-dir", str(box.data_dir), "doctor", "--only", "keys", "--only", "disk"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        text.returncode == 0
        and "通过 PASS  密钥文件" in text.stdout
        and "2 of 2 checks passed" in text.stdout
    )


def test_a_key_with_a_loose_mode_fails_the_keys_check(box: Settings) -> None:
    os.chmod(box.keys_dir / "index.key", 0o644)
    out = _one(box, "keys")
    assert not out.passed and "index key" in out.measured and "chmod 0400" in out.measured
    done = subprocess.run(
        [HALL, "--data-dir", str(box.data_dir), "doctor", "--only", "keys"], capture_output=True
    )
    assert done.returncode == 1 and "失败 FAIL" in done.stdout.decode()


def test_a_missing_drop_folder_fails(box: Settings) -> None:
    inbox = box.drop_path(box.drop_folders[0])
    shutil.rmtree(inbox)
    out = _one(box, "drop_folders")
    assert not out.passed and f"{inbox} missing" in out.measured and out.fix and "drop folders" in out.fix
    inbox.mkdir()
    os.chmod(inbox, 0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere; the mode check is for the service user
            assert not _one(box, "drop_folders").passed
    finally:
        os.chmod(inbox, 0o700)
    assert _one(box, "drop_folders").passed


def test_an_unreachable_archive_fails(box: Settings) -> None:
    down = with_transfer(box, archive_url=f"http://127.0.0.1:{free_port()}")
    out = _one(down, "archive")
    assert not out.passed and "unreachable" in out.measured and out.fix and "network" in out.fix


def test_a_skewed_clock_fails(box: Settings) -> None:
    receiver = Receiver(local_archive.archive_settings(box), clock=lambda: time.time() + 600)
    server = ArchiveServer(local_archive.archive_settings(box), "127.0.0.1", 0, receiver=receiver).start()
    try:
        out = _one(with_transfer(box, archive_url=server.url), "archive")
    finally:
        server.stop()
        receiver.close()
    m = re.search(r"clock is ([-+]\d+) s off the archive", out.measured)
    assert not out.passed and m is not None and abs(int(m.group(1)) + 600) <= 2, out.measured
    assert out.fix and "NTP" in out.fix


def test_a_revoked_device_fails_the_enrollment_check(box: Settings) -> None:
    receiver = Receiver(local_archive.archive_settings(box))
    try:
        assert receiver.revoke(box.hall_id)
    finally:
        receiver.close()
    out = _one(box, "archive")
    assert not out.passed and "revoked" in out.measured and out.fix and "hall enroll" in out.fix


def test_ocr_that_reads_nothing_fails(box: Settings) -> None:
    raw = box.model_dump()
    raw["ocr"] = {**raw["ocr"], "engine": "none"}
    out = _one(Settings.model_validate(raw), "ocr")
    assert not out.passed and "CER 100.0%" in out.measured


def test_no_replica_fails_with_what_to_do(tmp_path: Path) -> None:
    fresh = make_settings(tmp_path / "fresh")
    out = _one(fresh, "replica")
    assert not out.passed and out.fix and "[replication]" in out.fix


def test_the_test_record_is_checked_by_the_archive_and_stored_nowhere(box: Settings) -> None:
    out = _one(box, "transfer")
    assert out.passed and "selftest-passed, signature verified" in out.measured, out
    objects = box.local_archive_dir / "objects"
    assert not [p for p in objects.rglob("*") if p.is_file()], "the test objects were left in the store"
    with closing(sqlite3.connect(box.local_archive_dir / "archive.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM packages").fetchone()[0] == 0
    assert not list(box.scratch_dir.iterdir()), "the scratch data dir of the test record was left"
    # a box that seals its keys to the wrong archive key: the archive's 四性检测 says so
    pin = box.keys_dir / "archive.x25519.pub"
    os.chmod(pin, 0o644)
    pin.write_bytes(raw_public(X25519PrivateKey.generate().public_key()))
    os.chmod(pin, 0o444)
    bad = _one(box, "transfer")
    assert not bad.passed and "selftest-failed" in bad.measured and "dek_opens" in bad.measured, bad
