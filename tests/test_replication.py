"""Catalog replication with the real Litestream and a file replica under tmp_path: the generated
config, the supervised child (restart after kill -9), restore with a timeout, and row-by-row
verification of the replica (also through ``hall replica verify``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from appliance.cli import main
from appliance.cli_replica import COMMANDS
from appliance.context import Context, open_context
from appliance.errors import ConfigError, HallError
from appliance.samples.records import add_records
from appliance.settings import Settings
from sync import litestream
from sync.litestream import LitestreamSupervisor, child_environment, config_yaml
from sync.replica import ReplicaError, digests_of, restore, verify
from tests.conftest import make_settings

pytestmark = pytest.mark.timeout(90)


def _short_data_dir(tmp_path: Path) -> Path:
    # Unix socket paths are limited to ~104 bytes; pytest's tmp paths can be long.
    return tmp_path / "d"


def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[Settings, Context, LitestreamSupervisor]]:
    settings = make_settings(_short_data_dir(tmp_path), replication={"sync_interval_s": 0.2})
    app = open_context(settings)
    sup = LitestreamSupervisor(settings, probe_interval_s=0.5)
    sup.start()
    try:
        yield settings, app, sup
    finally:
        sup.stop(timeout=5)
        app.close()
        assert sup.pid is None


def _ok(sup: LitestreamSupervisor) -> bool:
    return sup.health()["state"] == "ok"


def test_config_lists_the_catalog_with_one_replica_and_a_unix_socket_only(tmp_path: Path) -> None:
    settings = make_settings(_short_data_dir(tmp_path))
    assert settings.store.wal_autocheckpoint == 0  # derived: Litestream is the only checkpointer
    cfg = yaml.safe_load(config_yaml(settings))
    assert set(cfg) == {"socket", "dbs"}  # no "addr": no metrics/pprof listener
    assert cfg["socket"] == {"enabled": True, "path": str((settings.run_dir / "litestream.sock").resolve())}
    [db] = cfg["dbs"]
    assert db["path"] == str(settings.catalog_path.resolve())
    assert set(db) == {"path", "replica"} and db["replica"]["type"] == "file"
    assert db["replica"]["path"] == str(settings.replica_file_path.resolve())
    path = litestream.write_config(settings)
    assert path.stat().st_mode & 0o777 == 0o600

    s3 = make_settings(
        _short_data_dir(tmp_path),
        replication={"target": "s3", "s3_endpoint": "http://127.0.0.1:9", "s3_bucket": "b",
                     "s3_access_key_env": "MY_KEY", "s3_secret_key_env": "MY_SECRET"},
    )  # fmt: skip
    cfg = yaml.safe_load(config_yaml(s3))
    replica = cfg["dbs"][0]["replica"]
    assert replica["type"] == "s3" and replica["path"] == s3.hall_id and replica["force-path-style"] is True
    assert "MY_KEY" not in config_yaml(s3) and "access-key-id" not in replica
    env = child_environment(s3, {"AWS_CA_BUNDLE": "/x.pem", "MY_KEY": "k", "MY_SECRET": "s", "PATH": "/bin"})
    assert "AWS_CA_BUNDLE" not in env
    assert env["LITESTREAM_ACCESS_KEY_ID"] == "k" and env["LITESTREAM_SECRET_ACCESS_KEY"] == "s"
    with pytest.raises(ConfigError, match="MY_SECRET"):
        child_environment(s3, {"MY_KEY": "k"})
    with pytest.raises(ConfigError, match="wal_autocheckpoint"):
        Settings.load(tmp_path / "x", {"HALL_STORE__WAL_AUTOCHECKPOINT": "1000"})
    off = Settings.load(tmp_path / "x", {"HALL_REPLICATION__ENABLED": "false"})
    assert off.store.wal_autocheckpoint == 1000
    assert LitestreamSupervisor(off).health()["state"] == "not_configured"


def test_the_child_has_no_aws_ca_bundle_and_its_own_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(_short_data_dir(tmp_path))
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent.pem")  # breaks Litestream's S3 client
    sup = LitestreamSupervisor(settings, probe_interval_s=0.5)
    assert sup.health()["state"] == "stopped"
    sup.start()
    try:
        pid = sup.pid
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not any(e.startswith(b"AWS_CA_BUNDLE=") for e in environ)
        assert any(e.startswith(b"PATH=") for e in environ)
        assert os.getpgid(pid) == pid
        wait_for(lambda: _ok(sup), 20, "replication ok")
    finally:
        sup.stop(timeout=5)
    assert sup.pid is None and sup.health()["state"] == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_replica_restores_row_for_row_and_keeps_up(
    replicated: tuple[Settings, Context, LitestreamSupervisor], tmp_path: Path
) -> None:
    settings, app, sup = replicated
    add_records(app, 30, seed=1)
    wait_for(lambda: _ok(sup), 20, "replication ok")
    out = restore(settings, tmp_path / "r1.db", timeout_s=30)
    live = digests_of(settings.catalog_path)
    assert digests_of(out) == live
    assert live["records"].rows == 30 and live["jobs"].rows == 30
    assert {"deks", "pages", "audit_log"} <= set(live)

    add_records(app, 40, seed=2)
    report = verify(settings, timeout_s=30)
    assert report.ok and report.synced, report.to_dict()
    assert {t.table: t.live.rows for t in report.tables if t.live}["records"] == 70
    assert not list(settings.scratch_dir.glob("replica-verify-*"))  # scratch copy deleted


def test_a_killed_litestream_is_restarted_and_no_row_is_lost(
    replicated: tuple[Settings, Context, LitestreamSupervisor],
) -> None:
    settings, app, sup = replicated
    add_records(app, 20, seed=3)
    wait_for(lambda: _ok(sup), 20, "replication ok")
    first = sup.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: sup.health()["state"] == "down", 5, "state down")
    add_records(app, 25, seed=4)  # commits while Litestream is down are never blocked
    wait_for(lambda: sup.pid not in (None, first) and _ok(sup), 20, "restart and ok")
    assert sup.health()["restarts"] == 1
    report = verify(settings, timeout_s=30)
    assert report.ok, report.to_dict()
    assert {t.table: t.live.rows for t in report.tables if t.live}["records"] == 45


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_restore_from_an_unreachable_replica_fails_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = make_settings(_short_data_dir(tmp_path), replication={"file_path": str(tmp_path / "nowhere")})
    t0 = time.monotonic()
    with pytest.raises(ReplicaError, match=r"file replica at .*nowhere"):
        restore(missing, tmp_path / "a.db", timeout_s=10)
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "a.db").exists()

    down = make_settings(
        _short_data_dir(tmp_path),
        replication={"target": "s3", "s3_endpoint": f"http://127.0.0.1:{_closed_port()}", "s3_bucket": "b"},
    )
    monkeypatch.setenv("LITESTREAM_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("LITESTREAM_SECRET_ACCESS_KEY", "test")
    t0 = time.monotonic()
    with pytest.raises(HallError, match=r"s3 replica http://127\.0\.0\.1"):
        restore(down, tmp_path / "b.db", timeout_s=3)
    assert time.monotonic() - t0 < 8
    assert not (tmp_path / "b.db").exists()


def test_cli_verify_exits_0_on_a_healthy_replica_and_1_after_tampering(
    replicated: tuple[Settings, Context, LitestreamSupervisor],
) -> None:
    settings, app, sup = replicated
    for command in COMMANDS:
        main.add_command(command)
    add_records(app, 15, seed=5)
    wait_for(lambda: _ok(sup), 20, "replication ok")
    runner = CliRunner()
    args = ["--data-dir", str(settings.data_dir), "replica", "verify", "--json", "--timeout", "30"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["ok"] and report["tables"]["records"]["ok"]

    # Tamper: change one value of one row behind Litestream's back (stopped first, so the
    # replica never gets it). Same row counts everywhere: only the checksum can catch it.
    sup.stop(timeout=5)
    conn = sqlite3.connect(settings.catalog_path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("UPDATE records SET size = size + 1 WHERE rowid = (SELECT MIN(rowid) FROM records)")
    finally:
        conn.close()
    res = runner.invoke(main, args)
    assert res.exit_code == 1, res.output
    report = json.loads(res.output)
    assert not report["ok"] and not report["tables"]["records"]["ok"]
    assert report["tables"]["records"]["live"]["rows"] == report["tables"]["records"]["replica"]["rows"]
    assert report["tables"]["jobs"]["ok"]


def test_hall_status_reports_the_replica_state(tmp_path: Path) -> None:
    """`hall status` asks the running Litestream (one bounded sync) whether the replica is up to
    date, and says plainly when nothing replicates."""
    from appliance.status import replication_status

    settings = make_settings(_short_data_dir(tmp_path), replication={"sync_interval_s": 0.2})
    app = open_context(settings)
    try:
        down = replication_status(app)
        assert down["state"] == "down" and "not running" in down["detail"]
        sup = LitestreamSupervisor(settings, probe_interval_s=0.5)
        sup.start()
        try:
            add_records(app, 3, seed=9)
            wait_for(lambda: _ok(sup), 20, "replica ok")
            up = replication_status(app)
            assert up["state"] == "ok" and str(settings.replica_file_path) in up["target"]
        finally:
            sup.stop(timeout=5)
    finally:
        app.close()
    off = make_settings(tmp_path / "off", replication={"enabled": False})
    app = open_context(off)
    try:
        assert replication_status(app) == {"enabled": False, "state": "not_configured"}
    finally:
        app.close()


def test_storage_alerts_name_what_crossed_its_threshold(tmp_path: Path) -> None:
    from sync.litestream import storage_alerts

    quiet = make_settings(_short_data_dir(tmp_path), replication={"min_free_disk_mb": 0})
    assert storage_alerts(quiet) == []
    loud = make_settings(
        quiet.data_dir, replication={"wal_alert_mb": 1, "meta_alert_mb": 1, "min_free_disk_mb": 10**9}
    )
    meta = loud.catalog_path.with_name(".catalog.db-litestream") / "ltx"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "0001.ltx").write_bytes(os.urandom(2 * 1024 * 1024))
    app = open_context(loud)
    try:
        add_records(app, 150, seed=31)  # no Litestream running: nothing checkpoints, the WAL grows
        codes = {a["code"]: a for a in storage_alerts(loud)}
    finally:
        app.close()
    assert set(codes) == {"wal_large", "meta_large", "disk_low"}
    assert codes["wal_large"]["mb"] >= 1 and "Litestream" in str(codes["wal_large"]["message"])
