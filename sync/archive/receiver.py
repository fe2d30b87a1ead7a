"""The central receiver's core (no HTTP): enrollment, signed-request authentication, package
acceptance with 四性检测 and signed receipts, revocation, cross-hall search and status.

:meth:`Receiver.accept` answers every package with ``(status, body)``: 200 and the accepted
receipt (also for a repeat of an accepted idempotency key), 422 and a signed rejection receipt
(nothing stored but a rejection log line), or an error ``{"code", "message"}`` with the status of
``docs/transfer.md`` (400 protocol, 401 signature/freshness/device, 409 replay, 503 archive-side
trouble). The idempotency key is always recomputed from the manifest, never taken from the client.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from appliance.audit import AuditError, checkpoint_message
from appliance.blindindex import BlindIndex
from appliance.errors import HallError
from sync.archive import keys as archive_keys
from sync.archive.backends import close_object_store, open_catalog, open_object_store
from sync.archive.catalog import AcceptedPackage, ArchivalCodeTaken, CheckpointIn, Device
from sync.archive.checks import CheckInput, CheckOutcome, run_checks
from sync.archive.errors import (
    ArchiveNotInitialised,
    DeviceRevoked,
    EnrollmentRefused,
    UnknownDevice,
    error_body,
    http_status,
)
from sync.archive.search import Hit, tokens_of
from sync.archive.search import search as run_search
from sync.archive.settings import ArchiveSettings
from sync.objectstore import blob_key
from sync.protocol import (
    ProtocolError,
    SignedRequest,
    b64,
    canonical_json,
    ed25519_public,
    idempotency_key,
    raw_public,
    request_key_id,
    sha256_hex,
    sign_receipt,
    verify_request,
)

HALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_HALL_NAME = 200


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def iso_utc(ts: float) -> str:
    """``2026-11-21T14:03:07.123456Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_hall_id(hall_id: str) -> str:
    if not isinstance(hall_id, str) or not HALL_ID.fullmatch(hall_id):
        raise ProtocolError(f"hall id {hall_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return hall_id


@dataclass(frozen=True)
class _Identity:
    hall_id: str
    record_id: str
    record_version: int
    archival_code: str
    manifest: Mapping[str, Any]


def _parse_package(body: bytes) -> tuple[dict[str, Any], _Identity]:
    try:
        package = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("the request body is not JSON (expected a hall-package/1 document)") from None
    if not isinstance(package, dict) or not isinstance(package.get("manifest"), dict):
        raise ProtocolError("the request body is not a package: no manifest object")
    m = package["manifest"]
    hall, record, version = m.get("hall_id"), m.get("record_id"), m.get("record_version")
    if not isinstance(hall, str) or not isinstance(record, str) or not hall or not record:
        raise ProtocolError("the manifest lacks hall_id or record_id: no receipt can be written for it")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("the manifest's record_version is not an integer")
    code = m.get("archival_code")
    return package, _Identity(hall, record, version, code if isinstance(code, str) else "", m)


class Receiver:
    def __init__(self, settings: ArchiveSettings, *, clock: Callable[[], float] = time.time) -> None:
        if not (settings.keys_dir / archive_keys.SIGNING_FILE).exists():
            raise ArchiveNotInitialised(
                f"{settings.archive_dir} is not an initialised archive (no keys in {settings.keys_dir}): "
                f"run `hall archive init --dir {settings.archive_dir}`"
            )
        self.settings = settings
        self.clock = clock
        self.keys = archive_keys.load(settings.keys_dir)
        self.index = BlindIndex(self.keys.index_key)
        self.catalog = open_catalog(settings)
        try:
            self.store = open_object_store(settings)
        except BaseException:
            self.catalog.close()
            raise

    def close(self) -> None:
        self.catalog.close()
        close_object_store(self.store)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public information ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "archive_id": self.settings.archive_id, "time": int(self.clock())}

    def public_keys(self) -> dict[str, str]:
        enc, sig = self.keys.encryption.public_key(), self.keys.signing.public_key()
        return {"archive_encryption_key": b64(raw_public(enc)), "archive_signing_key": b64(raw_public(sig))}

    # --- staff ----------------------------------------------------------------------------
    def staff_token_valid(self, token: str) -> bool:
        return bool(token) and self.catalog.staff_token_known(token_hash(token))

    # --- enrollment -------------------------------------------------------------------------
    def issue_enrollment_token(self, hall_id: str, ttl_s: int | None = None) -> str:
        """A one-time token for ``hall_id`` (only its SHA-256 is stored)."""
        check_hall_id(hall_id)
        ttl = self.settings.token_ttl_s if ttl_s is None else ttl_s
        if ttl < 1:
            raise ProtocolError(f"token lifetime must be at least 1 s, got {ttl}")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self.catalog.add_enrollment_token(token_hash(token), hall_id, now, now + ttl)
        return token

    def enroll(self, token: str, hall_id: str, hall_name: str, device_public_key: str) -> dict[str, Any]:
        """Register a box's device key with a one-time token; the answer pins the archive keys."""
        if not isinstance(token, str) or not token:
            raise EnrollmentRefused("no enrollment token given")
        check_hall_id(hall_id)
        if (
            not isinstance(hall_name, str)
            or not hall_name.strip()
            or len(hall_name) > MAX_HALL_NAME
            or any(unicodedata.category(c) in ("Cc", "Cf") for c in hall_name)
        ):
            raise ProtocolError(f"hall name must be 1-{MAX_HALL_NAME} printable characters")
        public = ed25519_public(device_public_key, "device_public_key")
        device = self.catalog.enroll(token_hash(token), hall_id, hall_name.strip(), public, self.clock())
        earlier = [d for d in self.catalog.hall_devices(device.hall_id) if d.key_id != device.key_id]
        return {
            "archive_id": self.settings.archive_id,
            "hall_id": device.hall_id,
            "device_key_id": device.key_id,
            **self.public_keys(),
            "enrolled_at": iso_utc(device.enrolled_at),
            # a replaced box's keys: the new box still verifies the audit checkpoints they signed
            "previous_device_keys": [
                {"key_id": d.key_id, "public_key": b64(raw_public(d.public_key))} for d in earlier
            ],
        }

    def revoke(self, hall_id: str) -> list[str]:
        """Revoke every active device key of the hall; returns the key ids revoked."""
        return self.catalog.revoke_hall(check_hall_id(hall_id), self.clock())

    # --- signed requests --------------------------------------------------------------------
    def authenticate(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes
    ) -> tuple[Device, SignedRequest]:
        """Key id → enrolled device → signature, digest and timestamp → not revoked → nonce
        unused (remembered now). Raises the matching error; nothing is stored for an unknown
        device or a bad signature."""
        now = self.clock()
        kid = request_key_id(headers)
        device = self.catalog.device(kid)
        if device is None:
            raise UnknownDevice(f"device key {kid} is not enrolled at this archive: enroll the box first")
        signed = verify_request(
            device.public_key, headers, method, path, body, now=now, window_s=self.settings.clock_window_s
        )
        if device.revoked_at is not None:
            raise DeviceRevoked(f"device key {kid} was revoked: the box must be enrolled again")
        expires = max(now + self.settings.nonce_ttl_s, signed.timestamp + self.settings.clock_window_s + 1)
        self.catalog.use_nonce(kid, signed.nonce, now, expires)
        return device, signed

    def whoami(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        """What the archive knows of the signing device (``hall doctor``: enrolled, not revoked,
        the clock within the window). A signed request like any other: nonce, timestamp, key."""
        try:
            device, signed = self.authenticate(headers, method, path, body)
        except HallError as e:
            return Reply(http_status(e), error_body(e))
        now = self.clock()
        return Reply(
            200,
            {
                "archive_id": self.settings.archive_id,
                "hall_id": device.hall_id,
                "hall_name": device.hall_name,
                "device_key_id": device.key_id,
                "enrolled_at": iso_utc(device.enrolled_at),
                "time": now,
                "skew_s": int(now) - signed.timestamp,
            },
        )

    def selftest(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        """``hall doctor``'s test record: every 四性 check of a real package, a signed receipt
        (``status`` "selftest-passed" / "selftest-failed"), and nothing stored — the package's
        objects are deleted from the store afterwards. The 档号 uniqueness item is checked
        against nothing (a test record may repeat a real record's code)."""
        try:
            device, signed = self.authenticate(headers, method, path, body)
            package, ident = _parse_package(body)
            idem = idempotency_key(ident.hall_id, ident.record_id, ident.record_version, ident.manifest)
            now = self.clock()
            outcome = self._check(package, device, signed, now, code_holder=lambda _code: None)
            if outcome.manifest is not None and outcome.manifest.hall_id == device.hall_id:
                for blob in outcome.manifest.blobs():
                    self.store.delete(blob_key(device.hall_id, blob.ref))
        except HallError as e:
            return Reply(http_status(e), error_body(e))
        status = "selftest-passed" if outcome.passed else "selftest-failed"
        return Reply(
            200, self._receipt(status, ident, idem, sha256_hex(canonical_json(package)), now, outcome)
        )

    def numbering(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        """The highest 件号 the archive holds per 档号 sequence of the signing device's hall, so a
        replacement box resumes after records the dead box sent but its replica lost."""
        from appliance.archival import ArchivalCodeError, parse_archival_code

        try:
            device, _ = self.authenticate(headers, method, path, body)
        except HallError as e:
            return Reply(http_status(e), error_body(e))
        sequences: dict[str, int] = {}
        for code in self.catalog.hall_codes(device.hall_id):
            try:
                parts = parse_archival_code(code)
            except ArchivalCodeError:
                continue
            sequences[parts.prefix] = max(sequences.get(parts.prefix, 0), parts.item)
        return Reply(200, {"hall_id": device.hall_id, "sequences": sequences})

    def revoke_self(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        try:
            device, _ = self.authenticate(headers, method, path, body)
            now = self.clock()
            self.catalog.revoke_key(device.key_id, now)
        except HallError as e:
            return Reply(http_status(e), error_body(e))
        return Reply(
            200, {"hall_id": device.hall_id, "device_key_id": device.key_id, "revoked_at": iso_utc(now)}
        )

    # --- packages ---------------------------------------------------------------------------
    def accept(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        try:
            return self._accept(body, headers, method, path)
        except HallError as e:
            return Reply(http_status(e), error_body(e))

    def _accept(self, body: bytes, headers: Mapping[str, str], method: str, path: str) -> Reply:
        device, signed = self.authenticate(headers, method, path, body)
        package, ident = _parse_package(body)
        idem = idempotency_key(ident.hall_id, ident.record_id, ident.record_version, ident.manifest)
        if ident.hall_id == device.hall_id and (stored := self.catalog.stored_receipt(idem)) is not None:
            return Reply(200, stored)
        now = self.clock()
        outcome = self._check(package, device, signed, now, code_holder=self.catalog.archival_code_holder)
        package_sha = sha256_hex(canonical_json(package))
        if outcome.passed and outcome.manifest is not None and outcome.plaintext is not None:
            m = outcome.manifest
            receipt = self._receipt("accepted", ident, idem, package_sha, now, outcome)
            try:
                final = self.catalog.store_accepted(
                    AcceptedPackage(
                        idempotency_key=idem,
                        hall_id=m.hall_id,
                        record_id=m.record_id,
                        record_version=m.record_version,
                        archival_code=m.archival_code,
                        confirmed_at=m.confirmed_at,
                        package_text=body.decode("utf-8"),
                        package_sha256=package_sha,
                        receipt=receipt,
                        received_at=now,
                        tokens=tokens_of(self.index, outcome.plaintext),
                        checkpoint=self._checkpoint(device, m.hall_id, package),
                    )
                )
            except ArchivalCodeTaken as e:
                outcome = outcome.with_failure("archival_code_unique", str(e))
            else:
                return Reply(200, final)
        rejection = self._receipt("rejected", ident, idem, package_sha, now, outcome)
        # logged under the sending device's hall: another hall's manifest cannot inflate its count
        self.catalog.log_rejection(device.hall_id, ident.record_id, idem, outcome.failed(), now)
        return Reply(422, rejection)

    def _check(
        self,
        package: Mapping[str, Any],
        device: Device,
        signed: SignedRequest,
        now: float,
        *,
        code_holder: Callable[[str], tuple[str, str] | None],
    ) -> CheckOutcome:
        """The 四性检测 of one package sent by ``device``."""
        return run_checks(
            CheckInput(
                package=package,
                device=device,
                request_detail=f"signed by {device.key_id}, skew {int(now) - signed.timestamp:+d} s",
                archive_private=self.keys.encryption,
                store=self.store,
                code_holder=code_holder,
                now=now,
            )
        )

    def _receipt(
        self, status: str, ident: _Identity, idem: str, package_sha: str, now: float, outcome: CheckOutcome
    ) -> dict[str, Any]:
        return sign_receipt(
            self.keys.signing,
            {
                "status": status,
                "receipt_id": secrets.token_hex(16),
                "archive_id": self.settings.archive_id,
                "hall_id": ident.hall_id,
                "record_id": ident.record_id,
                "record_version": ident.record_version,
                "archival_code": ident.archival_code,
                "idempotency_key": idem,
                "package_sha256": package_sha,
                "received_at": iso_utc(now),
                "checks": outcome.checks(),
                "failed": outcome.failed(),
            },
        )

    @staticmethod
    def _checkpoint(device: Device, hall_id: str, package: Mapping[str, Any]) -> CheckpointIn | None:
        """The manifest's audit checkpoint, with a ``problem`` if its signature is not the device's."""
        cp = package["manifest"].get("audit_checkpoint")
        if not isinstance(cp, Mapping):
            return None
        seq, entry, kid, sig = cp.get("seq"), cp.get("entry_hash"), cp.get("key_id"), cp.get("signature")
        problem = None
        try:
            message = checkpoint_message(hall_id, seq, entry)  # type: ignore[arg-type]
            if kid != device.key_id:
                problem = f"checkpoint signed by key {kid}, not by the enrolled device key {device.key_id}"
            else:
                device.public_key.verify(base64.b64decode(str(sig), validate=True), message)
        except (AuditError, binascii.Error, ValueError):
            problem = "checkpoint is malformed"
        except InvalidSignature:
            problem = f"checkpoint seq {seq} signature does not verify with device key {device.key_id}"
        if problem is not None:
            return CheckpointIn(0, "", str(kid), str(sig), problem)
        return CheckpointIn(int(str(seq)), str(entry), str(kid), str(sig))

    # --- staff views --------------------------------------------------------------------------
    def search(self, query: str, *, limit: int = 50) -> list[Hit]:
        return run_search(self.catalog, self.index, self.keys.encryption, query, limit=limit)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        halls = []
        for h in self.catalog.hall_status():
            newest = h.pop("newest_confirmed_at")
            last = h["last_contact"]
            halls.append(
                {
                    **h,
                    "last_contact": iso_utc(last) if last is not None else None,
                    "newest_confirmed_at": iso_utc(newest) if newest is not None else None,
                    "lag_s": int(now - newest) if newest is not None else None,
                    "revoked": h["active_keys"] == 0 and h["revoked_keys"] > 0,
                }
            )
        return {"archive_id": self.settings.archive_id, "time": iso_utc(now), "halls": halls}
