"""Enrolling the box with a central archive (``hall enroll``; ``hall init`` for the local one).

The archive answers an enrollment with its two public keys; the box pins them
(``keys/archive.x25519.pub``, ``keys/archive.ed25519.pub``) and remembers which archive it
belongs to (``meta.archive_id``) and where it is (``[transfer] archive_url`` in hall.toml).

Two consequences are handled here, both resumable:

* a new archive *encryption* key: every data key was sealed to the old one, so each is sealed
  again (:func:`reseal_deks`, in batches; the transferer also runs it before sending, so an
  interrupted re-seal finishes by itself);
* a new *archive* (another ``archive_id``, e.g. the embedded local archive replaced by the real
  one): everything is queued again for the new archive — the blobs of every stored record and
  the packages of every confirmed or transferred record.

Order, so a crash at any point leaves a state the next run completes: the catalog (archive id,
re-queue, blocked packages back to pending, audit) in one transaction; then the key pins; then
hall.toml; then the re-seal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from appliance import envelope
from appliance.catalog import transaction
from appliance.errors import HallError, KeyProblem
from appliance.fsutil import atomic_write
from appliance.keyring import archive_key_id
from appliance.keys import FileKeySource, raw_public
from appliance.settings import Settings
from sync import protocol
from sync.link import ArchiveClient

if TYPE_CHECKING:
    from appliance.context import Context

LOCAL_URL = "local"


class EnrollmentRefused(HallError):
    """The archive's enrollment answer does not fit this box (the message says what)."""

    code = "enrollment_refused"


@dataclass(frozen=True)
class EnrollResult:
    archive_id: str
    archive_url: str
    device_key_id: str
    pinned: list[str]
    resealed: int
    requeued: bool

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def enrollment_body(settings: Settings, token: str) -> dict[str, Any]:
    device = FileKeySource(settings.keys_dir).device_key()
    return {
        "token": token,
        "hall_id": settings.hall_id,
        "hall_name": settings.hall_name,
        "device_public_key": protocol.b64(raw_public(device.public_key())),
    }


def request_enrollment(settings: Settings, archive_url: str, token: str) -> dict[str, Any]:
    """POST the one-time token and this box's device key to ``archive_url``; the archive's answer
    (its keys), not yet applied."""
    url = archive_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EnrollmentRefused(f"{archive_url!r} is not an http(s) URL of an archive receiver")
    ca = settings.transfer_ca_path
    client = ArchiveClient(url, timeout_s=settings.transfer.request_timeout_s, verify=str(ca) if ca else True)
    try:
        return client.enroll(enrollment_body(settings, token))
    finally:
        client.close()


def answer_keys(answer: dict[str, Any]) -> tuple[X25519PublicKey, Ed25519PublicKey]:
    """The archive's encryption and signing keys in an enrollment answer."""
    encryption = protocol.x25519_public(
        str(answer.get("archive_encryption_key", "")), "archive_encryption_key"
    )
    signing = protocol.ed25519_public(str(answer.get("archive_signing_key", "")), "archive_signing_key")
    return encryption, signing


def previous_device_keys(answer: dict[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The hall's earlier device keys named by the archive (a replaced box's)."""
    out = {}
    for item in answer.get("previous_device_keys") or []:
        if isinstance(item, dict):
            out[str(item.get("key_id"))] = protocol.ed25519_public(
                str(item.get("public_key", "")), "previous key"
            )
    return out


def enroll(settings: Settings, archive_url: str, token: str, *, actor: str) -> EnrollResult:
    """``hall enroll``: POST the one-time token to ``archive_url`` and apply the answer."""
    answer = request_enrollment(settings, archive_url, token)
    return apply_enrollment(settings, answer, archive_url=archive_url.rstrip("/"), actor=actor)


def apply_enrollment(
    settings: Settings, answer: dict[str, Any], *, archive_url: str, actor: str, audit: bool = True
) -> EnrollResult:
    """Pin the archive's keys from an enrollment answer and bring the catalog along. ``audit``
    is False only for the enrollment that is part of creating a data dir (`hall init`)."""
    from appliance.context import open_context

    keys = FileKeySource(settings.keys_dir)
    device_kid = protocol.key_id(keys.device_key().public_key())
    if answer.get("hall_id") != settings.hall_id:
        raise EnrollmentRefused(
            f"the archive enrolled hall {answer.get('hall_id')!r}, but this box is {settings.hall_id!r}"
        )
    if answer.get("device_key_id") != device_kid:
        raise EnrollmentRefused("the archive enrolled another device key than this box's")
    archive_id = str(answer.get("archive_id") or "")
    if not archive_id:
        raise EnrollmentRefused("the enrollment answer names no archive_id")
    encryption, signing = answer_keys(answer)
    ctx = open_context(settings)
    try:
        conn = ctx.conn
        with transaction(conn):
            row = conn.execute("SELECT value FROM meta WHERE key='archive_id'").fetchone()
            previous = None if row is None else str(row[0])
            requeue = previous is not None and previous != archive_id
            if requeue:
                requeue_all(conn)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('archive_id', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (archive_id,),
            )
            conn.execute(
                "UPDATE transfer_outbox SET state='pending', next_attempt_at=0, last_error=NULL, updated_at=?"
                " WHERE state='blocked'",
                (time.time(),),
            )
            if audit:
                ctx.audit.record(
                    conn,
                    actor,
                    "transfer.enroll",
                    archive_id,
                    {
                        "archive_url": archive_url,
                        "device_key_id": device_kid,
                        "archive_key_id": protocol.key_id(encryption),
                        "signing_key_id": protocol.key_id(signing),
                        "previous_archive": previous,
                        "requeued": requeue,
                    },
                )
        pinned = keys.pin_archive(encryption, signing)
        keys.retire_device_keys(previous_device_keys(answer))
        if settings.transfer.archive_url != archive_url:
            write_archive_url(settings, archive_url)
        resealed = reseal_deks(ctx, actor=actor)
    finally:
        ctx.close()
    return EnrollResult(archive_id, archive_url, device_kid, pinned, resealed, requeue)


def write_archive_url(settings: Settings, archive_url: str) -> Settings:
    raw = settings.model_dump()
    raw["transfer"] = {**raw["transfer"], "archive_url": archive_url}
    new = Settings.model_validate(raw)
    atomic_write(new.config_path, new.to_toml().encode("utf-8"), mode=0o640)
    return new


def requeue_all(conn: Any) -> None:
    """Queue everything again for a new archive (inside the caller's transaction)."""
    now = time.time()
    conn.execute(
        "INSERT OR IGNORE INTO blob_outbox(ref, record_id, size, enqueued_at)"
        " SELECT master_blob, id, NULL, created_at FROM records WHERE status != 'shredded'"
    )
    conn.execute(
        "INSERT OR IGNORE INTO blob_outbox(ref, record_id, size, enqueued_at)"
        " SELECT b.ref, r.id, NULL, r.created_at FROM records r JOIN ("
        " SELECT record_id, cleaned_blob AS ref FROM pages"
        " UNION ALL SELECT record_id, bilevel_blob FROM pages"
        " UNION ALL SELECT record_id, thumb_blob FROM pages) b ON b.record_id = r.id"
        " WHERE r.status != 'shredded'"
    )
    conn.execute(
        "INSERT INTO transfer_outbox(record_id, version, state, enqueued_at, updated_at)"
        " SELECT id, meta_version, 'pending', COALESCE(confirmed_at, created_at), ? FROM records"
        " WHERE status IN ('confirmed','transferred')"
        " ON CONFLICT(record_id) DO UPDATE SET version=excluded.version, state='pending', attempts=0,"
        " next_attempt_at=0, last_error=NULL, failed_items=NULL, updated_at=excluded.updated_at",
        (now,),
    )


def reseal_deks(ctx: Context, *, actor: str = "system:transfer", batch: int = 500) -> int:
    """Seal every live data key to the pinned archive encryption key (those sealed to another
    key, in batches of one transaction each). Returns how many were sealed again; 0 when the
    pin is missing (nothing to seal to)."""
    keys = ctx.keyring.keys
    try:
        target = keys.archive_key()
    except KeyProblem:
        return 0
    kid = archive_key_id(keys)
    conn = ctx.conn
    done = 0
    while True:
        with transaction(conn):
            rows = conn.execute(
                "SELECT id FROM deks WHERE wrapped IS NOT NULL"
                " AND (archive_key_id IS NULL OR archive_key_id != ?) LIMIT ?",
                (kid, batch),
            ).fetchall()
            for r in rows:
                dek = ctx.keyring.dek(conn, r["id"])
                sealed = envelope.seal_to_archive(
                    target, dek, appliance=ctx.keyring.appliance, dek_id=r["id"]
                )
                conn.execute("UPDATE deks SET sealed=?, archive_key_id=? WHERE id=?", (sealed, kid, r["id"]))
            if not rows and done:
                ctx.audit.record(conn, actor, "keys.reseal", kid, {"resealed": done})
        if not rows:
            return done
        done += len(rows)


def pinned_key_ids(settings: Settings) -> dict[str, str | None]:
    keys = FileKeySource(settings.keys_dir)
    out: dict[str, str | None] = {}
    for name, load in (("encryption", keys.archive_key), ("signing", keys.archive_signing_key)):
        try:
            out[name] = protocol.key_id(load())
        except KeyProblem:
            out[name] = None
    return out
