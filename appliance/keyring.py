"""Data keys (DEKs) in the catalog: create, unwrap (with a small cache), encrypt/decrypt fields,
shred. The KEKs themselves come from a :class:`~appliance.keys.KeySource`.

One DEK per file handed over (its id is the job id); the record made from that file uses the same
key, so the file name taken at intake and everything derived from the scan die together when the
key is shredded.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections import OrderedDict

from appliance import envelope
from appliance.envelope import Aad
from appliance.errors import DataDirError, RecordShredded, StoreError
from appliance.keys import KeySource, raw_public

AUDIT_DEK = "audit"
_CACHE = 512


def archive_key_id(keys: KeySource) -> str:
    return hashlib.sha256(raw_public(keys.archive_key())).hexdigest()[:16]


class KeyRing:
    def __init__(self, keys: KeySource, appliance: str) -> None:
        self.keys = keys
        self.appliance = appliance
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    # --- hall key (KEK) pointer ---------------------------------------------------------------
    @staticmethod
    def current_kek_id(conn: sqlite3.Connection) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key='kek_current'").fetchone()
        if row is None:
            raise DataDirError("the catalog names no hall key (meta.kek_current); run `hall init`")
        return str(row[0])

    # --- data keys ----------------------------------------------------------------------------
    def create_dek(self, conn: sqlite3.Connection, dek_id: str) -> bytes:
        """Create, wrap and seal a new DEK (inside the caller's transaction)."""
        dek = envelope.new_key()
        kek_id = self.current_kek_id(conn)
        wrapped = envelope.wrap_key(
            self.keys.kek(kek_id), kek_id, dek, appliance=self.appliance, dek_id=dek_id
        )
        sealed = envelope.seal_to_archive(
            self.keys.archive_key(), dek, appliance=self.appliance, dek_id=dek_id
        )
        conn.execute(
            "INSERT INTO deks(id, kek_id, wrapped, sealed, archive_key_id, created_at) VALUES (?,?,?,?,?,?)",
            (dek_id, kek_id, wrapped, sealed, archive_key_id(self.keys), time.time()),
        )
        self._remember(dek_id, dek)
        return dek

    def dek(self, conn: sqlite3.Connection, dek_id: str) -> bytes:
        cached = self._cache.get(dek_id)
        if cached is not None:
            self._cache.move_to_end(dek_id)
            return cached
        row = conn.execute("SELECT kek_id, wrapped, shredded_at FROM deks WHERE id=?", (dek_id,)).fetchone()
        if row is None:
            raise StoreError(f"no data key {dek_id} in the catalog")
        if row["shredded_at"] is not None or row["wrapped"] is None:
            raise RecordShredded(
                f"the data key {dek_id} was destroyed (record shredded); its content is gone"
            )
        dek = envelope.unwrap_key(
            self.keys.kek(row["kek_id"]),
            row["kek_id"],
            bytes(row["wrapped"]),
            appliance=self.appliance,
            dek_id=dek_id,
        )
        self._remember(dek_id, dek)
        return dek

    def _remember(self, dek_id: str, dek: bytes) -> None:
        self._cache[dek_id] = dek
        self._cache.move_to_end(dek_id)
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)

    def forget(self, dek_id: str) -> None:
        self._cache.pop(dek_id, None)

    def shred(self, conn: sqlite3.Connection, dek_id: str) -> None:
        """Destroy both copies of the DEK (inside the caller's transaction). ``secure_delete``
        makes SQLite overwrite the old bytes in the file."""
        conn.execute(
            "UPDATE deks SET wrapped=NULL, sealed=NULL, shredded_at=? WHERE id=?", (time.time(), dek_id)
        )
        self.forget(dek_id)

    # --- fields ---------------------------------------------------------------------------------
    def aad(self, owner: str, name: str, dek_id: str, version: int = 1) -> Aad:
        return Aad(self.appliance, owner, version, name, dek_id)

    def encrypt(
        self, conn: sqlite3.Connection, dek_id: str, owner: str, name: str, data: bytes, version: int = 1
    ) -> bytes:
        return envelope.seal(self.dek(conn, dek_id), data, self.aad(owner, name, dek_id, version))

    def decrypt(
        self, conn: sqlite3.Connection, dek_id: str, owner: str, name: str, blob: bytes, version: int = 1
    ) -> bytes:
        return envelope.open_sealed(self.dek(conn, dek_id), blob, self.aad(owner, name, dek_id, version))

    def ensure_audit_key(self, conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM deks WHERE id=?", (AUDIT_DEK,)).fetchone() is None:
            self.create_dek(conn, AUDIT_DEK)
