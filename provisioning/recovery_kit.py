"""The recovery kit: the hall keys (KEKs) and the search index key, split k-of-n (Shamir) onto
printed sheets for the supervisors' safe (``hall provision kit``), and put back together
(``hall provision restore-keys``) when a box dies.

One sheet = one share, as a QR code and as typed text (groups of five characters, for when no
scanner is at hand). A share string::

    HK1-<base32 of: version | k | n | x | kit id (8) | fingerprint (8) | hall id | y | crc32>

The fingerprint is the first 8 bytes of SHA-256 of the secret bundle: combining shares gives
either the exact bundle (fingerprint matches) or an error, never wrong keys. The CRC catches a
mistyped character on the sheet before any combining. Shares of two different kits (kit id) or
halls are refused. A single sheet, or any k-1 of them, says nothing about a key (see
:mod:`provisioning.shamir`); the kit id, hall id, k and n are printed in the clear.

The bundle: ``HKS1`` | count | (name length, name, key length, key)*, names ``kek/<id>.key`` and
``index.key`` — the files of ``keys/`` they are written back to, with mode 0400.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import HallError
from appliance.fsutil import atomic_write
from appliance.keys import FileKeySource
from provisioning.shamir import Share, ShareError, combine, split

PREFIX = "HK1-"
_VERSION = 1
_BUNDLE = b"HKS1"


class KitError(HallError):
    """The recovery kit cannot be made or used (the message says what to do)."""

    code = "recovery_kit"


@dataclass(frozen=True)
class SheetShare:
    hall_id: str
    k: int
    n: int
    x: int
    kit_id: bytes
    fingerprint: bytes
    y: bytes

    def encode(self) -> str:
        hall = self.hall_id.encode("utf-8")
        head = struct.pack("BBBB", _VERSION, self.k, self.n, self.x) + self.kit_id + self.fingerprint
        body = head + struct.pack("B", len(hall)) + hall + self.y
        body += struct.pack(">I", zlib.crc32(body))
        return PREFIX + base64.b32encode(body).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> SheetShare:
        cleaned = re.sub(r"[\s-]", "", text.strip().upper())
        prefix = PREFIX.rstrip("-")
        if not cleaned.startswith(prefix):
            raise KitError(f"not a recovery-kit share (it must start with {PREFIX}): {text[:12]!r}…")
        data = cleaned[len(prefix) :]
        try:
            raw = base64.b32decode(data + "=" * (-len(data) % 8))
        except ValueError:
            raise KitError(
                "the share text holds a character that cannot be on a sheet: check what was typed"
            ) from None
        if len(raw) < 4 + 16 + 1 + 4 or zlib.crc32(raw[:-4]) != struct.unpack(">I", raw[-4:])[0]:
            raise KitError(
                "the share text is damaged or mistyped (its check digits do not match): type it again"
            )
        version, k, n, x = struct.unpack("BBBB", raw[:4])
        if version != _VERSION:
            raise KitError(f"share format {version} is not known to this version of hall")
        kit_id, fingerprint = raw[4:12], raw[12:20]
        hall_len = raw[20]
        hall_id = raw[21 : 21 + hall_len].decode("utf-8")
        return cls(hall_id, k, n, x, kit_id, fingerprint, raw[21 + hall_len : -4])

    @property
    def kit_label(self) -> str:
        return self.kit_id.hex()


@dataclass(frozen=True)
class Kit:
    hall_id: str
    k: int
    n: int
    kit_id: str
    fingerprint: str
    key_names: list[str]
    shares: list[str]


# --- the secret bundle ------------------------------------------------------------------------
def _bundle(entries: Sequence[tuple[str, bytes]]) -> bytes:
    out = bytearray(_BUNDLE + struct.pack("B", len(entries)))
    for name, key in entries:
        n = name.encode("ascii")
        out += struct.pack("B", len(n)) + n + struct.pack("B", len(key)) + key
    return bytes(out)


def _unbundle(data: bytes) -> list[tuple[str, bytes]]:
    if not data.startswith(_BUNDLE):
        raise KitError("the combined shares are not a key bundle")
    count, pos, out = data[4], 5, []
    for _ in range(count):
        ln = data[pos]
        name = data[pos + 1 : pos + 1 + ln].decode("ascii")
        pos += 1 + ln
        kl = data[pos]
        out.append((name, data[pos + 1 : pos + 1 + kl]))
        pos += 1 + kl
    return out


def _fingerprint(secret: bytes) -> bytes:
    return hashlib.sha256(b"hall-recovery-kit/1\n" + secret).digest()[:8]


def key_entries(keys: FileKeySource) -> list[tuple[str, bytes]]:
    """The keys a kit holds: every hall key still on the box, and the index key."""
    ids = keys.kek_ids()
    if not ids:
        raise KitError(f"no hall key in {keys.kek_dir}: run `hall init` or restore the keys first")
    return [*((f"kek/{i}.key", keys.kek(i)) for i in ids), ("index.key", keys.index_key())]


def make_kit(keys: FileKeySource, hall_id: str, k: int, n: int) -> Kit:
    entries = key_entries(keys)
    secret = _bundle(entries)
    kit_id, fp = secrets.token_bytes(8), _fingerprint(secret)
    try:
        parts = split(secret, k, n)
    except ShareError as e:
        raise KitError(str(e)) from None
    shares = [SheetShare(hall_id, k, n, p.x, kit_id, fp, p.y).encode() for p in parts]
    return Kit(hall_id, k, n, kit_id.hex(), fp.hex(), [name for name, _ in entries], shares)


# --- putting it back together -----------------------------------------------------------------
def combine_shares(texts: Iterable[str], *, hall_id: str | None = None) -> list[tuple[str, bytes]]:
    """The keys from share texts (QR contents or typed). Raises :class:`KitError` saying what is
    wrong: too few, mixed kits or halls, a share twice, damaged text, or a failed fingerprint."""
    sheets = [SheetShare.decode(t) for t in texts if t.strip()]
    if not sheets:
        raise KitError("no share given")
    first = sheets[0]
    for s in sheets[1:]:
        if (s.kit_id, s.hall_id) != (first.kit_id, first.hall_id):
            raise KitError(
                f"the shares come from different recovery kits (kit {first.kit_label} of {first.hall_id} "
                f"and kit {s.kit_label} of {s.hall_id}): use sheets of one kit only"
            )
    if hall_id is not None and first.hall_id != hall_id:
        raise KitError(f"these sheets belong to hall {first.hall_id!r}, not to {hall_id!r}")
    distinct = {s.x: s for s in sheets}
    if len(distinct) < first.k:
        raise KitError(
            f"{len(distinct)} different share(s) of kit {first.kit_label}; {first.k} of the {first.n} "
            "sheets are needed to restore the keys"
        )
    try:
        secret = combine([Share(s.x, s.y) for s in distinct.values()])
    except ShareError as e:
        raise KitError(str(e)) from None
    if _fingerprint(secret) != first.fingerprint:
        raise KitError("the shares do not combine to the kit's keys (a sheet is forged or altered)")
    return _unbundle(secret)


def write_keys(entries: Sequence[tuple[str, bytes]], keys_dir: Path) -> list[str]:
    """Write restored keys in the layout of ``keys/`` (0400; folders 0700). An existing file must
    hold the same key."""
    written = []
    for name, key in entries:
        if not re.fullmatch(r"(kek/kek-\d{8}-[0-9a-f]{8}\.key|index\.key)", name):
            raise KitError(f"unexpected key name {name!r} in the kit")
        path = keys_dir / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(keys_dir, 0o700)
        os.chmod(path.parent, 0o700)
        if path.exists():
            if path.read_bytes() != key:
                raise KitError(f"{path} already holds a different key; restore into an empty folder")
            continue
        atomic_write(path, key, mode=0o400)
        written.append(str(path))
    return written
