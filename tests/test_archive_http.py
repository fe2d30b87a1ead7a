"""The receiver over HTTP on loopback (``sync/archive/app.py`` served by :class:`ArchiveServer`):
enrollment, signed package transfer, self-revocation, body limit, staff views, error shape and
security headers; and the ``hall archive`` commands (``serve`` as a real process, stopped by
SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from appliance.cli import main
from sync import protocol
from sync.archive import ArchiveServer, ArchiveSettings, init_archive, issue_enrollment_token
from sync.objectstore import FolderObjectStore
from sync.package import BuiltPackage
from tests.archive_harness import PATH, Hall, make_hall
from tests.postgres_harness import free_port


@dataclass
class Site:
    archive_dir: Path
    staff_token: str
    hall: Hall
    server: ArchiveServer
    client: httpx.Client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    archive_dir = tmp_path / "archive"
    result = init_archive(archive_dir, "central")
    assert result.staff_token is not None and result.created_keys
    hall = make_hall(tmp_path, "hall-a", archive_dir=archive_dir, records=2, seed=4)
    settings = ArchiveSettings.load(archive_dir, {}, max_body_bytes=64 * 1024)
    server = ArchiveServer(settings, "127.0.0.1", 0).start()
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        yield Site(archive_dir, result.staff_token, hall, server, client)
    finally:
        client.close()
        server.stop()
        hall.close()


def _enroll(site: Site) -> httpx.Response:
    token = issue_enrollment_token(ArchiveSettings.load(site.archive_dir), "hall-a")
    body = {
        "token": token,
        "hall_id": "hall-a",
        "hall_name": "甲大厅",
        "device_public_key": site.hall.device_b64,
    }
    return site.client.post("/api/v1/enroll", json=body)


def _post(site: Site, body: bytes, path: str = PATH) -> httpx.Response:
    headers = protocol.sign_request(site.hall.device, "POST", path, body)
    return site.client.post(path, content=body, headers=headers)


def test_health_enroll_transfer_and_revoke_self_over_http(site: Site) -> None:
    health = site.client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["archive_id"] == "central"
    assert abs(health.json()["time"] - time.time()) < 5
    h = health.headers
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["cache-control"] == "no-store" and "frame-ancestors 'none'" in h["content-security-policy"]
    enrolled = _enroll(site)
    assert enrolled.status_code == 200 and enrolled.json()["hall_id"] == "hall-a"
    again = _enroll(site).json()  # a fresh token for the same key: the same device
    assert again["device_key_id"] == enrolled.json()["device_key_id"]
    built = site.hall.package(0)
    _ship(site, built)
    accepted = _post(site, built.body)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert _post(site, built.body).json() == accepted.json()
    revoked = _post(site, b"", "/api/v1/revoke-self")
    assert revoked.status_code == 200
    refused = _post(site, built.body)
    assert refused.status_code == 401 and refused.json() == {
        "code": "device_revoked",
        "message": refused.json()["message"],
    }


def test_a_device_asks_what_the_archive_knows_of_it(site: Site) -> None:
    unknown = _post(site, b"{}", "/api/v1/device")
    assert unknown.status_code == 401 and unknown.json()["code"] == "unknown_device"
    assert _enroll(site).status_code == 200
    path = "/api/v1/device"
    headers = protocol.sign_request(site.hall.device, "POST", path, b"{}")
    me = site.client.post(path, content=b"{}", headers=headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["archive_id"], body["hall_id"]) == ("central", "hall-a")
    assert body["device_key_id"] == protocol.key_id(site.hall.device.public_key())
    assert abs(body["skew_s"]) <= 2 and abs(body["time"] - time.time()) < 5
    replay = site.client.post(path, content=b"{}", headers=headers)
    assert replay.status_code == 409 and replay.json()["code"] == "replay"


def _ship(site: Site, built: BuiltPackage) -> None:
    site.hall.ship(FolderObjectStore(site.archive_dir / "objects"), built)


def test_errors_are_json_with_a_code(site: Site) -> None:
    bad = site.client.post("/api/v1/enroll", json={"token": "nope", "hall_id": "hall-a", "hall_name": "x",
                                                   "device_public_key": site.hall.device_b64})  # fmt: skip
    assert bad.status_code == 403 and bad.json()["code"] == "enrollment_refused"
    assert site.client.post("/api/v1/enroll", content=b"[]").json()["code"] == "protocol"
    unsigned = site.client.post(PATH, content=b"{}")
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "signature_invalid"
    missing = site.client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    big = b"x" * (64 * 1024 + 1)
    too_large = _post(site, big)
    assert too_large.status_code == 413 and too_large.json()["code"] == "too_large"


def test_staff_views_need_the_staff_token(site: Site) -> None:
    assert _enroll(site).status_code == 200
    for i in range(2):
        built = site.hall.package(i)
        _ship(site, built)
        assert _post(site, built.body).status_code == 200
    for url in ("/api/v1/archive/status", "/api/v1/archive/search?q=x"):
        assert site.client.get(url).status_code == 401
        wrong = site.client.get(url, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "staff_auth"
    auth = {"Authorization": f"Bearer {site.staff_token}"}
    status = site.client.get("/api/v1/archive/status", headers=auth).json()
    assert [(h["hall_id"], h["records"], h["packages"]) for h in status["halls"]] == [("hall-a", 2, 2)]
    person = site.hall.records[0].content.person
    found = site.client.get("/api/v1/archive/search", params={"q": person.id_number}, headers=auth).json()
    assert [h["record_id"] for h in found["hits"]] == [site.hall.records[0].record_id]
    assert site.client.get("/api/v1/archive/search", params={"q": " "}, headers=auth).status_code == 400


# --- the CLI ------------------------------------------------------------------------------------
def test_archive_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    d = str(tmp_path / "arc")
    first = runner.invoke(main, ["archive", "init", "--dir", d, "--archive-id", "prov-archive"])
    assert first.exit_code == 0, first.output
    assert "staff token:" in first.output and "created key" in first.output
    again = runner.invoke(main, ["archive", "init", "--dir", d])
    assert again.exit_code == 0 and "staff token" not in again.output and "created key" not in again.output
    clash = runner.invoke(main, ["archive", "init", "--dir", d, "--archive-id", "other"])
    assert clash.exit_code == 2 and "prov-archive" in clash.output
    token = runner.invoke(main, ["archive", "enroll-token", "--dir", d, "--hall", "hall-q", "--ttl", "60"])
    assert token.exit_code == 0 and len(token.output.strip()) >= 40
    status = runner.invoke(main, ["archive", "status", "--dir", d])
    assert status.exit_code == 0 and "no halls yet" in status.output
    assert runner.invoke(main, ["archive", "status", "--dir", d, "--json"]).output.startswith("{")
    assert (
        "no active device key"
        in runner.invoke(main, ["archive", "revoke", "--dir", d, "--hall", "hall-q"]).output
    )
    assert "no match" in runner.invoke(main, ["archive", "search", "--dir", d, "张三"]).output
    bad = runner.invoke(main, ["archive", "enroll-token", "--dir", d, "--hall", "bad hall!"])
    assert bad.exit_code == 2 and "hall id" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(main, ["archive", "status", "--dir", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "hall archive init" in missing.output


def test_archive_serve_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    d = tmp_path / "arc"
    init_archive(d, "served")
    port = free_port()
    hall = Path(sys.executable).with_name("hall")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(hall), "archive", "serve", "--dir", str(d), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "error"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert r.json()["archive_id"] == "served"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
