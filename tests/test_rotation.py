"""``hall keys rotate``: a new hall key (KEK), every data key re-wrapped under it, the old key
destroyed — and all of it resumable after a kill at any point (see appliance/rotation.py).

Kills come two ways: the real ``hall keys rotate`` command SIGKILLed by a timer (seeded, the
delays are printed), and a subprocess that SIGKILLs itself at an exact step boundary
(``tests/store_workers.py``), because the interesting windows are microseconds wide."""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import time
from collections.abc import Collection
from contextlib import closing
from pathlib import Path

import pytest

from appliance import audit, shredding
from appliance.errors import KeyMissing
from appliance.keys import FileKeySource
from appliance.rotation import rotate
from appliance.samples.records import SyntheticRecord, add_records
from appliance.settings import Settings
from tests.conftest import make_settings
from tests.store_workers import HALL, ROOT, hall, kill9, meta_value, opened, python, read_only

ACTOR = "t"


# --- checks ---------------------------------------------------------------------------------------
def kek_files(settings: Settings) -> list[str]:
    """Every hall key file in keys/kek/, hidden temporaries included (a lock file is not one)."""
    return sorted(p.name for p in FileKeySource(settings.keys_dir).kek_dir.iterdir() if "kek-" in p.name)


def dek_keys(settings: Settings) -> dict[str | None, int]:
    """How many live (not shredded) data keys each hall key wraps."""
    with closing(read_only(settings.catalog_path)) as conn:
        rows = conn.execute("SELECT kek_id, COUNT(*) FROM deks WHERE wrapped IS NOT NULL GROUP BY kek_id")
        return {r[0]: r[1] for r in rows}


def assert_rotation_finished(
    settings: Settings, truth: list[SyntheticRecord], shredded: Collection[str] = ()
) -> str:
    """One key file, the current one; it wraps every data key; every record reads back on a
    new context (the old key files are really gone); the audit chain is intact. Returns the key."""
    with closing(read_only(settings.catalog_path)) as conn:
        current = meta_value(conn, "kek_current")
        assert current is not None
        assert meta_value(conn, "kek_rotation_target") is None, "the rotation is still marked in progress"
        others = conn.execute("SELECT COUNT(*) FROM deks WHERE kek_id != ?", (current,)).fetchone()[0]
        assert others == 0, f"{others} data key rows name another hall key than {current}"
        live = conn.execute("SELECT COUNT(*) FROM deks WHERE wrapped IS NOT NULL").fetchone()[0]
    assert kek_files(settings) == [f"{current}.key"], "exactly the current hall key file remains"
    assert live == len(truth) - len(shredded) + 1, "every record's key (and the audit key) is still there"
    with opened(settings) as app:
        for rec in truth:
            if rec.record_id in shredded:
                continue
            got = app.store.get(rec.record_id, actor=ACTOR)
            assert [line["text"] for line in got["pages"][0]["lines"]] == rec.lines, rec.record_id
            assert got["original_name"] == f"{rec.content.person.name}.jpg"
        public = app.keyring.keys.device_key().public_key()
        report = audit.verify(app.conn, {audit.key_id(public): public}, appliance_id=settings.hall_id)
        assert report.ok, report.breaks
        last = audit.entries(app.conn, action="keys.rotate", descending=True, limit=1)
        assert last and last[0].target == current, "the rotation that made the current key is audited"
    return current


# --- plain rotation ---------------------------------------------------------------------------------
def test_rotate_rewraps_every_data_key_and_destroys_the_old_hall_key(fresh_settings: Settings) -> None:
    settings = fresh_settings
    with opened(settings) as app:
        truth = add_records(app, 50, seed=11, batch=20)
        gone = truth[7]
        shredding.shred(app.store, gone.record_id, actor=ACTOR, reason="审批 2026-03")
        old = app.keyring.current_kek_id(app.conn)
        assert kek_files(settings) == [f"{old}.key"]
        rep = rotate(app.keyring, app.conn, app.audit, actor=ACTOR)
        assert rep.new_kek != old and rep.destroyed == [old] and not rep.resumed
        assert rep.rewrapped == 50 - 1 + 1, "49 live record keys and the audit key"
        assert app.keyring.current_kek_id(app.conn) == rep.new_kek
        # the shredded row now names the new key too, and stays destroyed
        row = app.conn.execute("SELECT * FROM deks WHERE id=(SELECT dek_id FROM records WHERE id=?)",
                               (gone.record_id,)).fetchone()  # fmt: skip
        assert (row["kek_id"], row["wrapped"], row["sealed"]) == (rep.new_kek, None, None)
        entry = audit.entries(app.conn, action="keys.rotate")
        assert [(e.target, e.detail) for e in entry] == [(rep.new_kek, {"rewrapped": 50, "resumed": False})]
    with pytest.raises(KeyMissing):
        FileKeySource(settings.keys_dir).kek(old)
    assert assert_rotation_finished(settings, truth, {gone.record_id}) == rep.new_kek


# --- kill -9 of `hall keys rotate` at random moments ---------------------------------------------------
def _progress(conn: sqlite3.Connection) -> tuple[str | None, int]:
    """The rotation target and how many live data keys it wraps already."""
    target = meta_value(conn, "kek_rotation_target")
    if target is None:
        return None, 0
    sql = "SELECT COUNT(*) FROM deks WHERE kek_id=? AND wrapped IS NOT NULL"
    return target, int(conn.execute(sql, (target,)).fetchone()[0])


@pytest.mark.parametrize("seed", [1, 2])
def test_rotation_killed_at_random_moments_resumes_and_finishes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 300, seed=seed, batch=100)
        original = app.keyring.current_kek_id(app.conn)
    live = len(truth) + 1
    modes = ["early", *rng.sample(["mid", "mid", "mid", "early"], 4), "mid"]
    cmd = [HALL, "--data-dir", str(settings.data_dir), "keys", "rotate", "--batch", "1"]
    log: list[str] = []
    halfway = 0  # kills that left a rotation half done
    with closing(read_only(settings.catalog_path)) as conn:
        for i, mode in enumerate(modes):
            before = _progress(conn)
            proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            t0 = time.monotonic()
            if mode == "early":  # still starting up: before the target is written
                delay = rng.uniform(0.0, 0.3)
                time.sleep(delay)
            else:  # once this run has re-wrapped something, a few batches more
                delay = rng.uniform(0.0, 0.03)
                while proc.poll() is None and _progress(conn) == before:
                    time.sleep(0.0005)
                    if time.monotonic() - t0 > 30:
                        kill9(proc)
                        raise AssertionError(f"kill {i}: hall keys rotate made no progress in 30 s")
                time.sleep(delay)
            status = kill9(proc)
            target, moved = _progress(conn)
            log.append(f"kill {i} ({mode}) after {time.monotonic() - t0:.3f}s (+{delay:.4f}s): exit {status},"
                       f" target={target} moved={moved}/{live} keys={kek_files(settings)}")  # fmt: skip
            print(log[-1])
            missing = set(dek_keys(settings)) - {f.removesuffix(".key") for f in kek_files(settings)}
            assert not missing, (
                f"data keys are wrapped under hall keys whose files are gone: {missing}",
                log,
            )
            halfway += target is not None and 0 < moved < live
        target, moved = _progress(conn)
    assert halfway >= 2, ("too few kills landed in the middle of a rotation to test resuming", log)
    done = hall(settings.data_dir, "keys", "rotate", "--batch", "7")
    assert done.returncode == 0, (done.stdout, done.stderr, log)
    m = re.search(r"hall key is now (\S+): (\d+) data keys re-wrapped", done.stdout)
    assert m is not None, done.stdout
    assert ("(resumed)" in done.stdout) == (target is not None), (done.stdout, log)
    if target is not None:
        assert m.group(1) == target, "a resumed rotation finishes the key it started"
    assert int(m.group(2)) == live - moved, "each data key is re-wrapped once per rotation"
    current = assert_rotation_finished(settings, truth)
    assert current == m.group(1) and current != original


# --- kills at exact step boundaries -----------------------------------------------------------------
def _killed_at(settings: Settings, point: str, after: int = 0) -> None:
    code = "import sys; from tests.store_workers import rotate_killed_at as r; r(*sys.argv[1:3], int(sys.argv[3]))"  # noqa: E501
    proc = python(code, str(settings.data_dir), point, str(after))
    try:
        status = proc.wait(60)
    finally:
        kill9(proc)
    assert status == -9, f"the rotation was to be killed at {point!r} but exited {status}"


def test_kill_after_the_new_key_is_written_leaves_an_orphan_the_next_run_destroys(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 40, seed=5)
        original = app.keyring.current_kek_id(app.conn)
    _killed_at(settings, "key-written")
    orphans = [f for f in kek_files(settings) if f != f"{original}.key"]
    assert len(orphans) == 1, kek_files(settings)
    assert dek_keys(settings) == {original: 41}
    with closing(read_only(settings.catalog_path)) as conn:
        assert meta_value(conn, "kek_rotation_target") is None
    # Killed mid-way: the orphan is destroyed, the new target is half done, both keys read.
    _killed_at(settings, "after-batch", 14)
    files = kek_files(settings)
    assert orphans[0] not in files and len(files) == 2, files
    with closing(read_only(settings.catalog_path)) as conn:
        target = meta_value(conn, "kek_rotation_target")
    assert target is not None and dek_keys(settings) == {original: 41 - 14, target: 14}
    with opened(settings) as app:
        for rec in truth:
            assert app.store.master(rec.record_id, actor=ACTOR) is not None
    done = hall(settings.data_dir, "keys", "rotate", "--batch", "7")
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout and f"hall key is now {target}: 27 data keys" in done.stdout
    assert assert_rotation_finished(settings, truth) == target


def test_kill_between_making_the_new_key_current_and_destroying_the_old(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 20, seed=6)
        original = app.keyring.current_kek_id(app.conn)
    _killed_at(settings, "destroy-old")
    with closing(read_only(settings.catalog_path)) as conn:
        current = meta_value(conn, "kek_current")
        assert current != original and meta_value(conn, "kek_rotation_target") is None
    assert kek_files(settings) == sorted([f"{original}.key", f"{current}.key"])
    done = hall(settings.data_dir, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert "(resumed)" not in done.stdout
    final = assert_rotation_finished(settings, truth)
    assert final not in (original, current)


def test_kill_while_the_new_key_file_is_being_written_leaves_no_key_material(tmp_path: Path) -> None:
    """The new key is in a temporary file (``.kek-….key.<uuid>.tmp``, fsync'd) when the power
    goes. The next run must not leave that copy of key material behind in keys/kek/."""
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 10, seed=8)
    _killed_at(settings, "key-file-tmp")
    assert len(kek_files(settings)) == 2, kek_files(settings)  # the key and the half-made one
    done = hall(settings.data_dir, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert_rotation_finished(settings, truth)


# --- records stored while a rotation is in progress ---------------------------------------------------
def test_records_stored_during_a_rotation_end_up_under_the_new_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 60, seed=21, batch=30)
        original = app.keyring.current_kek_id(app.conn)
    _killed_at(settings, "after-batch", 21)
    with closing(read_only(settings.catalog_path)) as conn:
        target = meta_value(conn, "kek_rotation_target")
    assert target is not None
    with opened(settings) as app:  # the box keeps taking in paper meanwhile
        late = add_records(app, 25, seed=22, batch=10)
    assert dek_keys(settings) == {original: 61 - 21 + 25, target: 21}, "new keys come from the current key"
    with opened(settings) as app:
        rep = rotate(app.keyring, app.conn, app.audit, actor=ACTOR, batch=7)
    assert rep.resumed and rep.new_kek == target and rep.rewrapped == 61 - 21 + 25
    assert rep.destroyed == [original]
    assert assert_rotation_finished(settings, truth + late) == target


# --- two rotations at once -------------------------------------------------------------------------
def test_two_rotations_at_once_never_lose_the_hall_key(tmp_path: Path) -> None:
    """Two operators start ``hall keys rotate`` at the same moment. Interleaving forced with
    pauses: B has seen "no rotation in progress" and is about to destroy orphan key files; A then
    creates its key, records it as the target and reads it to start re-wrapping; B goes on.
    Whatever the runs report, afterwards (and after one more rotation) every record must read."""
    settings = make_settings(tmp_path / "data")
    with opened(settings) as app:
        truth = add_records(app, 30, seed=31)
    gate = tmp_path / "gate"
    gate.mkdir()
    code = "import sys; from tests.store_workers import rotate_pausing as r; r(*sys.argv[1:5])"
    b = python(code, str(settings.data_dir), "before-orphan-scan", str(gate), "B")
    a: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not (gate / "B.ready").exists():
            assert b.poll() is None and time.monotonic() < deadline, "B never reached its pause"
            time.sleep(0.01)
        a = python(code, str(settings.data_dir), "after-new-key-read", str(gate), "A")
        deadline = time.monotonic() + 5  # a fixed rotation may make A wait for B: then go on
        while not (gate / "A.ready").exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        (gate / "B.go").touch()
        b_status = b.wait(30)
        (gate / "A.go").touch()
        a_status = a.wait(30)
    finally:
        kill9(b)
        if a is not None:
            kill9(a)
    print(f"B exited {b_status}, A exited {a_status}; key files {kek_files(settings)}")
    with closing(read_only(settings.catalog_path)) as conn:
        current = meta_value(conn, "kek_current")
    assert f"{current}.key" in kek_files(settings), (
        f"the catalog's current hall key {current} has no key file: every record is lost"
    )
    done = hall(settings.data_dir, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert_rotation_finished(settings, truth)
