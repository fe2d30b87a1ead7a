"""``hall provision init``: turn a blank box into one hall's appliance, from an answer file (or
the technician's answers at the prompt).

The answer file is a partial ``hall.toml`` (``hall_id``, ``hall_name``, ``[[drop_folders]]``,
``[archival]``, ``[replication]``, ``[transfer]``, ``[api]`` …) plus a ``[provision]`` section for
what is not a setting::

    [provision]
    enrollment_token = "…"          # one-time, from the archive (hall archive enroll-token)
    archive_key_ids = ["…", "…"]    # optional: the archive's key ids as printed by the archive;
                                    # enrollment is refused if the archive answers other keys
    tls_names = ["hall-box.lan", "10.20.1.5"]   # names/addresses of the staff UI certificate

Steps, each skipped when already done (re-running is safe and :func:`plan` says what would change):
settings merged over the existing ``hall.toml`` and validated; the data dir, keys (hall key, index
key, device identity) and catalog (``hall init``); the TLS certificate; enrollment with the
archive (the archive's keys pinned). One ``device.provision`` audit entry lists what changed.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.catalog import transaction
from appliance.errors import ConfigError, HallError
from appliance.fsutil import atomic_write
from appliance.keys import FileKeySource
from appliance.settings import CONFIG_FILE, Settings
from provisioning import tls

PROVISION_KEYS = {"enrollment_token", "archive_key_ids", "tls_names"}


class ProvisionError(HallError):
    """Provisioning cannot go on (the message says what to fix)."""

    code = "provision"


@dataclass
class Plan:
    settings: Settings
    setting_changes: list[str] = field(default_factory=list)
    make_catalog: bool = False
    make_tls: tuple[str, ...] = ()
    enroll: bool = False
    token: str | None = None
    archive_key_ids: tuple[str, ...] = ()

    @property
    def steps(self) -> list[str]:
        out = [f"set {c}" for c in self.setting_changes]
        if self.make_catalog:
            out.append("create the keys (hall key, index key, device identity) and the catalog")
        if self.make_tls:
            out.append(f"make the staff UI's TLS certificate for {', '.join(self.make_tls)}")
        if self.enroll:
            out.append(f"enroll with the archive at {self.settings.transfer.archive_url}")
        return out


def read_answers(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read the answer file {path}: {e}") from None


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _enrolled_with(settings: Settings) -> bool:
    """The box is enrolled with the archive its settings name (keys pinned, catalog knows it)."""
    from appliance.catalog import connect

    keys = FileKeySource(settings.keys_dir)
    if not (keys.archive_path.exists() and keys.archive_signing_path.exists()):
        return False
    if not settings.catalog_path.exists():
        return False
    current = Settings.load(settings.data_dir)
    if current.transfer.archive_url != settings.transfer.archive_url:
        return False
    conn = connect(settings.catalog_path, settings.store)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='archive_id'").fetchone()
    finally:
        conn.close()
    return row is not None


def plan(data_dir: Path, answers: dict[str, Any]) -> Plan:
    answers = copy.deepcopy(answers)
    prov = answers.pop("provision", {}) or {}
    unknown = set(prov) - PROVISION_KEYS
    if unknown:
        raise ProvisionError(f"unknown [provision] keys {sorted(unknown)}; known: {sorted(PROVISION_KEYS)}")
    cfg = data_dir / CONFIG_FILE
    current_raw = tomllib.loads(cfg.read_text(encoding="utf-8")) if cfg.exists() else {}
    tls_names = tuple(str(n) for n in prov.get("tls_names", ()))
    desired_raw = _merge(current_raw, answers)
    if tls_names:
        desired_raw.setdefault("api", {})
        desired_raw["api"].setdefault("tls_cert", "tls/ui.crt")
        desired_raw["api"].setdefault("tls_key", "tls/ui.key")
    try:
        desired = Settings.model_validate({**desired_raw, "data_dir": data_dir.expanduser().resolve()})
    except ValidationError as e:
        raise ConfigError(f"the answers do not make valid settings:\n{e}") from None
    now_flat = _flat(
        Settings.model_validate({**current_raw, "data_dir": desired.data_dir}).model_dump(mode="json")
    )
    want_flat = _flat(desired.model_dump(mode="json"))
    changes = [
        f"{k} = {want_flat[k]!r} (was {now_flat.get(k)!r})"
        for k in sorted(want_flat)
        if k != "data_dir" and want_flat[k] != now_flat.get(k)
    ]
    if desired.catalog_path.exists() and current_raw.get("hall_id", "hall-dev") != desired.hall_id:
        raise ProvisionError(
            f"this box is already {current_raw.get('hall_id', 'hall-dev')!r} with records: a hall id cannot "
            "change; wipe the box first (hall provision wipe) or keep the id"
        )
    p = Plan(desired, changes, make_catalog=not desired.catalog_path.exists())
    cert = desired.tls_cert_path
    if tls_names and (cert is None or tls.cert_names(cert) != tls_names):
        p.make_tls = tls_names
    token = prov.get("enrollment_token")
    p.token = str(token) if token else None
    p.archive_key_ids = tuple(str(k) for k in prov.get("archive_key_ids", ()))
    if desired.transfer.archive_url != "local" and not _enrolled_with(desired):
        if p.token is None:
            raise ProvisionError(
                f"the box is not enrolled with {desired.transfer.archive_url}: put the one-time token from "
                "the archive (hall archive enroll-token) in [provision] enrollment_token"
            )
        p.enroll = True
    return p


def apply(p: Plan, *, actor: str) -> dict[str, Any]:
    """Carry the plan out; returns what was done (and the TLS fingerprint to write down)."""
    from appliance.context import initialise, open_context
    from sync import enrollment, protocol

    s = p.settings
    s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = s
    if p.enroll:  # the archive URL goes into hall.toml only once the enrollment succeeded
        before = Settings.load(s.data_dir).transfer.archive_url if s.config_path.exists() else "local"
        raw = s.model_dump()
        raw["transfer"] = {**raw["transfer"], "archive_url": before}
        written = Settings.model_validate(raw)
    atomic_write(s.config_path, written.to_toml().encode("utf-8"), mode=0o640)
    answer = None
    if p.enroll:
        # Every data key is sealed to the archive's key from the first one on (the audit key):
        # the device identity first, then the enrollment, the pins, and only then the catalog.
        assert p.token is not None
        keys = FileKeySource(s.keys_dir)
        keys.create_missing(None)
        answer = enrollment.request_enrollment(s, s.transfer.archive_url, p.token)
        encryption, signing = enrollment.answer_keys(answer)
        got = {protocol.key_id(encryption), protocol.key_id(signing)}
        if p.archive_key_ids and got != set(p.archive_key_ids):
            raise ProvisionError(
                f"the archive at {s.transfer.archive_url} answered keys {sorted(got)}, not the expected "
                f"{sorted(p.archive_key_ids)}: do not use this box until the archive's keys are confirmed"
            )
        keys.pin_archive(encryption, signing)
    created = initialise(s)
    done: dict[str, Any] = {"steps": p.steps, "keys_created": created}
    if p.make_tls:
        files = tls.make_certificate(s.data_dir / "tls", s.hall_id, s.hall_name, p.make_tls)
        done["tls_fingerprint"] = files.fingerprint
    elif s.tls_cert_path is not None and s.tls_cert_path.exists():
        done["tls_fingerprint"] = tls.fingerprint(s.tls_cert_path)
    if answer is not None:
        result = enrollment.apply_enrollment(s, answer, archive_url=s.transfer.archive_url, actor=actor)
        done["enrolled"] = result.as_dict()
        atomic_write(s.config_path, s.to_toml().encode("utf-8"), mode=0o640)  # now with the archive URL
    app = open_context(s)
    try:
        with transaction(app.conn):
            detail = {"changes": p.setting_changes, "tls": list(p.make_tls), "enrolled": p.enroll}
            app.audit.record(app.conn, actor, "device.provision", s.hall_id, detail)
    finally:
        app.close()
    return done
