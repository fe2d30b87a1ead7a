"""Catalog replication to a real S3 service (SeaweedFS ``weed mini`` on 127.0.0.1, one per module):
the supervised Litestream reaches ``ok`` and the replica restores row for row; while the S3 service
is frozen (SIGSTOP) or stopped (for 60 s, while records keep coming), commits are never blocked and
health goes ``down``; once it is back, health returns to ``ok`` and the replica holds every row,
including those written during the outage."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.context import Context, open_context
from appliance.samples.records import add_records
from appliance.settings import Settings
from sync.litestream import LitestreamSupervisor
from sync.replica import TableCheck, verify
from tests.conftest import make_settings
from tests.seaweed_harness import SeaweedS3, seaweed_s3

pytestmark = pytest.mark.timeout(240)

KEY_ENV = "HALL_TEST_S3_ACCESS_KEY"
SECRET_ENV = "HALL_TEST_S3_SECRET_KEY"
HEALTH_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.5
# health(): "down" once probes have failed for > 3 × health_timeout_s + probe interval; a probe
# itself takes at most health_timeout_s + 3 s (run_bounded kills it), plus slack for a slow box.
DOWN_WITHIN_S = 4 * HEALTH_TIMEOUT_S + PROBE_INTERVAL_S + 3 + 5
OK_WITHIN_S = 40.0  # the notes measured up to 20 s of SDK backoff before catch-up
MAX_WRITE_S = 2.0  # one batch of records while the store is unreachable
OUTAGE_S = 60.0  # the stopped-store test keeps S3 down this long while records keep coming


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    root = tmp_path_factory.mktemp("seaweed")
    try:
        cm = seaweed_s3(root)
        server = cm.__enter__()
    except RuntimeError as e:  # never skip: a missing S3 service is a failure
        pytest.fail(f"cannot start the SeaweedFS S3 service for the replication tests: {e}")
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)
        assert server.proc is None


@pytest.fixture
def replicated(
    s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[Settings, Context, LitestreamSupervisor]]:
    monkeypatch.setenv(KEY_ENV, s3.access_key)
    monkeypatch.setenv(SECRET_ENV, s3.secret_key)
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent.pem")  # must be removed for the child
    settings = make_settings(
        tmp_path / "d",  # short: the control socket path is limited to ~104 bytes
        replication={
            "target": "s3",
            "s3_endpoint": s3.endpoint,
            "s3_bucket": s3.bucket,
            "s3_path": f"halls/{request.node.name}",  # one prefix per test in the shared bucket
            "s3_access_key_env": KEY_ENV,
            "s3_secret_key_env": SECRET_ENV,
            "sync_interval_s": 0.2,
            "health_timeout_s": HEALTH_TIMEOUT_S,
        },
    )
    app = open_context(settings)
    sup = LitestreamSupervisor(settings, probe_interval_s=PROBE_INTERVAL_S)
    sup.start()
    try:
        yield settings, app, sup
    finally:
        if s3.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                s3.resume()  # a failed test must not leave the server frozen for the next one
        sup.stop(timeout=5, final_sync=False)
        app.close()
        assert sup.pid is None


def wait_for(pred: Callable[[], bool], timeout: float, what: str, sup: LitestreamSupervisor) -> float:
    """Seconds it took; fails after ``timeout`` naming the last health."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; health {sup.health()}")


def _state(sup: LitestreamSupervisor, want: str) -> Callable[[], bool]:
    return lambda: sup.health()["state"] == want


def _write_during_outage(app: Context, sup: LitestreamSupervisor, seed: int, at_least_s: float = 0.0) -> int:
    """Write batches until health is ``down`` (and ``at_least_s`` have passed); each batch must
    commit promptly. Returns rows."""
    written = 0
    t0 = time.monotonic()
    seen_down = False
    while not seen_down or time.monotonic() - t0 < at_least_s:
        if not seen_down:
            elapsed = time.monotonic() - t0
            assert elapsed < DOWN_WITHIN_S, f"not down after {DOWN_WITHIN_S} s: {sup.health()}"
        t = time.monotonic()
        add_records(app, 5, seed=seed + written)
        took = time.monotonic() - t
        assert took < MAX_WRITE_S, f"a commit waited {took:.2f} s while the S3 store was unreachable"
        written += 5
        time.sleep(0.3)
        seen_down = seen_down or sup.health()["state"] == "down"
    health = sup.health()
    assert health["error"] and health["pid"] is not None  # Litestream itself is still running
    return written


def _records(report_tables: list[TableCheck]) -> int:
    return {t.table: t.live.rows for t in report_tables if t.live}["records"]


def test_s3_replica_is_exact_and_survives_a_frozen_store(
    s3: SeaweedS3, replicated: tuple[Settings, Context, LitestreamSupervisor]
) -> None:
    settings, app, sup = replicated
    add_records(app, 30, seed=1)
    wait_for(_state(sup, "ok"), 30, "replication ok", sup)
    report = verify(settings, timeout_s=30)
    assert report.ok and report.synced, report.to_dict()
    assert _records(report.tables) == 30

    s3.pause()  # SIGSTOP: connections hang instead of being refused
    t0 = time.monotonic()
    try:
        during = _write_during_outage(app, sup, seed=1000)
    finally:
        s3.resume()
    down_s = time.monotonic() - t0
    add_records(app, 10, seed=9999)
    ok_s = wait_for(_state(sup, "ok"), OK_WITHIN_S, "ok after the store resumed", sup)
    print(f"frozen store: down after {down_s:.1f} s ({during} rows written), ok {ok_s:.1f} s after resume")
    report = verify(settings, timeout_s=30)
    assert report.ok and report.synced, report.to_dict()
    assert _records(report.tables) == 30 + during + 10


def test_s3_replica_catches_up_after_the_store_restarts(
    s3: SeaweedS3, replicated: tuple[Settings, Context, LitestreamSupervisor]
) -> None:
    settings, app, sup = replicated
    add_records(app, 20, seed=2)
    wait_for(_state(sup, "ok"), 30, "replication ok", sup)

    add_records(app, 5, seed=3)  # mid-batch: the store goes away right after a commit
    t0 = time.monotonic()
    s3.stop()  # terminated: same data dir and ports on restart
    stop_s = time.monotonic() - t0
    try:
        during = _write_during_outage(app, sup, seed=2000, at_least_s=OUTAGE_S)
    finally:
        down_s = time.monotonic() - t0
        s3.start()
    start_s = time.monotonic() - t0 - down_s
    ok_s = wait_for(_state(sup, "ok"), OK_WITHIN_S, "ok after the store restarted", sup)
    print(f"stopped store: stop {stop_s:.1f} s, down after {down_s:.1f} s ({during} rows written), "
          f"restart {start_s:.1f} s, ok {ok_s:.1f} s after restart")  # fmt: skip
    assert sup.health()["restarts"] == 0  # Litestream rode out the outage; it was not restarted
    report = verify(settings, timeout_s=30)
    assert report.ok and report.synced, report.to_dict()
    assert _records(report.tables) == 20 + 5 + during
    assert down_s >= OUTAGE_S
