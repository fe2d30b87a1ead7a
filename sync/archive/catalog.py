"""The archive catalog: enrolled devices, enrollment tokens, the nonce cache, accepted packages,
the record register, the rejection log, the cross-hall search tokens and the newest audit
checkpoint of every hall. One interface, two backends (:mod:`sync.archive.db`).

Nothing personal is stored in plaintext: packages keep their metadata and OCR as ciphertext, and
search tokens are keyed hashes under the archive's index key.

Acceptance is atomic and idempotent: :meth:`Catalog.store_accepted` inserts the package, moves the
record to it, replaces its search tokens and advances the audit checkpoint in one transaction;
``packages.idempotency_key`` and ``records.archival_code`` are UNIQUE, so a concurrent duplicate
fails on the constraint and the receipt stored by the winner is returned instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sync.archive.db import Database, Dialect, Tx
from sync.archive.errors import CatalogConflict, DeviceRevoked, EnrollmentRefused, Replay
from sync.protocol import b64, ed25519_public, key_id, raw_public

SCHEMA_VERSION = 1
_AUTO_ID = {
    "sqlite": "INTEGER PRIMARY KEY",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    key_id       TEXT PRIMARY KEY,
    hall_id      TEXT NOT NULL,
    hall_name    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    enrolled_at  DOUBLE PRECISION NOT NULL,
    revoked_at   DOUBLE PRECISION,
    last_contact DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS devices_hall ON devices(hall_id);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    hall_id    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at    DOUBLE PRECISION,
    used_by    TEXT
);
CREATE TABLE IF NOT EXISTS nonces (
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces(expires_at);
CREATE TABLE IF NOT EXISTS packages (
    id              {auto_id},
    idempotency_key TEXT NOT NULL UNIQUE,
    hall_id         TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    record_version  BIGINT NOT NULL,
    archival_code   TEXT NOT NULL,
    package         TEXT NOT NULL,
    package_sha256  TEXT NOT NULL,
    receipt         TEXT NOT NULL,
    checks          TEXT NOT NULL,
    received_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS packages_record ON packages(hall_id, record_id);
CREATE TABLE IF NOT EXISTS records (
    hall_id        TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    record_version BIGINT NOT NULL,
    package_id     BIGINT NOT NULL REFERENCES packages(id),
    archival_code  TEXT NOT NULL UNIQUE,
    confirmed_at   DOUBLE PRECISION NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hall_id, record_id)
);
CREATE TABLE IF NOT EXISTS rejections (
    id              {auto_id},
    hall_id         TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    failed          TEXT NOT NULL,
    at              DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_hall ON rejections(hall_id);
CREATE TABLE IF NOT EXISTS search_tokens (
    hall_id   TEXT NOT NULL,
    record_id TEXT NOT NULL,
    token     TEXT NOT NULL,
    PRIMARY KEY (hall_id, record_id, token)
);
CREATE INDEX IF NOT EXISTS search_tokens_token ON search_tokens(token);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    hall_id     TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    entry_hash  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    signature   TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    flag        TEXT,
    flagged_at  DOUBLE PRECISION
)
"""


@dataclass(frozen=True)
class Device:
    key_id: str
    hall_id: str
    hall_name: str
    public_key: Ed25519PublicKey
    enrolled_at: float
    revoked_at: float | None
    last_contact: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Device:
        return cls(
            key_id=row["key_id"],
            hall_id=row["hall_id"],
            hall_name=row["hall_name"],
            public_key=ed25519_public(row["public_key"], "stored device key"),
            enrolled_at=float(row["enrolled_at"]),
            revoked_at=None if row["revoked_at"] is None else float(row["revoked_at"]),
            last_contact=None if row["last_contact"] is None else float(row["last_contact"]),
        )


@dataclass(frozen=True)
class CheckpointIn:
    """An audit checkpoint from a manifest; ``problem`` is set when it must only be flagged."""

    seq: int
    entry_hash: str
    key_id: str
    signature: str
    problem: str | None = None


@dataclass(frozen=True)
class AcceptedPackage:
    idempotency_key: str
    hall_id: str
    record_id: str
    record_version: int
    archival_code: str
    confirmed_at: float
    package_text: str
    package_sha256: str
    receipt: dict[str, Any]
    received_at: float
    tokens: frozenset[str]
    checkpoint: CheckpointIn | None


class ArchivalCodeTaken(CatalogConflict):
    """Another record (of any hall) already holds this 档号."""

    code = "archival_code_taken"


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> Dialect:
        return self.db.dialect

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> None:
        with self.db.tx() as tx:
            for statement in _SCHEMA.format(auto_id=_AUTO_ID[self.dialect]).split(";\n"):
                if statement.strip():
                    tx.execute(statement)
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

    # --- staff ----------------------------------------------------------------------------
    def has_staff_token(self) -> bool:
        return self.db.read().one("SELECT 1 AS x FROM staff_tokens") is not None

    def add_staff_token(self, token_hash: str, now: float) -> None:
        with self.db.tx() as tx:
            tx.execute("INSERT INTO staff_tokens(token_hash, created_at) VALUES (?, ?)", (token_hash, now))

    def staff_token_known(self, token_hash: str) -> bool:
        return (
            self.db.read().one("SELECT 1 AS x FROM staff_tokens WHERE token_hash=?", (token_hash,))
            is not None
        )

    # --- devices and enrollment -----------------------------------------------------------
    def add_enrollment_token(self, token_hash: str, hall_id: str, now: float, expires_at: float) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO enrollment_tokens(token_hash, hall_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, hall_id, now, expires_at),
            )

    def enroll(
        self, token_hash: str, hall_id: str, hall_name: str, public: Ed25519PublicKey, now: float
    ) -> Device:
        """Use the token and register the key; the hall's other keys are revoked (replacement).
        The same key enrolling again for the same hall keeps its row (a repeated enrollment)."""
        kid = key_id(public)
        with self.db.tx() as tx:
            token = tx.one("SELECT * FROM enrollment_tokens WHERE token_hash=?", (token_hash,))
            if token is None or token["used_at"] is not None:
                raise EnrollmentRefused(
                    "the enrollment token is unknown or was already used: ask for a new one"
                )
            if token["expires_at"] < now:
                raise EnrollmentRefused("the enrollment token has expired: ask the archive for a new one")
            if token["hall_id"] != hall_id:
                raise EnrollmentRefused(
                    f"the enrollment token was issued for another hall, not {hall_id!r}: check the hall id"
                )
            existing = tx.one("SELECT * FROM devices WHERE key_id=?", (kid,))
            if existing is not None and existing["hall_id"] != hall_id:
                raise EnrollmentRefused(
                    "this device key is enrolled for another hall: generate a new device key"
                )
            if existing is not None and existing["revoked_at"] is not None:
                raise EnrollmentRefused(
                    "this device key was revoked: generate a new device key and enroll it"
                )
            changed = tx.execute(
                "UPDATE enrollment_tokens SET used_at=?, used_by=? WHERE token_hash=? AND used_at IS NULL",
                (now, kid, token_hash),
            )
            if changed != 1:
                raise EnrollmentRefused("the enrollment token was already used: ask for a new one")
            tx.execute(
                "UPDATE devices SET revoked_at=? WHERE hall_id=? AND key_id<>? AND revoked_at IS NULL",
                (now, hall_id, kid),
            )
            if existing is None:
                tx.execute(
                    "INSERT INTO devices(key_id, hall_id, hall_name, public_key, enrolled_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (kid, hall_id, hall_name, b64(raw_public(public)), now),
                )
            else:
                tx.execute("UPDATE devices SET hall_name=? WHERE key_id=?", (hall_name, kid))
            row = tx.one("SELECT * FROM devices WHERE key_id=?", (kid,))
        assert row is not None
        return Device.from_row(row)

    def device(self, kid: str) -> Device | None:
        row = self.db.read().one("SELECT * FROM devices WHERE key_id=?", (kid,))
        return None if row is None else Device.from_row(row)

    def hall_devices(self, hall_id: str) -> list[Device]:
        rows = self.db.read().all("SELECT * FROM devices WHERE hall_id=? ORDER BY enrolled_at", (hall_id,))
        return [Device.from_row(r) for r in rows]

    def hall_codes(self, hall_id: str) -> list[str]:
        rows = self.db.read().all("SELECT archival_code FROM records WHERE hall_id=?", (hall_id,))
        return [str(r["archival_code"]) for r in rows]

    def revoke_hall(self, hall_id: str, now: float) -> list[str]:
        """Revoke every active key of the hall; returns their key ids."""
        with self.db.tx() as tx:
            rows = tx.all("SELECT key_id FROM devices WHERE hall_id=? AND revoked_at IS NULL", (hall_id,))
            tx.execute(
                "UPDATE devices SET revoked_at=? WHERE hall_id=? AND revoked_at IS NULL", (now, hall_id)
            )
        return [r["key_id"] for r in rows]

    def revoke_key(self, kid: str, now: float) -> None:
        with self.db.tx() as tx:
            tx.execute("UPDATE devices SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (now, kid))

    def halls_known(self) -> set[str]:
        return {r["hall_id"] for r in self.db.read().all("SELECT DISTINCT hall_id FROM devices")}

    # --- request freshness ----------------------------------------------------------------
    def use_nonce(self, kid: str, nonce: str, now: float, expires_at: float) -> None:
        """Remember the nonce (and forget expired ones) in one transaction; :class:`Replay` if it
        was seen. The device's ``last_contact`` is updated with it, unless it was revoked meanwhile."""
        try:
            with self.db.tx() as tx:
                tx.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
                tx.execute(
                    "INSERT INTO nonces(key_id, nonce, expires_at) VALUES (?, ?, ?)", (kid, nonce, expires_at)
                )
                if (
                    tx.execute(
                        "UPDATE devices SET last_contact=? WHERE key_id=? AND revoked_at IS NULL", (now, kid)
                    )
                    == 0
                ):
                    raise DeviceRevoked("this device key has been revoked: the box must be enrolled again")
        except CatalogConflict:
            raise Replay(
                "this request nonce was already used (a replayed or repeated request): sign the request again"
            ) from None

    # --- packages -------------------------------------------------------------------------
    def stored_receipt(self, idempotency_key: str) -> dict[str, Any] | None:
        row = self.db.read().one("SELECT receipt FROM packages WHERE idempotency_key=?", (idempotency_key,))
        return None if row is None else dict(json.loads(row["receipt"]))

    def archival_code_holder(self, archival_code: str) -> tuple[str, str] | None:
        row = self.db.read().one(
            "SELECT hall_id, record_id FROM records WHERE archival_code=?", (archival_code,)
        )
        return None if row is None else (row["hall_id"], row["record_id"])

    def store_accepted(self, p: AcceptedPackage) -> dict[str, Any]:
        """Store the package and return the receipt that counts: ``p.receipt``, or the receipt
        stored earlier for the same idempotency key. :class:`ArchivalCodeTaken` if another record
        got the 档号 first."""
        try:
            with self.db.tx() as tx:
                stored = tx.one("SELECT receipt FROM packages WHERE idempotency_key=?", (p.idempotency_key,))
                if stored is not None:
                    return dict(json.loads(stored["receipt"]))
                self._check_code(tx, p)
                self._insert(tx, p)
        except ArchivalCodeTaken:
            raise
        except CatalogConflict:
            earlier = self.stored_receipt(p.idempotency_key)
            if earlier is not None:
                return earlier
            holder = self.archival_code_holder(p.archival_code)
            if holder is not None and holder != (p.hall_id, p.record_id):
                raise ArchivalCodeTaken(_code_taken(p.archival_code, holder)) from None
            raise
        return p.receipt

    @staticmethod
    def _check_code(tx: Tx, p: AcceptedPackage) -> None:
        row = tx.one("SELECT hall_id, record_id FROM records WHERE archival_code=?", (p.archival_code,))
        if row is not None and (row["hall_id"], row["record_id"]) != (p.hall_id, p.record_id):
            raise ArchivalCodeTaken(_code_taken(p.archival_code, (row["hall_id"], row["record_id"])))

    def _insert(self, tx: Tx, p: AcceptedPackage) -> None:
        checks = json.dumps(p.receipt.get("checks", {}), ensure_ascii=False, sort_keys=True)
        receipt = json.dumps(p.receipt, ensure_ascii=False, sort_keys=True)
        package_id = tx.scalar(
            "INSERT INTO packages(idempotency_key, hall_id, record_id, record_version, archival_code,"
            " package, package_sha256, receipt, checks, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                p.idempotency_key, p.hall_id, p.record_id, p.record_version, p.archival_code, p.package_text,
                p.package_sha256, receipt, checks, p.received_at,
            ),
        )  # fmt: skip
        tx.execute(
            "INSERT INTO records(hall_id, record_id, record_version, package_id, archival_code, confirmed_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hall_id, record_id) DO UPDATE SET"
            " record_version=excluded.record_version, package_id=excluded.package_id,"
            " archival_code=excluded.archival_code, confirmed_at=excluded.confirmed_at,"
            " updated_at=excluded.updated_at WHERE excluded.record_version >= records.record_version",
            (
                p.hall_id,
                p.record_id,
                p.record_version,
                package_id,
                p.archival_code,
                p.confirmed_at,
                p.received_at,
            ),
        )
        latest = tx.scalar(
            "SELECT package_id FROM records WHERE hall_id=? AND record_id=?", (p.hall_id, p.record_id)
        )
        if latest == package_id:
            tx.execute("DELETE FROM search_tokens WHERE hall_id=? AND record_id=?", (p.hall_id, p.record_id))
            for token in sorted(p.tokens):
                tx.execute(
                    "INSERT INTO search_tokens(hall_id, record_id, token) VALUES (?, ?, ?)",
                    (p.hall_id, p.record_id, token),
                )
        if p.checkpoint is not None:
            _store_checkpoint(tx, p.hall_id, p.checkpoint, p.received_at)

    def log_rejection(
        self, hall_id: str, record_id: str, idempotency_key: str, failed: list[dict[str, Any]], now: float
    ) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT INTO rejections(hall_id, record_id, idempotency_key, failed, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    hall_id,
                    record_id,
                    idempotency_key,
                    json.dumps(failed, ensure_ascii=False, sort_keys=True),
                    now,
                ),
            )

    def count(self, table: str) -> int:
        if table not in ("packages", "records", "rejections", "search_tokens", "nonces", "devices"):
            raise ValueError(f"not a countable table: {table}")
        return int(self.db.read().scalar(f"SELECT COUNT(*) AS n FROM {table}"))

    def rejections(self, hall_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM rejections" + (" WHERE hall_id=?" if hall_id else "") + " ORDER BY id"
        rows = self.db.read().all(sql, (hall_id,) if hall_id else ())
        return [{**r, "failed": json.loads(r["failed"])} for r in rows]

    # --- search ---------------------------------------------------------------------------
    def records_with_all(self, tokens: Iterable[str]) -> set[tuple[str, str]]:
        """Records holding every one of ``tokens``."""
        wanted = sorted(set(tokens))
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        rows = self.db.read().all(
            f"SELECT hall_id, record_id FROM search_tokens WHERE token IN ({marks})"
            " GROUP BY hall_id, record_id HAVING COUNT(DISTINCT token) = ?",
            (*wanted, len(wanted)),
        )
        return {(r["hall_id"], r["record_id"]) for r in rows}

    def record_package(self, hall_id: str, record_id: str) -> dict[str, Any] | None:
        """The record's current package row (its text as received) with the record's 档号."""
        return self.db.read().one(
            "SELECT r.hall_id, r.record_id, r.record_version, r.archival_code, p.package"
            " FROM records r JOIN packages p ON p.id = r.package_id WHERE r.hall_id=? AND r.record_id=?",
            (hall_id, record_id),
        )

    # --- status ---------------------------------------------------------------------------
    def hall_status(self) -> list[dict[str, Any]]:
        """One row per hall seen in devices, records or rejections (numbers only)."""
        read = self.db.read()
        halls: dict[str, dict[str, Any]] = {}

        def hall(hall_id: str) -> dict[str, Any]:
            return halls.setdefault(
                hall_id,
                {
                    "hall_id": hall_id, "hall_name": None, "records": 0, "packages": 0, "rejections": 0,
                    "last_contact": None, "newest_confirmed_at": None, "active_keys": 0, "revoked_keys": 0,
                    "checkpoint_seq": None, "checkpoint_flag": None,
                },
            )  # fmt: skip

        for r in read.all("SELECT * FROM devices ORDER BY enrolled_at"):
            h = hall(r["hall_id"])
            h["hall_name"] = r["hall_name"]
            h["revoked_keys" if r["revoked_at"] is not None else "active_keys"] += 1
            if r["last_contact"] is not None:
                h["last_contact"] = max(h["last_contact"] or 0.0, float(r["last_contact"]))
        for r in read.all(
            "SELECT hall_id, COUNT(*) AS n, MAX(confirmed_at) AS newest FROM records GROUP BY hall_id"
        ):
            hall(r["hall_id"]).update(records=int(r["n"]), newest_confirmed_at=float(r["newest"]))
        for table in ("packages", "rejections"):
            for r in read.all(f"SELECT hall_id, COUNT(*) AS n FROM {table} GROUP BY hall_id"):
                hall(r["hall_id"])[table] = int(r["n"])
        for r in read.all("SELECT hall_id, seq, flag FROM audit_checkpoints"):
            hall(r["hall_id"]).update(checkpoint_seq=int(r["seq"]), checkpoint_flag=r["flag"])
        return [halls[k] for k in sorted(halls)]

    def checkpoint(self, hall_id: str) -> dict[str, Any] | None:
        return self.db.read().one("SELECT * FROM audit_checkpoints WHERE hall_id=?", (hall_id,))


def _code_taken(code: str, holder: tuple[str, str]) -> str:
    return f"档号 {code} is already held by record {holder[1]} of hall {holder[0]}"


def _store_checkpoint(tx: Tx, hall_id: str, cp: CheckpointIn, now: float) -> None:
    """Keep the highest valid checkpoint per hall; flag a bad signature, a lower seq than the
    stored one, or a different hash for the same seq (truncated or rewritten audit log?)."""
    row = tx.one("SELECT seq, entry_hash FROM audit_checkpoints WHERE hall_id=?", (hall_id,))
    flag = cp.problem
    if flag is None and row is not None:
        if cp.seq < int(row["seq"]):
            flag = f"checkpoint seq {cp.seq} arrived after seq {row['seq']}: audit log truncated or restored?"
        elif cp.seq == int(row["seq"]) and cp.entry_hash != row["entry_hash"]:
            flag = f"checkpoint seq {cp.seq} arrived with a different entry hash: audit log rewritten?"
    if flag is not None:
        if row is None:
            tx.execute(
                "INSERT INTO audit_checkpoints(hall_id, seq, entry_hash, key_id, signature, received_at,"
                " flag, flagged_at) VALUES (?, 0, '', '', '', ?, ?, ?)",
                (hall_id, now, flag, now),
            )
        else:
            tx.execute(
                "UPDATE audit_checkpoints SET flag=?, flagged_at=? WHERE hall_id=?", (flag, now, hall_id)
            )
        return
    if row is None:
        tx.execute(
            "INSERT INTO audit_checkpoints(hall_id, seq, entry_hash, key_id, signature, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (hall_id, cp.seq, cp.entry_hash, cp.key_id, cp.signature, now),
        )
    elif cp.seq > int(row["seq"]):
        tx.execute(
            "UPDATE audit_checkpoints SET seq=?, entry_hash=?, key_id=?, signature=?, received_at=?"
            " WHERE hall_id=?",
            (cp.seq, cp.entry_hash, cp.key_id, cp.signature, now, hall_id),
        )
