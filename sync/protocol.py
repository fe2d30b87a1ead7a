"""The wire contract between an appliance and the central archive (``docs/transfer.md``).

Both sides import this module and nothing else of each other, so the bytes that are signed are
defined in exactly one place:

* :func:`canonical_json` — the only serialisation that is ever hashed or signed;
* package signatures — the device's Ed25519 signature over the canonical manifest, kept by the
  archive with the package (authenticity at rest);
* request signatures — method, path, body digest, timestamp, nonce and key id signed by the
  device on every call (freshness: a ±300 s window plus a nonce cache rejects replays);
* receipts — the archive's Ed25519 signature over the canonical receipt, verified by the box
  before a record becomes 已移交.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.errors import HallError

MANIFEST_FORMAT = "hall-transfer/1"
RECEIPT_FORMAT = "hall-receipt/1"
PACKAGE_FORMAT = "hall-package/1"
REQUEST_TAG = "hall-request/1"
CLOCK_WINDOW_S = 300

# Request headers (lower-case, as Starlette presents them).
H_KEY = "x-hall-key-id"
H_TIMESTAMP = "x-hall-timestamp"
H_NONCE = "x-hall-nonce"
H_SIGNATURE = "x-hall-signature"
H_DIGEST = "content-digest"


class ProtocolError(HallError):
    """A message does not follow the transfer protocol (the reason names the part)."""

    code = "protocol"


class SignatureInvalid(ProtocolError):
    code = "signature_invalid"


class StaleRequest(ProtocolError):
    code = "stale_request"


# --- encoding -------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, AttributeError):
        raise ProtocolError(f"{what} is not valid base64") from None


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity. Floats are refused: every number in
    a signed document is an integer (times are ISO-8601 strings or integer microseconds)."""
    _refuse_floats(obj, "$")
    return json.dumps(
        obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode()


def _refuse_floats(obj: Any, where: str) -> None:
    if isinstance(obj, float):
        raise ProtocolError(f"{where} is a float; signed documents carry integers or strings only")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ProtocolError(f"{where} has a non-string key {k!r}")
            _refuse_floats(v, f"{where}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _refuse_floats(v, f"{where}[{i}]")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- keys -----------------------------------------------------------------------------------
def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | X25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw public key (same rule as the audit chain)."""
    return sha256_hex(raw_public(key))[:16]


def ed25519_public(text: str, what: str) -> Ed25519PublicKey:
    raw = unb64(text, what)
    if len(raw) != 32:
        raise ProtocolError(f"{what} must be a 32-byte raw Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def x25519_public(text: str, what: str) -> X25519PublicKey:
    raw = unb64(text, what)
    if len(raw) != 32:
        raise ProtocolError(f"{what} must be a 32-byte raw X25519 public key")
    return X25519PublicKey.from_public_bytes(raw)


# --- packages -------------------------------------------------------------------------------
def idempotency_key(hall_id: str, record_id: str, version: int, manifest: Mapping[str, Any]) -> str:
    """hash(appliance, record, version, payload): the receiver's UNIQUE key. The same record
    state always gives the same key, so a resend after a lost response is recognised."""
    parts = canonical_json(
        ["hall-idempotency/1", hall_id, record_id, version, sha256_hex(canonical_json(manifest))]
    )
    return sha256_hex(parts)


def _package_message(manifest: Mapping[str, Any]) -> bytes:
    return b"hall-package-signature/1\n" + canonical_json(manifest)


def sign_package(device: Ed25519PrivateKey, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``{"format", "manifest", "key_id", "signature"}`` — what is POSTed and what the archive
    keeps. The manifest must already carry ``hall_id``, ``record_id`` and ``record_version``."""
    return {
        "format": PACKAGE_FORMAT,
        "manifest": dict(manifest),
        "key_id": key_id(device.public_key()),
        "signature": b64(device.sign(_package_message(manifest))),
    }


def verify_package(public: Ed25519PublicKey, package: Mapping[str, Any]) -> None:
    if package.get("format") != PACKAGE_FORMAT:
        raise ProtocolError(f"package format {package.get('format')!r} is not {PACKAGE_FORMAT}")
    if package.get("key_id") != key_id(public):
        raise SignatureInvalid("package is signed with a key that is not the enrolled device key")
    manifest = package.get("manifest")
    if not isinstance(manifest, Mapping):
        raise ProtocolError("package has no manifest object")
    try:
        public.verify(
            unb64(str(package.get("signature", "")), "package signature"), _package_message(manifest)
        )
    except InvalidSignature:
        raise SignatureInvalid("package signature does not verify: the manifest was altered") from None


# --- request signing ------------------------------------------------------------------------
def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` value."""
    return f"sha-256=:{b64(hashlib.sha256(body).digest())}:"


def _request_message(method: str, path: str, digest: str, timestamp: int, nonce: str, kid: str) -> bytes:
    return "\n".join((REQUEST_TAG, method.upper(), path, digest, str(timestamp), nonce, kid)).encode()


def sign_request(
    device: Ed25519PrivateKey, method: str, path: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """Headers for one signed call. ``path`` is the URL path without scheme, host or query."""
    timestamp = int(now if now is not None else time.time())
    nonce = secrets.token_hex(16)
    kid = key_id(device.public_key())
    digest = content_digest(body)
    signature = device.sign(_request_message(method, path, digest, timestamp, nonce, kid))
    return {
        H_KEY: kid,
        H_TIMESTAMP: str(timestamp),
        H_NONCE: nonce,
        H_DIGEST: digest,
        H_SIGNATURE: b64(signature),
    }


@dataclass(frozen=True)
class SignedRequest:
    key_id: str
    timestamp: int
    nonce: str


def request_key_id(headers: Mapping[str, str]) -> str:
    kid = headers.get(H_KEY, "")
    if not kid or len(kid) != 16 or any(c not in "0123456789abcdef" for c in kid):
        raise SignatureInvalid(f"missing or malformed {H_KEY} header")
    return kid


def verify_request(
    public: Ed25519PublicKey,
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    *,
    now: float | None = None,
    window_s: int = CLOCK_WINDOW_S,
) -> SignedRequest:
    """Check digest, signature and timestamp window. The caller checks the nonce cache and that
    the key is enrolled (this function only proves possession of ``public``)."""
    kid = request_key_id(headers)
    if kid != key_id(public):
        raise SignatureInvalid("request key id does not match the enrolled device key")
    digest = headers.get(H_DIGEST, "")
    if digest != content_digest(body):
        raise SignatureInvalid("Content-Digest does not match the body (altered in transit)")
    try:
        timestamp = int(headers.get(H_TIMESTAMP, ""))
    except ValueError:
        raise SignatureInvalid(f"missing or malformed {H_TIMESTAMP} header") from None
    nonce = headers.get(H_NONCE, "")
    if not (16 <= len(nonce) <= 64) or not nonce.isalnum():
        raise SignatureInvalid(f"missing or malformed {H_NONCE} header")
    try:
        public.verify(
            unb64(headers.get(H_SIGNATURE, ""), "request signature"),
            _request_message(method, path, digest, timestamp, nonce, kid),
        )
    except InvalidSignature:
        raise SignatureInvalid("request signature does not verify") from None
    skew = (now if now is not None else time.time()) - timestamp
    if abs(skew) > window_s:
        raise StaleRequest(
            f"request timestamp is {skew:+.0f} s off the archive clock (window ±{window_s} s): "
            "set the appliance clock (NTP) and retry"
        )
    return SignedRequest(kid, timestamp, nonce)


# --- receipts -------------------------------------------------------------------------------
def _receipt_message(body: Mapping[str, Any]) -> bytes:
    return b"hall-receipt-signature/1\n" + canonical_json(body)


def sign_receipt(archive: Ed25519PrivateKey, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` + ``key_id`` + ``signature`` (over everything else)."""
    doc = {**body, "format": RECEIPT_FORMAT, "key_id": key_id(archive.public_key())}
    doc["signature"] = b64(archive.sign(_receipt_message(doc)))
    return doc


def verify_receipt(public: Ed25519PublicKey, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """Return the receipt without its signature, or raise :class:`SignatureInvalid`."""
    if receipt.get("format") != RECEIPT_FORMAT:
        raise ProtocolError(f"receipt format {receipt.get('format')!r} is not {RECEIPT_FORMAT}")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    if body.get("key_id") != key_id(public):
        raise SignatureInvalid("receipt is signed by a key that is not the pinned archive key")
    try:
        public.verify(unb64(str(receipt.get("signature", "")), "receipt signature"), _receipt_message(body))
    except InvalidSignature:
        raise SignatureInvalid("receipt signature does not verify against the pinned archive key") from None
    return body
