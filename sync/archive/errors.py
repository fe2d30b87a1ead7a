"""The receiver's error types and the HTTP status each one answers with (``docs/transfer.md``)."""

from __future__ import annotations

from appliance.errors import HallError, KeyProblem
from sync.objectstore import ObjectStoreError
from sync.protocol import ProtocolError, SignatureInvalid, StaleRequest


class ArchiveError(HallError):
    """Base of the receiver's own errors."""

    code = "archive"


class UnknownDevice(ArchiveError):
    code = "unknown_device"


class DeviceRevoked(ArchiveError):
    code = "device_revoked"


class EnrollmentRefused(ArchiveError):
    code = "enrollment_refused"


class Replay(ArchiveError):
    code = "replay"


class StaffAuthRequired(ArchiveError):
    code = "staff_auth"


class BodyTooLarge(ArchiveError):
    code = "too_large"


class CatalogError(ArchiveError):
    """The archive catalog (SQLite or PostgreSQL) cannot be opened or refused a statement."""

    code = "catalog"


class CatalogConflict(CatalogError):
    """A UNIQUE or PRIMARY KEY constraint refused a row (a concurrent duplicate)."""

    code = "catalog_conflict"


class ArchiveNotInitialised(ArchiveError):
    code = "archive_not_initialised"


_STATUS: list[tuple[type[Exception], int]] = [
    (SignatureInvalid, 401),
    (StaleRequest, 401),
    (ProtocolError, 400),
    (UnknownDevice, 401),
    (DeviceRevoked, 401),
    (StaffAuthRequired, 401),
    (EnrollmentRefused, 403),
    (Replay, 409),
    (BodyTooLarge, 413),
    (ArchiveNotInitialised, 503),
    (CatalogError, 503),
    (ObjectStoreError, 503),
    (KeyProblem, 503),
]


def http_status(exc: HallError) -> int:
    """The HTTP status for an error the receiver raised on purpose (400 if not listed)."""
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 400)


def error_body(exc: HallError) -> dict[str, str]:
    return {"code": exc.code, "message": str(exc)}
