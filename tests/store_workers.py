"""Code the rotation, numbering and shredding tests run in plain subprocesses
(``subprocess.Popen([sys.executable, "-c", ...])``, never multiprocessing), plus the small helpers
those tests share.

A subprocess that must die at an exact point (between two steps of ``hall keys rotate``, inside a
confirm transaction) SIGKILLs itself there: the same thing a power cut or ``kill -9`` does, but at
a point a timer could only hit by luck. Each function documents where it dies.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

from appliance import record_metadata
from appliance.context import Context, open_context
from appliance.keyring import KeyRing
from appliance.keys import FileKeySource
from appliance.rotation import rotate
from appliance.samples.records import SyntheticRecord
from appliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HALL = str(Path(sys.executable).with_name("hall"))
WAIT_S = 30.0


# --- helpers shared by the tests ------------------------------------------------------------------
@contextmanager
def opened(settings: Settings) -> Iterator[Context]:
    app = open_context(settings)
    try:
        yield app
    finally:
        app.close()


def valid_metadata(rec: SyntheticRecord, **overrides: Any) -> dict[str, Any]:
    """Metadata that passes confirmation (the hall defaults add fonds, retention, 密级, pages)."""
    c = rec.content
    meta: dict[str, Any] = {
        "title": c.title,
        "date": c.apply_date.isoformat(),
        "matter": c.matter,
        "applicant": c.person.name,
        "id_number": c.person.id_number,
    }
    meta.update(overrides)
    return meta


def python(code: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -c code args…`` in its own session (so nothing outlives a kill)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, start_new_session=True)


def hall(
    data_dir: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``hall`` command to completion (stdin: what the operator types)."""
    return subprocess.run(
        [HALL, "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def kill9(proc: subprocess.Popen[Any]) -> int:
    """SIGKILL the process's whole session and reap it; returns its exit status."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(10)


def read_only(path: Path) -> sqlite3.Connection:
    """A plain connection for a test to watch the catalog while another process writes it."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def meta_value(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)  # never reached


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {path}")
        time.sleep(0.005)


# --- hall keys rotate, killed or paused at exact points --------------------------------------------
# The hooks are installed once the context is open, so only calls made by the rotation count.
def rotate_killed_at(data_dir: str, point: str, after: int = 0, batch: int = 7) -> None:
    """Run the rotation ``hall keys rotate`` runs, and SIGKILL this process at ``point``:

    - ``key-file-tmp``: the new key's temporary file is written and fsync'd, not yet renamed;
    - ``key-written``: the new key file exists, the catalog does not name it yet (step 1 done);
    - ``after-batch``: once ``after`` data keys are re-wrapped (step 3, mid-way);
    - ``destroy-old``: the new key is current (step 4 committed), before the old one is destroyed
      (call it on a data dir without orphan key files, so the first destroy is the one of step 5).
    """
    after_batch: Callable[[int], None] | None = None

    def die_after(done: int) -> None:
        if done >= after:
            _die()

    real_replace, real_create = os.replace, FileKeySource.create_kek

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        if Path(dst).parent.name == "kek":
            _die()
        real_replace(src, dst, **kw)

    def create_kek(self: FileKeySource) -> str:
        real_create(self)
        _die()
        raise AssertionError("unreachable")

    def destroy_kek(self: FileKeySource, kek_id: str) -> None:
        _die()

    with opened(Settings.load(Path(data_dir))) as app:
        if point == "key-file-tmp":
            os.replace = replace
        elif point == "key-written":
            FileKeySource.create_kek = create_kek  # type: ignore[method-assign]
        elif point == "after-batch":
            after_batch = die_after
        elif point == "destroy-old":
            FileKeySource.destroy_kek = destroy_kek  # type: ignore[method-assign]
        else:
            raise SystemExit(f"unknown kill point {point!r}")
        rotate(app.keyring, app.conn, app.audit, actor="cli:test", batch=batch, after_batch=after_batch)
    raise SystemExit(f"the rotation finished without reaching {point!r}")


def rotate_pausing(data_dir: str, point: str, gate: str, name: str) -> None:
    """Run the rotation; at ``point`` write ``gate/<name>.ready`` and wait for ``gate/<name>.go``:

    - ``before-orphan-scan``: the run has seen that no rotation is in progress and is about to
      look for orphan key files (its first ``current_kek_id`` call);
    - ``after-new-key-read``: the run has created its new key, recorded it as the target and read
      it for re-wrapping, before the first batch commits.
    """
    ready, go = Path(gate) / f"{name}.ready", Path(gate) / f"{name}.go"
    paused = False

    def pause() -> None:
        nonlocal paused
        if not paused:
            paused = True
            ready.touch()
            _wait_for(go)

    real_current = KeyRing.current_kek_id
    real_create, real_kek = FileKeySource.create_kek, FileKeySource.kek
    created: list[str] = []

    def current_kek_id(conn: sqlite3.Connection) -> str:
        pause()
        return real_current(conn)

    def create_kek(self: FileKeySource) -> str:
        created.append(real_create(self))
        return created[-1]

    def kek(self: FileKeySource, kek_id: str) -> bytes:
        key = real_kek(self, kek_id)
        if kek_id in created:
            pause()
        return key

    with opened(Settings.load(Path(data_dir))) as app:
        if point == "before-orphan-scan":
            KeyRing.current_kek_id = staticmethod(current_kek_id)  # type: ignore[method-assign]
        elif point == "after-new-key-read":
            FileKeySource.create_kek = create_kek  # type: ignore[method-assign]
            FileKeySource.kek = kek  # type: ignore[method-assign]
        else:
            raise SystemExit(f"unknown pause point {point!r}")
        rep = rotate(app.keyring, app.conn, app.audit, actor=f"cli:{name}", batch=50)
    print(f"{name}: rotated to {rep.new_kek}, resumed={rep.resumed}", flush=True)


# --- confirm workers ----------------------------------------------------------------------------
def confirm_worker(settings_json: str, seed: int, self_kill: float, pause_s: float) -> None:
    """Confirm random draft records until none is left. With probability ``self_kill`` per
    confirmation this process SIGKILLs itself after the last write of the confirm transaction,
    before its COMMIT (the 档号 counter moved, the record updated, the audit entry appended)."""
    settings = Settings.model_validate_json(settings_json)
    rng = random.Random(seed)
    actor = f"worker:{os.getpid()}"
    with opened(settings) as app:
        if self_kill:
            real_record = app.audit.record

            def record(conn: sqlite3.Connection, who: str, action: str, target: str | None,
                       detail: Any = None, *, sensitive: Any = None) -> Any:  # fmt: skip
                entry = real_record(conn, who, action, target, detail, sensitive=sensitive)
                if action == "record.confirm" and rng.random() < self_kill:
                    _die()
                return entry

            app.audit.record = record  # type: ignore[method-assign,assignment]
        while True:
            drafts = [r[0] for r in app.conn.execute("SELECT id FROM records WHERE status='draft'")]
            if not drafts:
                return
            with suppress(record_metadata.RecordStateError):  # another worker confirmed it first
                record_metadata.confirm(app.store, settings, rng.choice(drafts), actor=actor)
            time.sleep(rng.uniform(0, pause_s))


def count_rows(path: Path, sql: str, *args: Any) -> int:
    with closing(read_only(path)) as conn:
        return int(conn.execute(sql, args).fetchone()[0])
