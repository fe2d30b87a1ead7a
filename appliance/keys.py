"""Where the box's secret keys come from.

Keys never live in the catalog. :class:`KeySource` is the one interface the rest of the code
uses; :class:`FileKeySource` keeps them as files under ``DATA_DIR/keys`` (directory 0700, files
0400) and checks owner and mode on every load. A TPM-sealed ``systemd-creds`` source can replace
it later by implementing the same protocol.

Layout of ``keys/``::

    kek/<kek-id>.key        32 random bytes: hall key-encryption keys (one current, one more
                            while ``hall keys rotate`` runs)
    index.key               32 random bytes: root of the blind-index keys (HKDF-derived)
    device.ed25519          PKCS#8 PEM: the device identity (audit checkpoints, transfer signing)
    archive.x25519.pub      raw 32 bytes: the central archive's pinned encryption key (DEKs are
                            sealed to it)
    archive.ed25519.pub     raw 32 bytes: the central archive's pinned signing key (receipts)

Both archive keys are pinned by ``hall init`` (embedded defaults: the local archive) or by
``hall enroll`` (a real archive, which may replace them: :meth:`FileKeySource.pin_archive`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from appliance.envelope import KEY_BYTES
from appliance.errors import KeyInvalid, KeyMissing, KeyPermissions
from appliance.fsutil import atomic_write, fsync_dir

_KEK_ID = re.compile(r"^kek-[0-9]{8}-[0-9a-f]{8}$")


class KeySource(Protocol):
    def kek(self, kek_id: str) -> bytes: ...
    def kek_ids(self) -> list[str]: ...
    def create_kek(self) -> str: ...
    def destroy_kek(self, kek_id: str) -> None: ...
    def discard_unfinished(self) -> None: ...
    def index_key(self) -> bytes: ...
    def device_key(self) -> Ed25519PrivateKey: ...
    def archive_key(self) -> X25519PublicKey: ...
    def archive_signing_key(self) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class KeyFileStatus:
    name: str
    path: Path
    present: bool
    mode: str | None
    ok: bool
    problem: str | None


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class FileKeySource:
    def __init__(self, keys_dir: Path) -> None:
        self.dir = keys_dir

    # --- paths ------------------------------------------------------------------------------
    @property
    def kek_dir(self) -> Path:
        return self.dir / "kek"

    @property
    def index_path(self) -> Path:
        return self.dir / "index.key"

    @property
    def device_path(self) -> Path:
        return self.dir / "device.ed25519"

    @property
    def archive_path(self) -> Path:
        return self.dir / "archive.x25519.pub"

    @property
    def archive_signing_path(self) -> Path:
        return self.dir / "archive.ed25519.pub"

    @property
    def retired_dir(self) -> Path:
        return self.dir / "retired"

    def kek_path(self, kek_id: str) -> Path:
        if not _KEK_ID.match(kek_id):
            raise KeyInvalid(f"{kek_id!r} is not a hall key id (expected kek-YYYYMMDD-xxxxxxxx)")
        return self.kek_dir / f"{kek_id}.key"

    # --- reading ----------------------------------------------------------------------------
    def _read(self, path: Path, *, secret: bool, what: str) -> bytes:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise KeyMissing(
                f"{what} is missing: {path} does not exist. Restore it from the recovery kit "
                "(hall provision) or, on a new data dir, run `hall init`"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyInvalid(f"{what} at {path} is not a regular file")
        if secret:
            if st.st_mode & 0o077:
                raise KeyPermissions(
                    f"{what} {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                    f"run: chmod 0400 {path}"
                )
            if st.st_uid != os.geteuid():
                raise KeyPermissions(
                    f"{what} {path} belongs to uid {st.st_uid}, not to the service user "
                    f"(uid {os.geteuid()}); "
                    f"run: chown {os.geteuid()} {path}"
                )
        try:
            return path.read_bytes()
        except PermissionError:
            raise KeyPermissions(f"{what} {path} cannot be read by uid {os.geteuid()}") from None

    def _symmetric(self, path: Path, what: str) -> bytes:
        data = self._read(path, secret=True, what=what)
        if len(data) != KEY_BYTES:
            raise KeyInvalid(f"{what} {path} holds {len(data)} bytes, not a {KEY_BYTES}-byte key (damaged?)")
        return data

    def kek(self, kek_id: str) -> bytes:
        return self._symmetric(self.kek_path(kek_id), f"hall key {kek_id}")

    def kek_ids(self) -> list[str]:
        if not self.kek_dir.is_dir():
            return []
        return sorted(p.stem for p in self.kek_dir.glob("kek-*.key") if _KEK_ID.match(p.stem))

    def index_key(self) -> bytes:
        return self._symmetric(self.index_path, "search index key")

    def device_key(self) -> Ed25519PrivateKey:
        data = self._read(self.device_path, secret=True, what="device identity key")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError:
            raise KeyInvalid(f"device identity key {self.device_path} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyInvalid(f"device identity key {self.device_path} is not an Ed25519 key")
        return key

    def archive_key(self) -> X25519PublicKey:
        data = self._read(self.archive_path, secret=False, what="central archive public key")
        if len(data) != 32:
            raise KeyInvalid(
                f"central archive public key {self.archive_path} must be 32 raw bytes (X25519); "
                "pin the key from the archive again (hall provision)"
            )
        return X25519PublicKey.from_public_bytes(data)

    def archive_signing_key(self) -> Ed25519PublicKey:
        data = self._read(self.archive_signing_path, secret=False, what="central archive signing key")
        if len(data) != 32:
            raise KeyInvalid(
                f"central archive signing key {self.archive_signing_path} must be 32 raw bytes (Ed25519); "
                "pin it again: `hall init` (local archive) or `hall enroll`"
            )
        return Ed25519PublicKey.from_public_bytes(data)

    def retire_device_keys(self, keys: dict[str, Ed25519PublicKey]) -> list[str]:
        """Keep the public halves of earlier device keys of this hall (a replaced box's): the
        audit checkpoints they signed still verify. Files ``retired/<key id>.ed25519.pub``."""
        from appliance.audit import key_id

        written = []
        self.retired_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for kid, public in keys.items():
            if key_id(public) != kid:
                raise KeyInvalid(f"retired device key {kid} does not match its own key id")
            path = self.retired_dir / f"{kid}.ed25519.pub"
            if not path.exists():
                atomic_write(path, raw_public(public), mode=0o444)
                written.append(str(path))
        return written

    def device_public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every device key whose audit checkpoints this box accepts: its own and the retired ones."""
        from appliance.audit import key_id

        own = self.device_key().public_key()
        out = {key_id(own): own}
        if self.retired_dir.is_dir():
            for p in sorted(self.retired_dir.glob("*.ed25519.pub")):
                public = Ed25519PublicKey.from_public_bytes(p.read_bytes())
                out[key_id(public)] = public
        return out

    def pin_archive(
        self, encryption: X25519PublicKey | None = None, signing: Ed25519PublicKey | None = None
    ) -> list[str]:
        """Pin (or replace the pins of) the archive's public keys; returns the files written.
        Only enrollment replaces a pin: DEKs sealed to an old encryption key must then be sealed
        again (:mod:`sync.enrollment`)."""
        self._ensure_dirs()
        written = []
        for key, path in ((encryption, self.archive_path), (signing, self.archive_signing_path)):
            if key is None:
                continue
            raw = raw_public(key)
            if path.exists() and path.read_bytes() == raw:
                continue
            atomic_write(path, raw, mode=0o444)  # a rename: the old read-only pin is replaced whole
            written.append(str(path))
        return written

    # --- creating and destroying -------------------------------------------------------------
    def _ensure_dirs(self) -> None:
        for d in (self.dir, self.kek_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)

    def create_kek(self) -> str:
        self._ensure_dirs()
        kek_id = f"kek-{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"
        atomic_write(self.kek_path(kek_id), os.urandom(KEY_BYTES), mode=0o400)
        return kek_id

    def destroy_kek(self, kek_id: str) -> None:
        path = self.kek_path(kek_id)
        if path.exists():
            # Overwrite before unlinking (best effort on SSDs; crypto-shredding relies on the
            # wrapped keys being gone, this only removes the easy copy).
            os.chmod(path, 0o600)
            with path.open("r+b") as f:
                f.write(os.urandom(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
            fsync_dir(path.parent)

    def discard_unfinished(self) -> None:
        """Overwrite and remove key files whose atomic write was cut short (``.kek-*.tmp``)."""
        if not self.kek_dir.is_dir():
            return
        for tmp in self.kek_dir.glob(".kek-*.tmp"):
            with contextlib.suppress(OSError):
                os.chmod(tmp, 0o600)
                size = tmp.stat().st_size
                with tmp.open("r+b") as f:
                    f.write(os.urandom(size))
                    f.flush()
                    os.fsync(f.fileno())
            tmp.unlink(missing_ok=True)
        fsync_dir(self.kek_dir)

    def create_missing(
        self, archive_public: X25519PublicKey | None, archive_signing: Ed25519PublicKey | None = None
    ) -> list[str]:
        """Create whatever key is absent (idempotent; existing keys are never replaced).
        Returns the names of the files created."""
        self._ensure_dirs()
        created: list[str] = []
        if not self.kek_ids():
            created.append(str(self.kek_path(self.create_kek())))
        if not self.index_path.exists():
            atomic_write(self.index_path, os.urandom(KEY_BYTES), mode=0o400)
            created.append(str(self.index_path))
        if not self.device_path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            atomic_write(self.device_path, pem, mode=0o400)
            created.append(str(self.device_path))
        if not self.archive_path.exists() and archive_public is not None:
            atomic_write(self.archive_path, raw_public(archive_public), mode=0o444)
            created.append(str(self.archive_path))
        if not self.archive_signing_path.exists() and archive_signing is not None:
            atomic_write(self.archive_signing_path, raw_public(archive_signing), mode=0o444)
            created.append(str(self.archive_signing_path))
        return created

    def status(self) -> list[KeyFileStatus]:
        """Each expected key file with its mode and whether it loads (for `hall doctor`)."""
        checks: list[tuple[str, Path, object]] = [
            ("index key", self.index_path, self.index_key),
            ("device key", self.device_path, self.device_key),
            ("archive public key", self.archive_path, self.archive_key),
            ("archive signing key", self.archive_signing_path, self.archive_signing_key),
        ]
        for kek_id in self.kek_ids() or ["kek-00000000-00000000"]:
            checks.append((f"hall key {kek_id}", self.kek_path(kek_id), lambda k=kek_id: self.kek(k)))
        out = []
        for name, path, load in checks:
            present = path.exists()
            mode = f"{stat.S_IMODE(path.stat().st_mode):04o}" if present else None
            problem = None
            try:
                load()  # type: ignore[operator]
            except (KeyMissing, KeyPermissions, KeyInvalid) as e:
                problem = str(e)
            out.append(KeyFileStatus(name, path, present, mode, problem is None, problem))
        return out


def generate_archive_keypair(private_path: Path) -> X25519PublicKey:
    """Create an X25519 key pair for a *local* archive (embedded defaults and tests): the
    private key goes to ``private_path`` (0400), the public key is returned for pinning."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(private_path.parent, 0o700)
    if private_path.exists():
        return load_archive_private(private_path).public_key()
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    atomic_write(private_path, raw, mode=0o400)
    return key.public_key()


def load_archive_private(path: Path) -> X25519PrivateKey:
    data = FileKeySource(path.parent)._read(path, secret=True, what="archive private key")
    if len(data) != 32:
        raise KeyInvalid(f"archive private key {path} must be 32 raw bytes (X25519)")
    return X25519PrivateKey.from_private_bytes(data)


# --- keys handed over by systemd (LoadCredential=keys:/etc/hall/keys) -------------------------
_KEY_FILE = re.compile(
    r"^(kek-\d{8}-[0-9a-f]{8}\.key|index\.key|device\.ed25519|archive\.(x25519|ed25519)\.pub)$"
)


def install_from_credentials(cred_dir: Path, dest: Path, *, prefix: str = "keys_") -> list[str]:
    """Lay the credentials systemd loaded from a key folder (``<prefix><file name>``, read-only,
    owned by the service user) out as ``keys/`` in ``dest`` (a private runtime folder): hall keys
    under ``kek/``, the rest at the top; 0400 files, 0700 folders. Returns the files written."""
    if not cred_dir.is_dir():
        raise KeyMissing(
            f"no credentials folder {cred_dir}: run this from hall.service (LoadCredential=keys:...)"
        )
    found = []
    for p in sorted(cred_dir.iterdir()):
        name = p.name.removeprefix(prefix)
        if not p.name.startswith(prefix) or not _KEY_FILE.match(name.split("_")[-1]):
            continue
        name = name.split("_")[-1]  # a credential from a sub-folder may carry its folder name
        found.append((name, p.read_bytes()))
    if not any(n.startswith("kek-") for n, _ in found):
        raise KeyMissing(
            f"the credentials in {cred_dir} hold no hall key ({prefix}kek-*.key): check /etc/hall/keys"
        )
    for d in (dest, dest / "kek"):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
    written = []
    for name, data in found:
        path = dest / "kek" / name if name.startswith("kek-") else dest / name
        atomic_write(path, data, mode=0o444 if name.endswith(".pub") else 0o400)
        written.append(str(path))
    return written
