"""The central archive's receiver (``docs/transfer.md``): enrollment of boxes, signed package
transfer with 四性检测 and signed receipts, a catalog on SQLite or PostgreSQL, an object store on a
folder or S3, cross-hall search under the archive's own blind index, and per-hall status.

Run it with ``hall archive serve`` (a central deployment) or :class:`ArchiveServer` (the box's
in-process local archive on embedded defaults, and tests).
"""

from __future__ import annotations

from sync.archive.app import create_app
from sync.archive.receiver import Receiver, Reply
from sync.archive.server import (
    ArchiveServer,
    InitResult,
    enroll_device,
    init_archive,
    issue_enrollment_token,
    public_keys,
    serve_forever,
)
from sync.archive.settings import ArchiveSettings

__all__ = [
    "ArchiveServer",
    "ArchiveSettings",
    "InitResult",
    "Receiver",
    "Reply",
    "create_app",
    "enroll_device",
    "init_archive",
    "issue_enrollment_token",
    "public_keys",
    "serve_forever",
]
