"""The appliance's face of the audit chain (:mod:`appliance.audit`): appends an entry inside the
caller's transaction, seals personal details (a search query, an edited value) under the audit
data key so they never sit in plaintext, and signs a checkpoint every ``checkpoint_every``
entries with the device key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance import audit
from appliance.keyring import AUDIT_DEK, KeyRing


class Auditor:
    def __init__(
        self, keyring: KeyRing, *, checkpoint_every: int = 100, checkpoint_age_s: float = 3600
    ) -> None:
        self.keyring = keyring
        self.checkpoint_every = checkpoint_every
        self.checkpoint_age_s = checkpoint_age_s
        self._signer: Ed25519PrivateKey | None = None

    @property
    def signer(self) -> Ed25519PrivateKey:
        if self._signer is None:
            self._signer = self.keyring.keys.device_key()
        return self._signer

    def record(
        self,
        conn: sqlite3.Connection,
        actor: str,
        action: str,
        target: str | None,
        detail: Mapping[str, Any] | None = None,
        *,
        sensitive: Mapping[str, Any] | None = None,
    ) -> audit.AuditEntry:
        """Append one entry (inside the caller's transaction). ``detail`` is plaintext and must
        be operational; ``sensitive`` is encrypted and only readable with the hall key."""
        sealed = None
        if sensitive is not None:
            payload = json.dumps(dict(sensitive), ensure_ascii=False, sort_keys=True).encode()
            sealed = self.keyring.encrypt(conn, AUDIT_DEK, "audit", "audit/detail", payload)
        entry = audit.append(conn, actor=actor, action=action, target=target, detail=detail, sealed=sealed)
        audit.maybe_checkpoint(
            conn,
            self.signer,
            appliance_id=self.keyring.appliance,
            every=self.checkpoint_every,
            max_age_s=self.checkpoint_age_s,
        )
        return entry

    def unseal(self, conn: sqlite3.Connection, entry: audit.AuditEntry) -> dict[str, Any] | None:
        if entry.sealed is None:
            return None
        data = self.keyring.decrypt(conn, AUDIT_DEK, "audit", "audit/detail", entry.sealed)
        out: dict[str, Any] = json.loads(data)
        return out
