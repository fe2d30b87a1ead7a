"""Taking files into the spool: validation, the move, and recovery from every crash point."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from appliance.context import Context
from appliance.fsutil import atomic_write


def _fingerprint(ctx: Context, data: bytes) -> str:
    h = ctx.store.index.fingerprint()
    h.update(data)
    return h.hexdigest()


def _inbox(ctx: Context) -> Path:
    return ctx.settings.drop_path(ctx.settings.drop_folders[0])


def test_take_moves_file_hashes_it_and_queues_a_job(ctx: Context) -> None:
    src = _inbox(ctx) / "申请表.jpg"
    src.write_bytes(b"\xff\xd8\xff" + os.urandom(5000))
    digest = _fingerprint(ctx, src.read_bytes())
    taken = ctx.spool.take(src, counter="1号窗口", root=_inbox(ctx))
    assert taken.state == "received"
    assert not src.exists(), "the drop folder must end up empty"
    job = ctx.queue.get(taken.job_id)
    assert job is not None and job.fingerprint == digest and job.size == 5003
    assert ctx.queue.name(job.id).display == "申请表.jpg" and job.counter == "1号窗口"
    assert job.spool_path is not None and _fingerprint(ctx, job.spool_path.read_bytes()) == digest
    assert digest != hashlib.sha256(job.spool_path.read_bytes()).hexdigest(), "the fingerprint is keyed"
    assert not list(ctx.settings.spool_dir.glob("*.intent"))


def test_copy_mode_leaves_the_source(ctx: Context, tmp_path: Path) -> None:
    src = tmp_path / "x.png"
    src.write_bytes(b"data")
    taken = ctx.spool.take(src, counter="cli", root=None, move=False)
    assert taken.state == "received" and src.read_bytes() == b"data"


def test_symlink_fifo_and_hardlink_are_quarantined_without_being_followed(
    ctx: Context, tmp_path: Path
) -> None:
    inbox = _inbox(ctx)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the box")
    (inbox / "link.jpg").symlink_to(secret)
    os.mkfifo(inbox / "pipe.pdf")
    (inbox / "hard.jpg").hardlink_to(secret)
    reasons = {}
    for name in ("link.jpg", "pipe.pdf", "hard.jpg"):
        taken = ctx.spool.take(inbox / name, counter="c", root=inbox)
        assert taken.state == "quarantined"
        reasons[name] = taken.reason
        kept = ctx.settings.quarantine_dir / f"{taken.job_id}.entry"
        if name == "hard.jpg":  # a regular file: kept encrypted under the job's key
            sealed = ctx.store.quarantine_path(taken.job_id).read_bytes()
            assert b"not for the box" not in sealed
            assert ctx.store.quarantined_bytes(taken.job_id) == b"not for the box"
        else:  # a link or a pipe holds no content: kept as it is, never opened
            assert kept.is_symlink() or kept.exists(), "the entry itself is kept in quarantine"
    assert "symbolic link" in str(reasons["link.jpg"])
    assert "FIFO" in str(reasons["pipe.pdf"])
    assert "hard link" in str(reasons["hard.jpg"])
    assert secret.read_text() == "not for the box"
    assert os.listdir(inbox) == []
    counts = ctx.queue.counts()
    assert counts["quarantined"] == 3 and counts["received"] == 0


def test_path_outside_the_drop_folder_is_refused(ctx: Context, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"x")
    taken = ctx.spool.take(outside, counter="c", root=_inbox(ctx))
    assert taken.state == "quarantined" and "outside" in str(taken.reason)


def test_hostile_names_are_displayed_safely(ctx: Context) -> None:
    inbox = _inbox(ctx)
    raw = b"evil\n\xe2\x80\xaegpj.exe\xff\xfe.jpg"
    path = Path(os.fsdecode(os.path.join(os.fsencode(inbox), raw)))
    path.write_bytes(b"\xff\xd8\xffdata")
    taken = ctx.spool.take(path, counter="c", root=inbox)
    job = ctx.queue.get(taken.job_id)
    assert job is not None
    name = ctx.queue.name(job.id)
    assert "\n" not in name.display and "\u202e" not in name.display
    assert name.raw == raw
    row = ctx.queue.conn.execute("SELECT name_ct FROM jobs WHERE id=?", (job.id,)).fetchone()
    assert b"evil" not in row[0] and raw.hex().encode() not in row[0], "the name is stored encrypted"


# --- crash recovery -----------------------------------------------------------------------
def _intent(ctx: Context, job_id: str, name: bytes = b"scan.jpg") -> None:
    intent = {"counter": "2号窗口", "name": name.hex(), "landed_at": 1.0}
    atomic_write(ctx.settings.spool_dir / f"{job_id}.intent", ctx.spool._intent_blob(job_id, intent))


def test_recover_crash_after_rename_before_commit(ctx: Context) -> None:
    job_id = "a" * 32
    _intent(ctx, job_id)
    (ctx.settings.spool_dir / f"{job_id}.bin").write_bytes(b"payload")
    assert ctx.spool.recover() == 1
    job = ctx.queue.get(job_id)
    assert job is not None and job.state == "received" and job.counter == "2号窗口"
    assert ctx.queue.name(job_id).display == "scan.jpg" and job.fingerprint == _fingerprint(ctx, b"payload")
    assert ctx.spool.recover() == 0, "recovery is idempotent"


def test_recover_crash_before_rename_leaves_file_in_drop_folder(ctx: Context) -> None:
    _intent(ctx, "b" * 32)
    assert ctx.spool.recover() == 0
    assert not list(ctx.settings.spool_dir.iterdir())
    assert ctx.queue.counts()["received"] == 0


def test_recover_crash_after_commit_before_intent_removed(ctx: Context) -> None:
    src = _inbox(ctx) / "a.jpg"
    src.write_bytes(b"abc")
    taken = ctx.spool.take(src, counter="c", root=_inbox(ctx))
    _intent(ctx, taken.job_id)  # as if the crash came before the intent was removed
    assert ctx.spool.recover() == 0
    assert ctx.queue.counts()["received"] == 1
    assert not list(ctx.settings.spool_dir.glob("*.intent"))


def test_orphan_spool_file_becomes_a_job(ctx: Context) -> None:
    (ctx.settings.spool_dir / f"{'c' * 32}.bin").write_bytes(b"orphan")
    assert ctx.spool.recover() == 1
    assert ctx.queue.counts()["received"] == 1


def test_finalize_completes_quarantine_moves(ctx: Context) -> None:
    src = _inbox(ctx) / "bad.jpg"
    src.write_bytes(b"junk")
    taken = ctx.spool.take(src, counter="c", root=_inbox(ctx))
    job = ctx.queue.get(taken.job_id)
    assert job is not None
    ctx.store.mark_quarantined(job.id, "corrupt_file", "bad", keep=ctx.store.quarantine_path(job.id))
    # crash here: state is committed, the file is still in the spool
    ctx.spool.finalize()
    assert ctx.store.quarantined_bytes(job.id) == b"junk"
    assert b"junk" not in ctx.store.quarantine_path(job.id).read_bytes()
    assert not (ctx.settings.spool_dir / f"{job.id}.bin").exists()


def test_recover_removes_half_written_temporary_files(ctx: Context) -> None:
    stale = ctx.settings.spool_dir / f".{'d' * 32}.intent.0123.tmp"
    stale.write_bytes(b'{"counter": "c", "na')  # killed in the middle of an atomic write
    assert ctx.spool.recover() == 0
    assert list(ctx.settings.spool_dir.iterdir()) == []
