"""The archive's own keys, as files under ``ARCHIVE_DIR/keys/`` (directory 0700, files 0400)::

    archive.x25519    raw 32 bytes: HPKE private key the boxes seal every record's data key to
                      (same format as :func:`appliance.keys.generate_archive_keypair`, so the
                      embedded default's ``DATA_DIR/local-archive/keys/archive.x25519`` is kept)
    archive.ed25519   PKCS#8 PEM: signs receipts
    index.key         32 random bytes: the archive's own blind index (cross-hall search)

Existing keys are never replaced; owner and mode are checked on every load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from appliance.envelope import KEY_BYTES
from appliance.errors import KeyInvalid
from appliance.fsutil import atomic_write
from appliance.keys import FileKeySource, generate_archive_keypair, load_archive_private

ENCRYPTION_FILE = "archive.x25519"
SIGNING_FILE = "archive.ed25519"
INDEX_FILE = "index.key"


@dataclass(frozen=True)
class ArchiveKeys:
    encryption: X25519PrivateKey
    signing: Ed25519PrivateKey
    index_key: bytes


def create_missing(keys_dir: Path) -> list[str]:
    """Create whichever archive key is absent (idempotent). Returns the paths created."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    created: list[str] = []
    enc = keys_dir / ENCRYPTION_FILE
    if not enc.exists():
        generate_archive_keypair(enc)
        created.append(str(enc))
    sig = keys_dir / SIGNING_FILE
    if not sig.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        atomic_write(sig, pem, mode=0o400)
        created.append(str(sig))
    idx = keys_dir / INDEX_FILE
    if not idx.exists():
        atomic_write(idx, os.urandom(KEY_BYTES), mode=0o400)
        created.append(str(idx))
    return created


def _signing(keys_dir: Path) -> Ed25519PrivateKey:
    path = keys_dir / SIGNING_FILE
    data = FileKeySource(keys_dir)._read(path, secret=True, what="archive signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise KeyInvalid(f"archive signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyInvalid(f"archive signing key {path} is not an Ed25519 key")
    return key


def _index(keys_dir: Path) -> bytes:
    path = keys_dir / INDEX_FILE
    data = FileKeySource(keys_dir)._read(path, secret=True, what="archive index key")
    if len(data) != KEY_BYTES:
        raise KeyInvalid(f"archive index key {path} holds {len(data)} bytes, not {KEY_BYTES} (damaged?)")
    return data


def load(keys_dir: Path) -> ArchiveKeys:
    """All three keys; :class:`~appliance.errors.KeyProblem` naming the file if one is wrong."""
    return ArchiveKeys(load_archive_private(keys_dir / ENCRYPTION_FILE), _signing(keys_dir), _index(keys_dir))


def public_keys(keys_dir: Path) -> tuple[X25519PublicKey, Ed25519PublicKey]:
    """What a box pins: the encryption and the receipt-signing public keys."""
    return load_archive_private(keys_dir / ENCRYPTION_FILE).public_key(), _signing(keys_dir).public_key()
