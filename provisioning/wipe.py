"""``hall provision wipe``: retire a box for good.

1. The device key is revoked at the archive (a signed ``POST /api/v1/revoke-self``); if the archive
   cannot be reached the wipe stops, unless ``--offline`` is given — then the report says that the
   archive staff must run ``hall archive revoke HALL_ID``.
2. Crypto-shredding: every key file (hall keys, index key, device key) is overwritten with random
   bytes, synced and unlinked. Every data key in the catalog and its replica is wrapped under a
   hall key, so nothing the box held can be decrypted by anyone but the archive (which keeps the
   records it was sent, sealed to its own key).
3. Erasure: files that may hold plaintext (the spool, the drop folders, scratch) are overwritten
   before they are unlinked; then the catalog, blobs, quarantine, logs, runtime files, the TLS key
   and the local archive are removed. The data dir is left empty apart from the report.

Overwriting is best effort on flash storage (wear levelling keeps old blocks): the guarantee is
the crypto-shredding, and the box's disk should be encrypted as a whole (firmware_scripts).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from appliance.errors import HallError
from appliance.fsutil import atomic_write, fsync_dir
from appliance.settings import Settings


class WipeRefused(HallError):
    """The wipe did not start (the message says why); nothing was changed."""

    code = "wipe_refused"


def _overwrite(path: Path) -> None:
    try:
        size = path.stat().st_size
        os.chmod(path, 0o600)
        with path.open("r+b") as f:
            remaining = size
            while remaining > 0:
                n = min(remaining, 1 << 20)
                f.write(os.urandom(n))
                remaining -= n
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass  # unreadable or vanished: removed below all the same
    path.unlink(missing_ok=True)


def _shred_tree(root: Path) -> int:
    """Overwrite and remove every regular file below ``root`` (links are removed, not followed)."""
    n = 0
    if not root.exists():
        return 0
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                p.unlink(missing_ok=True)
            else:
                _overwrite(p)
                n += 1
    shutil.rmtree(root, ignore_errors=True)
    return n


def _revoke(settings: Settings) -> dict[str, Any]:
    from appliance.keys import FileKeySource
    from provisioning.doctor_checks import archive_served
    from sync.transfer import archive_client

    device = FileKeySource(settings.keys_dir).device_key()
    with archive_served(settings):
        client = archive_client(settings)
        try:
            return client.signed_call(device, "/api/v1/revoke-self")
        finally:
            client.close()


def wipe(settings: Settings, *, confirm: str, offline: bool = False) -> dict[str, Any]:
    if confirm != settings.hall_id:
        raise WipeRefused(
            f"type the hall id {settings.hall_id!r} to confirm; nothing was wiped (got {confirm!r})"
        )
    if not settings.keys_dir.exists() and not settings.catalog_path.exists():
        raise WipeRefused(f"{settings.data_dir} holds no box to wipe (no keys, no catalog)")
    from sync.link import EnrollmentProblem, LinkDown

    report: dict[str, Any] = {"hall_id": settings.hall_id, "data_dir": str(settings.data_dir)}
    try:
        answer = _revoke(settings)
        report["revoked_at_archive"] = answer.get("revoked_at")
        report["device_key_id"] = answer.get("device_key_id")
    except EnrollmentProblem as e:
        report["revoked_at_archive"] = f"already refused by the archive: {e}"
    except (LinkDown, HallError, OSError) as e:
        if not offline:
            raise WipeRefused(
                f"the archive cannot revoke this box's key now ({e}); fix the link and run again, or "
                "wipe with --offline and have the archive staff run `hall archive revoke "
                f"{settings.hall_id}`"
            ) from None
        report["revoked_at_archive"] = None
        report["archive_must_revoke"] = f"hall archive revoke {settings.hall_id}"
    # crypto-shred first: from here on nothing of the box can be decrypted
    report["key_files_destroyed"] = _shred_tree(settings.keys_dir)
    plaintext = [
        settings.spool_dir,
        settings.scratch_dir,
        *(settings.drop_path(f) for f in settings.drop_folders),
    ]
    report["plaintext_files_overwritten"] = sum(_shred_tree(p) for p in plaintext)
    for p in (settings.data_dir / "tls", settings.local_archive_dir):
        _shred_tree(p)
    removed = []
    for p in sorted(settings.data_dir.iterdir()) if settings.data_dir.exists() else []:
        removed.append(p.name)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    report["removed"] = removed
    report["wiped_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["note"] = (
        "keys destroyed (crypto-shredded); the replica and the archive keep only ciphertext sealed to "
        "the archive; overwriting is best effort on flash storage"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(
        settings.data_dir / "WIPED.json",
        json.dumps(report, ensure_ascii=False, indent=2).encode(),
        mode=0o644,
    )
    fsync_dir(settings.data_dir)
    return report
