"""``hall provision wipe``: typed confirmation, the device key revoked at a real receiver, every key
destroyed, plaintext overwritten, the data dir emptied; without the archive it refuses unless
``--offline``, and then says who must revoke the key."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.context import open_context
from appliance.keys import FileKeySource
from appliance.samples.records import add_records
from appliance.settings import Settings
from sync import protocol
from sync.archive import ArchiveServer, ArchiveSettings, Receiver, init_archive, issue_enrollment_token
from sync.enrollment import enroll
from tests.seaweed_harness import free_port
from tests.transfer_harness import make_box, with_transfer

HALL = str(Path(sys.executable).with_name("hall"))
MARKER = "张三丰-110101199003078515".encode()


@pytest.fixture
def central(tmp_path: Path) -> Iterator[tuple[ArchiveSettings, ArchiveServer]]:
    init_archive(tmp_path / "archive", "central")
    settings = ArchiveSettings.load(tmp_path / "archive", {})
    server = ArchiveServer(settings, "127.0.0.1", 0).start()
    try:
        yield settings, server
    finally:
        server.stop()


def _box(tmp_path: Path, central: tuple[ArchiveSettings, ArchiveServer]) -> Settings:
    archive, server = central
    base = make_box(tmp_path / "d", local_port=free_port())
    enroll(base, server.url, issue_enrollment_token(archive, base.hall_id), actor="tech:test")
    settings = Settings.load(base.data_dir)
    ctx = open_context(settings)
    try:
        add_records(ctx, 3, seed=8)
    finally:
        ctx.close()
    (settings.spool_dir / "x.bin").write_bytes(b"scan " + MARKER)
    (settings.drop_path(settings.drop_folders[0]) / "scan.jpg").write_bytes(MARKER)
    return settings


def _wipe(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HALL, "--data-dir", str(settings.data_dir), "provision", "wipe", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_wipe_revokes_at_the_archive_and_leaves_nothing(
    tmp_path: Path, central: tuple[ArchiveSettings, ArchiveServer]
) -> None:
    settings = _box(tmp_path, central)
    kid = protocol.key_id(FileKeySource(settings.keys_dir).device_key().public_key())
    wrong = _wipe(settings, "--confirm", "hall-other")
    assert wrong.returncode == 2 and "type the hall id" in wrong.stderr
    assert settings.catalog_path.exists() and (settings.keys_dir / "index.key").exists()

    done = _wipe(settings, "--confirm", settings.hall_id, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["device_key_id"] == kid and report["revoked_at_archive"]
    assert report["key_files_destroyed"] >= 4 and report["plaintext_files_overwritten"] >= 2
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["WIPED.json"]
    assert MARKER not in _all_bytes(settings.data_dir)
    rx = Receiver(central[0])
    try:
        device = rx.catalog.device(kid)
        assert device is not None and device.revoked_at is not None
    finally:
        rx.close()
    again = _wipe(settings, "--confirm", settings.hall_id)
    assert again.returncode == 2 and "no box to wipe" in again.stderr


def test_without_the_archive_the_wipe_waits_unless_offline(
    tmp_path: Path, central: tuple[ArchiveSettings, ArchiveServer]
) -> None:
    settings = with_transfer(_box(tmp_path, central), archive_url=f"http://127.0.0.1:{free_port()}")
    refused = _wipe(settings, "--confirm", settings.hall_id)
    assert refused.returncode == 2 and "--offline" in refused.stderr
    assert settings.catalog_path.exists(), "a refused wipe changed something"
    done = _wipe(settings, "--confirm", settings.hall_id, "--offline", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["archive_must_revoke"] == f"hall archive revoke {settings.hall_id}"
    assert not settings.keys_dir.exists() and not settings.catalog_path.exists()
