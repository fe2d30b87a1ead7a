"""``hall provision replace``: a new box takes a dead box's place.

From the technician: the dead box's answer file (its hall id, replica target, archive and object
store — the same as for ``hall provision init``) with a *new* one-time enrollment token, and k
sheets of the recovery kit. Then, in this order:

1. the hall keys and the index key from the sheets (``keys/``, 0400);
2. a new device identity, enrolled with the archive under the token: the archive revokes the dead
   box's key and names it (``previous_device_keys``), so audit checkpoints it signed still verify
   here while the key itself can sign nothing any more; the archive's keys are checked against
   ``archive_key_ids`` and pinned;
3. ``hall replica rebuild`` (:mod:`sync.rebuild`): the catalog from the replica, every blob from
   the object store, every record opened, lost scans quarantined with their names;
4. numbering: the archive's highest 件号 per 档号 sequence of this hall — a record the dead box
   confirmed and sent after its last replicated transaction is at the archive, so the new box
   continues after it instead of giving its number again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appliance.catalog import transaction
from appliance.fsutil import atomic_write
from appliance.keys import FileKeySource
from appliance.settings import Settings
from provisioning.provision_init import ProvisionError, plan
from provisioning.recovery_kit import combine_shares, write_keys


def _resume_numbering(settings: Settings, device: Any, actor: str) -> dict[str, tuple[int, int]]:
    """Raise each local 档号 sequence to the archive's highest item; returns what moved."""
    from appliance.context import open_context
    from sync.transfer import archive_client

    client = archive_client(settings)
    try:
        answer = client.signed_call(device, "/api/v1/numbering")
    finally:
        client.close()
    sequences = {str(k): int(v) for k, v in (answer.get("sequences") or {}).items()}
    moved: dict[str, tuple[int, int]] = {}
    app = open_context(settings)
    try:
        with transaction(app.conn):
            for prefix, archive_item in sorted(sequences.items()):
                row = app.conn.execute(
                    "SELECT last_item FROM code_sequences WHERE prefix=?", (prefix,)
                ).fetchone()
                local = int(row[0]) if row else 0
                if archive_item > local:
                    app.conn.execute(
                        "INSERT INTO code_sequences(prefix, last_item) VALUES (?, ?)"
                        " ON CONFLICT(prefix) DO UPDATE SET last_item=excluded.last_item",
                        (prefix, archive_item),
                    )
                    moved[prefix] = (local, archive_item)
            detail = {"from_archive": sequences, "moved": {k: list(v) for k, v in moved.items()}}
            app.audit.record(app.conn, actor, "numbering.resume", settings.hall_id, detail)
    finally:
        app.close()
    return moved


def replace(
    data_dir: Path, answers: dict[str, Any], shares: Iterable[str], *, actor: str, timeout_s: float = 300.0
) -> dict[str, Any]:
    from sync import enrollment, protocol
    from sync.rebuild import rebuild

    p = plan(data_dir, answers)
    s = p.settings
    if s.catalog_path.exists():
        raise ProvisionError(f"{data_dir} already has a catalog: replace a dead box only on a new, empty box")
    if s.transfer.archive_url == "local" or p.token is None:
        raise ProvisionError(
            "replacing a box needs the central archive (its object store holds the pages) and a new "
            "enrollment token in [provision] enrollment_token"
        )
    s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = FileKeySource(s.keys_dir)
    restored = write_keys(combine_shares(shares, hall_id=s.hall_id), s.keys_dir)
    if keys.device_path.exists():
        raise ProvisionError(f"{keys.device_path} exists: a replacement box makes its own new device key")
    keys.create_missing(None)  # only the device identity is missing now
    answer = enrollment.request_enrollment(s, s.transfer.archive_url, p.token)
    encryption, signing = enrollment.answer_keys(answer)
    got = {protocol.key_id(encryption), protocol.key_id(signing)}
    if p.archive_key_ids and got != set(p.archive_key_ids):
        raise ProvisionError(
            f"the archive answered keys {sorted(got)}, not the expected {sorted(p.archive_key_ids)}: stop"
        )
    keys.pin_archive(encryption, signing)
    atomic_write(s.config_path, s.to_toml().encode("utf-8"), mode=0o640)
    report = rebuild(s, s.keys_dir, timeout_s=timeout_s)
    enrolled = enrollment.apply_enrollment(s, answer, archive_url=s.transfer.archive_url, actor=actor)
    moved = _resume_numbering(s, keys.device_key(), actor)
    out = report.to_dict()
    out["device_key"] = "new"
    out["keys_restored"] = restored
    out["enrolled"] = enrolled.as_dict()
    out["revoked_device_keys"] = sorted(enrollment.previous_device_keys(answer))
    out["numbering_moved"] = {k: list(v) for k, v in moved.items()}
    return out
