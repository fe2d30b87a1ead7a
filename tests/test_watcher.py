"""The drop-folder watcher: only settled regular files are taken; temporary names wait."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from appliance.settings import DropFolder, IntakeSettings
from appliance.watcher import Candidate, DropWatcher


def _watch(root: Path, settle: float, polling: bool = False) -> tuple[DropWatcher, list[tuple[Path, bytes]]]:
    taken: list[tuple[Path, bytes]] = []

    def take(c: Candidate) -> None:
        data = c.path.read_bytes() if c.path.is_file() and not c.path.is_symlink() else b""
        taken.append((c.path, data))
        c.path.unlink()

    w = DropWatcher(
        [(DropFolder(counter="1号窗口", path=root, polling=polling), root)],
        IntakeSettings(settle_seconds=settle, rescan_seconds=60, poll_seconds=0.2),
        take,
    )
    return w, taken


def _wait_for(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_slow_chunked_writer_is_never_taken_half_written(tmp_path: Path, polling: bool) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    w, taken = _watch(root, settle=1.0, polling=polling)
    w.start()
    try:
        payload = os.urandom(400_000)
        target = root / "slow.tif"

        def writer() -> None:
            with target.open("wb") as f:
                for i in range(0, len(payload), 50_000):  # 8 chunks, 0.6 s apart: ~4.2 s in all
                    f.write(payload[i : i + 50_000])
                    f.flush()
                    time.sleep(0.6)

        t = threading.Thread(target=writer)
        t.start()
        t.join()
        _wait_for(lambda: len(taken) == 1)
        assert hashlib.sha256(taken[0][1]).digest() == hashlib.sha256(payload).digest()
    finally:
        w.stop()


def test_temporary_names_wait_until_renamed(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    w, taken = _watch(root, settle=0.3)
    w.start()
    try:
        for name in ("scan.jpg.part", "~$scan.jpg", ".hidden.jpg", "scan.tmp", "Thumbs.db"):
            (root / name).write_bytes(b"x")
        time.sleep(1.5)
        assert taken == []
        (root / "scan.jpg.part").rename(root / "scan.jpg")
        _wait_for(lambda: len(taken) == 1)
        assert taken[0][0].name == "scan.jpg"
    finally:
        w.stop()


def test_startup_rescan_and_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    (root / "2026-11-21").mkdir(parents=True)
    (root / "before.jpg").write_bytes(b"a")  # landed while the service was down
    (root / "2026-11-21" / "nested.jpg").write_bytes(b"b")
    w, taken = _watch(root, settle=0.3)
    w.start()
    try:
        _wait_for(lambda: len(taken) == 2)
        assert sorted(p.name for p, _ in taken) == ["before.jpg", "nested.jpg"]
    finally:
        w.stop()


def test_missed_events_are_caught_by_the_periodic_rescan(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    w, taken = _watch(root, settle=0.2)
    # no observers: events are lost entirely (as on an overflowing inotify queue)
    w.settings = IntakeSettings(settle_seconds=0.2, rescan_seconds=0.5)
    thread = threading.Thread(target=w._loop, daemon=True)
    thread.start()
    try:
        (root / "late.jpg").write_bytes(b"x")
        _wait_for(lambda: len(taken) == 1, timeout=5)
    finally:
        w.stop()


def test_status_reports_temporary_files_left_behind(tmp_path: Path) -> None:
    from appliance.context import open_context
    from appliance.status import LINGERING_SECONDS, status
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "data")
    inbox = settings.drop_path(settings.drop_folders[0])
    old, fresh = inbox / "scan-0042.pdf.part", inbox / "scan-0043.pdf.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    past = time.time() - LINGERING_SECONDS - 60
    os.utime(old, (past, past))
    ctx = open_context(settings)
    st = status(ctx)
    ctx.close()
    assert [i["name"] for i in st["lingering_temporary_files"]] == ["scan-0042.pdf.part"]


def test_inotify_overflow_triggers_an_immediate_rescan(tmp_path: Path) -> None:
    import logging

    from appliance.watcher import WATCHDOG_INOTIFY_LOGGER

    root = tmp_path / "inbox"
    root.mkdir()
    w, taken = _watch(root, settle=0.2)
    w.settings = IntakeSettings(settle_seconds=0.2, rescan_seconds=3600)  # no periodic rescan in time
    w.start()
    try:
        for obs in w._observers:  # events stop arriving, as when the kernel queue overflows
            obs.unschedule_all()
        (root / "lost-event.jpg").write_bytes(b"x")
        time.sleep(1.0)
        assert taken == []
        logging.getLogger(WATCHDOG_INOTIFY_LOGGER).warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        _wait_for(lambda: len(taken) == 1, timeout=5)
    finally:
        w.stop()


def test_a_file_its_writer_closed_is_taken_quickly_one_still_open_is_not(tmp_path: Path) -> None:
    """inotify close-write shortens the wait (closed_settle_seconds) so a page shows up at the
    counter within a second; a file still open for writing waits the full settle time."""
    root = tmp_path / "inbox"
    root.mkdir()
    taken: list[tuple[Path, float]] = []
    w = DropWatcher(
        [(DropFolder(counter="1号窗口", path=root), root)],
        IntakeSettings(settle_seconds=5.0, closed_settle_seconds=0.3, rescan_seconds=60),
        lambda c: (taken.append((c.path, time.monotonic())), c.path.unlink()),  # type: ignore[func-returns-value]
    )
    w.start()
    try:
        still_open = (root / "open.jpg").open("wb")
        still_open.write(b"\xff\xd8\xff" + os.urandom(1000))
        still_open.flush()
        t0 = time.monotonic()
        (root / "done.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(1000))
        _wait_for(lambda: any(p.name == "done.jpg" for p, _ in taken), timeout=5)
        assert taken[0][1] - t0 < 1.0, "a closed file is taken within a second"
        time.sleep(1.5)
        assert [p.name for p, _ in taken] == ["done.jpg"], "a file still being written waits"
        still_open.close()
        _wait_for(lambda: len(taken) == 2, timeout=5)
    finally:
        w.stop()


def test_a_file_renamed_into_place_is_taken_quickly(tmp_path: Path) -> None:
    """Scanners write to a temporary (ignored) name and rename when done: the rename means done."""
    root = tmp_path / "inbox"
    root.mkdir()
    taken: list[float] = []
    w = DropWatcher(
        [(DropFolder(counter="1号窗口", path=root), root)],
        IntakeSettings(settle_seconds=5.0, closed_settle_seconds=0.3, rescan_seconds=60),
        lambda c: (taken.append(time.monotonic()), c.path.unlink()),  # type: ignore[func-returns-value]
    )
    w.start()
    try:
        part = root / "scan-7.jpg.part"
        part.write_bytes(b"\xff\xd8\xff" + os.urandom(2000))
        time.sleep(0.5)  # its close-write is long past, and it is ignored while it has this name
        assert taken == []
        t0 = time.monotonic()
        part.rename(root / "scan-7.jpg")
        _wait_for(lambda: len(taken) == 1, timeout=5)
        assert taken[0] - t0 < 1.0
    finally:
        w.stop()
