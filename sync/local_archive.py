"""The embedded-default central archive on the box itself (``DATA_DIR/local-archive``).

With ``[transfer] archive_url = "local"`` the whole transfer flow runs on one machine: ``hall
init`` creates the archive (its keys, catalog and object folder), pins its public keys and
enrolls the box directly (no HTTP); ``hall serve`` (and ``hall transfer run``) serve its receiver
in-process on ``127.0.0.1:[transfer] local_port``. Only the archive's private keys sit on the
same machine; everything else is what a real deployment does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from appliance.keys import FileKeySource, raw_public
from appliance.settings import Settings
from sync import protocol
from sync.enrollment import EnrollResult, apply_enrollment

if TYPE_CHECKING:
    from sync.archive import ArchiveServer, ArchiveSettings

log = logging.getLogger(__name__)

LOCAL_ARCHIVE_ID = "local"
TOKEN_TTL_S = 600


@dataclass(frozen=True)
class LocalArchive:
    created: list[str]
    staff_token: str | None
    encryption: X25519PublicKey
    signing: Ed25519PublicKey


def exists(settings: Settings) -> bool:
    return (settings.local_archive_dir / "keys" / "archive.x25519").exists()


def archive_settings(settings: Settings) -> ArchiveSettings:
    from sync.archive import ArchiveSettings

    return ArchiveSettings.load(
        settings.local_archive_dir, {}, host="127.0.0.1", port=settings.transfer.local_port
    )


def ensure(settings: Settings) -> LocalArchive:
    """Create the local archive (idempotent: existing keys, catalog and objects are kept)."""
    from sync.archive import init_archive, public_keys

    result = init_archive(settings.local_archive_dir, LOCAL_ARCHIVE_ID)
    encryption, signing = public_keys(settings.local_archive_dir)
    return LocalArchive(list(result.created_keys), result.staff_token, encryption, signing)


def enroll(settings: Settings, *, actor: str, audit: bool = True) -> EnrollResult:
    """Enroll this box's device key with the local archive (no HTTP) and pin its keys."""
    from sync.archive import enroll_device, issue_enrollment_token

    a = archive_settings(settings)
    token = issue_enrollment_token(a, settings.hall_id, TOKEN_TTL_S)
    device = FileKeySource(settings.keys_dir).device_key().public_key()
    answer: dict[str, Any] = enroll_device(
        a, token, settings.hall_id, settings.hall_name, protocol.b64(raw_public(device))
    )
    return apply_enrollment(settings, answer, archive_url="local", actor=actor, audit=audit)


def start_server(settings: Settings) -> ArchiveServer:
    """Serve the local archive's receiver on 127.0.0.1:local_port (the caller stops it)."""
    from sync.archive import ArchiveServer

    server = ArchiveServer(archive_settings(settings), "127.0.0.1", settings.transfer.local_port)
    server.start()
    log.info("local archive receiver on %s", server.url)
    return server
