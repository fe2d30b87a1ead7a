"""Envelope encryption primitives (AES-256-GCM and HPKE from the ``cryptography`` package).

Every record has its own random 256-bit data key (DEK). Each field or blob is sealed with
AES-256-GCM under the DEK with a fresh random 96-bit nonce and an AAD that binds the format
version, the appliance id, the owning record (or job) id, the field's version, the field or
blob name and the DEK id — so ciphertext copied to another row, another record, another
appliance or an older version fails authentication instead of decrypting to the wrong thing.

The DEK itself is stored twice:

* wrapped under the hall key-encryption key (KEK) with AES-256-GCM (AAD: appliance, DEK id, KEK
  id) — what the box uses;
* sealed to the central archive's X25519 public key with HPKE base mode (RFC 9180,
  DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM), ``info`` binding appliance and DEK id —
  what the archive uses after transfer. The archive's private key never touches the box.

Ciphertext layout: ``b"HA" + version byte + nonce (12) + AES-GCM output (ciphertext + 16-byte
tag)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import DecryptionFailed

FORMAT_VERSION = 1
_HEADER = b"HA" + bytes([FORMAT_VERSION])
_NONCE = 12
KEY_BYTES = 32
OVERHEAD = len(_HEADER) + _NONCE + 16

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True)
class Aad:
    """What a ciphertext is bound to. ``owner`` is the record id (or the job id for data taken
    in before a record exists); ``name`` is the field or blob name, e.g. ``page/3/cleaned``."""

    appliance: str
    owner: str
    version: int
    name: str
    key_id: str

    def encode(self) -> bytes:
        if any("\x00" in p for p in (self.appliance, self.owner, self.name, self.key_id)):
            raise ValueError("AAD parts must not contain NUL (the encoding joins them with NUL)")
        parts = (
            "hall-appliance",
            str(FORMAT_VERSION),
            self.appliance,
            self.owner,
            str(self.version),
            self.name,
            self.key_id,
        )
        return "\x00".join(parts).encode("utf-8")

    def describe(self) -> str:
        return f"{self.name} of {self.owner} (version {self.version}, key {self.key_id})"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: Aad) -> bytes:
    nonce = os.urandom(_NONCE)
    return _HEADER + nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def open_sealed(key: bytes, blob: bytes, aad: Aad) -> bytes:
    """Decrypt and authenticate; :class:`DecryptionFailed` (naming the field, never its
    content) on any mismatch."""
    if len(blob) < OVERHEAD or blob[: len(_HEADER)] != _HEADER:
        raise DecryptionFailed(
            f"{aad.describe()} is not ciphertext of format version {FORMAT_VERSION} (damaged or foreign data)"
        )
    nonce = blob[len(_HEADER) : len(_HEADER) + _NONCE]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(_HEADER) + _NONCE :], aad.encode())
    except InvalidTag:
        raise DecryptionFailed(
            f"{aad.describe()} failed authentication: the ciphertext was altered, moved from another "
            "row or record, or the key does not match; restore it from the replica or the archive"
        ) from None


def _wrap_aad(appliance: str, dek_id: str, kek_id: str) -> bytes:
    return "\x00".join(("hall-appliance dek-wrap", str(FORMAT_VERSION), appliance, dek_id, kek_id)).encode()


def wrap_key(kek: bytes, kek_id: str, dek: bytes, *, appliance: str, dek_id: str) -> bytes:
    nonce = os.urandom(_NONCE)
    return _HEADER + nonce + AESGCM(kek).encrypt(nonce, dek, _wrap_aad(appliance, dek_id, kek_id))


def unwrap_key(kek: bytes, kek_id: str, wrapped: bytes, *, appliance: str, dek_id: str) -> bytes:
    nonce = wrapped[len(_HEADER) : len(_HEADER) + _NONCE]
    try:
        if len(wrapped) < OVERHEAD or wrapped[: len(_HEADER)] != _HEADER:
            raise InvalidTag
        return AESGCM(kek).decrypt(
            nonce, wrapped[len(_HEADER) + _NONCE :], _wrap_aad(appliance, dek_id, kek_id)
        )
    except InvalidTag:
        raise DecryptionFailed(
            f"data key {dek_id} does not open with hall key {kek_id}: the key file does not belong to this "
            "catalog (restore the right key file or use the recovery kit)"
        ) from None


def _seal_info(appliance: str, dek_id: str) -> bytes:
    return "\x00".join(("hall-appliance dek-to-archive", str(FORMAT_VERSION), appliance, dek_id)).encode()


def seal_to_archive(archive_key: X25519PublicKey, dek: bytes, *, appliance: str, dek_id: str) -> bytes:
    """HPKE base-mode single-shot encryption of the DEK to the archive's public key."""
    return bytes(_SUITE.encrypt(dek, archive_key, info=_seal_info(appliance, dek_id)))


def open_from_archive(
    archive_private: X25519PrivateKey, sealed: bytes, *, appliance: str, dek_id: str
) -> bytes:
    """The archive side of :func:`seal_to_archive` (used by the central receiver and tests)."""
    try:
        return bytes(_SUITE.decrypt(sealed, archive_private, info=_seal_info(appliance, dek_id)))
    except Exception as e:  # cryptography raises InvalidTag or ValueError for malformed input
        raise DecryptionFailed(
            f"the archive key cannot open the data key {dek_id} sealed by appliance {appliance}"
        ) from e
