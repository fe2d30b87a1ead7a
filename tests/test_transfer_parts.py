"""The small parts of the transfer: windows, the token bucket, retry delays, settings."""

from __future__ import annotations

import datetime as dt
import random
import threading
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.settings import Settings
from sync.link import LinkState, full_jitter, probe_delay
from sync.pacing import PacingStopped, TokenBucket
from sync.windows import Windows


def at(hh: int, mm: int) -> dt.datetime:
    return dt.datetime(2026, 11, 21, hh, mm)


def test_windows_wrap_midnight_and_say_when_they_open() -> None:
    w = Windows.parse(("22:00-06:00", "12:00-12:30"))
    assert w.is_open(at(23, 0)) and w.is_open(at(3, 59)) and w.is_open(at(12, 10))
    assert not w.is_open(at(6, 0)) and not w.is_open(at(12, 30)) and not w.is_open(at(21, 59))
    assert w.seconds_until_open(at(23, 0)) == 0
    assert w.seconds_until_open(at(11, 0)) == 3600
    assert w.seconds_until_open(at(13, 0)) == 9 * 3600
    assert Windows.parse(()).is_open(at(5, 5)) and Windows.parse(()).describe() == "always"
    assert Windows.parse(("08:00-08:00",)).is_open(at(7, 0)), "equal ends: the whole day"


def test_windows_are_checked_by_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
        Settings.load(tmp_path, {"HALL_TRANSFER__WINDOWS": '["25:00-06:00"]'})
    with pytest.raises(ConfigError, match="s3_endpoint"):
        Settings.load(tmp_path, {"HALL_TRANSFER__OBJECT_STORE": "s3"})
    s = Settings.load(tmp_path, {"HALL_TRANSFER__ARCHIVE_URL": "https://archive.example:8443/"})
    assert s.archive_base_url == "https://archive.example:8443"
    assert Settings.load(tmp_path, {}).archive_base_url == "http://127.0.0.1:8190"


def test_token_bucket_meters_the_rate_across_threads() -> None:
    now = [0.0]
    slept: list[float] = []

    class FakeStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            slept.append(timeout or 0.0)
            now[0] += timeout or 0.0
            return False

    bucket = TokenBucket(1000.0, burst_bytes=100, stop=FakeStop(), clock=lambda: now[0])
    bucket.take(100)  # the burst
    assert slept == []
    bucket.take(500)
    assert slept == [pytest.approx(0.5)]
    bucket.take(1000)
    assert sum(slept) == pytest.approx(1.5)
    assert TokenBucket.for_kbit(0) is None
    assert TokenBucket.for_kbit(8).rate == 1000  # type: ignore[union-attr]


def test_token_bucket_gives_up_when_stopping() -> None:
    stop = threading.Event()
    stop.set()
    bucket = TokenBucket(10.0, burst_bytes=1, stop=stop)
    with pytest.raises(PacingStopped):
        bucket.take(1000)


def test_retry_delays_back_off_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(1)
    for attempts in range(1, 20):
        d = full_jitter(attempts, 2.0, 900.0, rng)
        assert 0 <= d <= min(900.0, 2.0 * 2 ** (attempts - 1))
    probes = [probe_delay(n, 15.0, 900.0, rng) for n in range(1, 12)]
    assert 7.5 <= probes[0] <= 15 and all(450 <= p <= 900 for p in probes[7:])
    link = LinkState(1.0, 8.0, rng=rng)
    nxt = link.down("refused", now=100.0)
    assert link.state == "down" and 100.5 <= nxt <= 101.0
    link.up(now=102.0)
    assert link.failures == 1, "a passing probe alone does not forgive the failures"
    link.up(now=103.0, success=True)
    assert link.failures == 0 and link.last_error is None


def test_a_day_long_outage_is_probed_at_least_every_probe_max_s(tmp_path: Path) -> None:
    """After thousands of failed probes the box still notices a returning link within
    probe_max_s (default 60 s), not after the items' retry ceiling (retry_max_s, 900 s)."""
    from sync.transfer import Transferer

    settings = Settings.model_validate({"data_dir": tmp_path})
    assert (settings.transfer.probe_max_s, settings.transfer.retry_max_s) == (60.0, 900.0)
    link = Transferer(settings).link
    now = 0.0
    for _ in range(24 * 60):  # a day of probes, at most one a minute
        nxt = link.down("connection refused", now=now)
        assert 0 < nxt - now <= 60.0
        now = nxt
    assert now >= 30 * 60 * 24 * 0.9, "probes back off to the upper half of the ceiling"
    with pytest.raises(ConfigError, match="probe_max_s"):
        Settings.load(tmp_path, {"HALL_TRANSFER__PROBE_MAX_S": "1", "HALL_TRANSFER__PROBE_INTERVAL_S": "5"})
