"""Taking files into the appliance: validate the drop-folder entry, move it atomically into the
spool (same filesystem), fsync, hash, and commit a job row — before anything else happens.

Crash safety uses an intent file written before the move:

1. ``spool/<id>.intent`` (counter, name, mtime) is written and fsync'd;
2. the entry is renamed to ``spool/<id>.bin`` (atomic, durable);
3. the data is fsync'd and hashed, and the job row committed;
4. the intent file is removed.

:func:`recover` at start-up completes or undoes each step, so a file is never lost and never
yields two jobs. :func:`finalize` completes the spool side of finished jobs (delete the copy of
a stored file, move a quarantined one into quarantine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance import envelope
from appliance.catalog import transaction
from appliance.envelope import Aad
from appliance.errors import HallError, IntakeRejected
from appliance.fsutil import atomic_write, durable_rename, fsync_dir
from appliance.jobqueue import JobQueue, NewJob
from appliance.names import display_name
from appliance.records import RecordStore

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Taken:
    job_id: str
    state: str  # 'received' or 'quarantined'
    reason: str | None = None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def check_entry(path: Path, root: Path | None) -> os.stat_result:
    """lstat ``path`` and refuse anything but a plain regular file inside ``root``."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise IntakeRejected(
            f"{_kind(st.st_mode)} is not a scan; only regular files are taken", code="not_regular_file"
        )
    if st.st_nlink > 1:
        raise IntakeRejected(
            "the file is a hard link to another file; scanners never write those", code="hard_link"
        )
    if root is not None:
        real_parent = Path(os.path.realpath(path.parent))
        real_root = Path(os.path.realpath(root))
        if real_parent != real_root and real_root not in real_parent.parents:
            raise IntakeRejected("the file is outside its drop folder", code="outside_drop_folder")
    return st


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _hash_and_sync(path: Path, expect: os.stat_result | None, h: _Hasher) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (
            expect is not None and (st.st_ino, st.st_dev) != (expect.st_ino, expect.st_dev)
        ):
            raise IntakeRejected(
                "the file was replaced while it was being taken", code="replaced_during_intake"
            )
        size = 0
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
            size += len(chunk)
        os.fsync(fd)
        return h.hexdigest(), size
    finally:
        os.close(fd)


class Spool:
    def __init__(self, spool_dir: Path, quarantine_dir: Path, queue: JobQueue, store: RecordStore) -> None:
        self.dir = spool_dir
        self.quarantine_dir = quarantine_dir
        self.queue = queue
        self.store = store

    def _fingerprint(self, path: Path, expect: os.stat_result | None) -> tuple[str, int]:
        """Keyed fingerprint (HMAC-SHA256 under a key derived from the index key) and size: a
        plain SHA-256 of a citizen's scan would let anyone holding the file confirm it is here."""
        return _hash_and_sync(path, expect, self.store.index.fingerprint())

    def _intent_blob(self, job_id: str, intent: dict[str, object]) -> bytes:
        """The intent file holds the file name, so it is encrypted under the current hall key."""
        kr = self.store.keyring
        kek_id = kr.current_kek_id(self.queue.conn)
        aad = Aad(kr.appliance, job_id, 1, "spool/intent", kek_id)
        return kek_id.encode() + b"\n" + envelope.seal(kr.keys.kek(kek_id), json.dumps(intent).encode(), aad)

    def _read_intent(self, job_id: str, blob: bytes) -> dict[str, object]:
        kr = self.store.keyring
        kek_id, _, sealed = blob.partition(b"\n")
        aad = Aad(kr.appliance, job_id, 1, "spool/intent", kek_id.decode())
        out: dict[str, object] = json.loads(envelope.open_sealed(kr.keys.kek(kek_id.decode()), sealed, aad))
        return out

    def _intent(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.intent"

    def data_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.bin"

    # --- taking files ---------------------------------------------------------------------
    def take(self, path: Path, *, counter: str, root: Path | None, move: bool = True) -> Taken:
        """Take one entry. ``move=True`` (drop folders) renames it into the spool, leaving the
        drop folder empty; ``move=False`` (``hall ingest``) copies it and leaves it in place."""
        job_id = uuid.uuid4().hex
        raw_name = os.fsencode(path.name)
        try:
            st = check_entry(path, root)
        except IntakeRejected as e:
            return self._reject(path, job_id, counter, raw_name, e, move=move)
        intent = {"counter": counter, "name": raw_name.hex(), "landed_at": st.st_mtime}
        atomic_write(self._intent(job_id), self._intent_blob(job_id, intent))
        dest = self.data_path(job_id)
        try:
            if move:
                durable_rename(path, dest)
            else:
                self._copy(path, dest)
            sha, size = self._fingerprint(dest, st if move else None)
        except (IntakeRejected, OSError) as e:
            self._intent(job_id).unlink(missing_ok=True)
            if dest.exists() or dest.is_symlink():
                # Something else than what we checked was moved in: keep it, in quarantine.
                err = e if isinstance(e, IntakeRejected) else IntakeRejected(str(e), code="intake_failed")
                return self._reject(dest, job_id, counter, raw_name, err, move=True)
            raise
        self.queue.enqueue(
            NewJob(
                job_id,
                counter,
                display_name(raw_name),
                raw_name,
                "drop" if move else "cli",
                sha,
                size,
                dest,
                st.st_mtime,
            )
        )
        self._intent(job_id).unlink(missing_ok=True)
        return Taken(job_id, "received")

    def _copy(self, src: Path, dest: Path) -> None:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IntakeRejected("not a regular file", code="not_regular_file")
            with os.fdopen(os.dup(fd), "rb") as fin, open(dest, "xb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
        finally:
            os.close(fd)

    def _reject(
        self, path: Path, job_id: str, counter: str, raw_name: bytes, err: IntakeRejected, *, move: bool
    ) -> Taken:
        """Record a rejected entry as a quarantined job and keep the entry itself (moved, never
        followed or opened) in quarantine so that nothing handed over disappears silently."""
        keep = self.store.quarantine_path(job_id) if move else None
        landed = time.time()
        with transaction(self.queue.conn):
            self.queue.insert(
                NewJob(
                    job_id,
                    counter,
                    display_name(raw_name),
                    raw_name,
                    "drop" if move else "cli",
                    None,
                    None,
                    None,
                    landed,
                )
            )
        self.store.mark_quarantined(job_id, err.code, str(err), keep=keep)
        if keep is not None:
            with contextlib.suppress(FileNotFoundError):
                self.store.keep_quarantined(job_id, path)
        return Taken(job_id, "quarantined", str(err))

    # --- crash recovery -------------------------------------------------------------------
    def recover(self) -> int:
        """Complete or undo intakes interrupted by a crash. Returns how many jobs it created."""
        for tmp in self.dir.glob(".*.tmp"):  # an atomic write cut short: the target never existed
            tmp.unlink(missing_ok=True)
        created = 0
        for intent in sorted(self.dir.glob("*.intent")):
            job_id = intent.stem
            data = self.data_path(job_id)
            if self.queue.exists(job_id):
                intent.unlink(missing_ok=True)
                continue
            if not data.exists():  # the rename never happened: the file is still in the drop folder
                intent.unlink(missing_ok=True)
                continue
            try:
                info = self._read_intent(job_id, intent.read_bytes())
                raw_name = bytes.fromhex(str(info["name"]))
                counter, landed = str(info["counter"]), float(str(info["landed_at"]))
            except (ValueError, KeyError, OSError, HallError):
                raw_name, counter, landed = b"(recovered)", "recovered", data.stat().st_mtime
            sha, size = self._fingerprint(data, None)
            self.queue.enqueue(
                NewJob(
                    job_id, counter, display_name(raw_name), raw_name, "recovered", sha, size, data, landed
                )
            )
            intent.unlink(missing_ok=True)
            created += 1
        known = {r[0] for r in self.queue.conn.execute("SELECT id FROM jobs")}
        for data in sorted(self.dir.glob("*.bin")):
            if data.stem not in known and not self._intent(data.stem).exists():
                sha, size = self._fingerprint(data, None)
                self.queue.enqueue(
                    NewJob(
                        data.stem,
                        "recovered",
                        "(recovered)",
                        b"(recovered)",
                        "recovered",
                        sha,
                        size,
                        data,
                        data.stat().st_mtime,
                    )
                )
                created += 1
        fsync_dir(self.dir)
        return created

    def finalize(self) -> None:
        """Finish the spool side of finished jobs (idempotent; run at start-up and after each job)."""
        for data in sorted(self.dir.glob("*.bin")):
            row = self.queue.conn.execute("SELECT state FROM jobs WHERE id=?", (data.stem,)).fetchone()
            if row is not None:
                self.finish(data.stem, row["state"])

    def finish(self, job_id: str, state: str) -> None:
        data = self.data_path(job_id)
        if state in ("stored", "duplicate"):
            data.unlink(missing_ok=True)
        elif state == "quarantined" and os.path.lexists(data):
            self.store.keep_quarantined(job_id, data)
