"""Opens a data directory and builds the objects every command needs from one Settings object."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance.auditor import Auditor
from appliance.blindindex import BlindIndex
from appliance.blobstore import FileBlobStore
from appliance.catalog import connect, migrate, transaction
from appliance.errors import DataDirError
from appliance.jobqueue import JobQueue
from appliance.keyring import KeyRing
from appliance.keys import FileKeySource, KeySource, raw_public
from appliance.records import RecordStore
from appliance.settings import Settings
from appliance.spool import Spool


@dataclass
class Context:
    settings: Settings
    queue: JobQueue
    store: RecordStore
    spool: Spool

    @property
    def conn(self) -> sqlite3.Connection:
        return self.queue.conn

    @property
    def keyring(self) -> KeyRing:
        return self.store.keyring

    @property
    def audit(self) -> Auditor:
        return self.store.audit

    def close(self) -> None:
        self.queue.conn.close()


def data_dirs(settings: Settings) -> list[Path]:
    return [
        settings.spool_dir,
        settings.blob_dir,
        settings.quarantine_dir,
        settings.scratch_dir,
        settings.log_dir,
        *(settings.drop_path(f) for f in settings.drop_folders),
    ]


def _replication_dirs(settings: Settings) -> list[Path]:
    """The runtime folder of Litestream (config, control socket) and the embedded-default file
    replica (made by ``initialise`` only: a file_path on a disk that is not mounted must not be
    created on the system disk by every command)."""
    r = settings.replication
    if not r.enabled:
        return []
    return [settings.run_dir, *([settings.replica_file_path] if r.target == "file" else [])]


def key_source(settings: Settings) -> KeySource:
    return FileKeySource(settings.keys_dir)


def local_archive_key_path(settings: Settings) -> Path:
    return settings.local_archive_dir / "keys" / "archive.x25519"


def make_layout(settings: Settings) -> None:
    """The data dir (0700) and its folders, including Litestream's runtime folder (idempotent)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    for d in data_dirs(settings):
        d.mkdir(parents=True, exist_ok=True)
    for d in _replication_dirs(settings):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)


def initialise(settings: Settings) -> list[str]:
    """Create the data directory layout, the keys that are missing and the catalog (idempotent;
    existing keys are never replaced). Without a pinned archive key, a local archive is made
    under ``local-archive/`` (embedded defaults: the whole flow on one machine, ``sync.local_archive``),
    its public keys are pinned and, with ``[transfer] archive_url = "local"``, the box is enrolled
    with it. Returns the key files created."""
    make_layout(settings)
    keys = FileKeySource(settings.keys_dir)
    if _has_catalog_keys(settings):
        # An existing catalog: new keys would not open its records. Check, never create.
        check_keys(keys, settings)
        return _pin_local_signing_key(settings, keys)
    from sync import local_archive

    archive_public = archive_signing = None
    if not keys.archive_path.exists():
        archive = local_archive.ensure(settings)
        archive_public, archive_signing = archive.encryption, archive.signing
    created = keys.create_missing(archive_public, archive_signing)
    conn = connect(settings.catalog_path, settings.store)
    try:
        migrate(conn)
        keyring = KeyRing(keys, settings.hall_id)
        with transaction(conn):
            if conn.execute("SELECT 1 FROM meta WHERE key='kek_current'").fetchone() is None:
                conn.execute("INSERT INTO meta(key, value) VALUES ('kek_current', ?)", (keys.kek_ids()[-1],))
                conn.execute("INSERT INTO meta(key, value) VALUES ('appliance_id', ?)", (settings.hall_id,))
            keyring.ensure_audit_key(conn)
    finally:
        conn.close()
    if archive_signing is not None and settings.transfer.archive_url == "local":
        local_archive.enroll(settings, actor="system:init", audit=False)  # part of the creation
    return created


def _pin_local_signing_key(settings: Settings, keys: FileKeySource) -> list[str]:
    """A data dir made before transfer existed has the local archive's encryption key pinned but
    not its signing key (receipts): create the rest of the local archive, pin the key and
    enroll the box with it. Nothing happens for a box pinned to another archive."""
    from sync import local_archive

    if keys.archive_signing_path.exists() or not local_archive.exists(settings):
        return []
    archive = local_archive.ensure(settings)
    if raw_public(keys.archive_key()) != raw_public(archive.encryption):
        return []  # pinned to a real archive: `hall enroll` pins its signing key
    created = keys.create_missing(None, archive.signing)
    if settings.transfer.archive_url == "local":
        local_archive.enroll(settings, actor="system:init")
    return created


def _has_catalog_keys(settings: Settings) -> bool:
    if not settings.catalog_path.exists():
        return False
    conn = connect(settings.catalog_path, settings.store)
    try:
        found = (
            conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone()
            and conn.execute("SELECT 1 FROM meta WHERE key='kek_current'").fetchone()
        )
    finally:
        conn.close()
    return bool(found)


def check_keys(keys: KeySource, settings: Settings, *, catalog: Path | None = None) -> None:
    """Load every key the catalog (default: the data dir's) needs (fail fast, naming the file)."""
    conn = connect(catalog or settings.catalog_path, settings.store)
    try:
        kek_id = KeyRing.current_kek_id(conn)
    finally:
        conn.close()
    keys.kek(kek_id)
    keys.index_key()
    keys.device_key()
    keys.archive_key()


def open_context(settings: Settings, *, handed_over: bool = False, keys: KeySource | None = None) -> Context:
    if not settings.catalog_path.exists():
        raise DataDirError(
            f"{settings.data_dir} is not an initialised data dir (no {settings.catalog_path.name}); "
            f"run: hall --data-dir {settings.data_dir} init"
        )
    for d in data_dirs(settings):
        d.mkdir(parents=True, exist_ok=True)
    source = keys or key_source(settings)
    index = BlindIndex(source.index_key())  # before connecting: a key error leaks no connection
    source.device_key()
    conn = connect(settings.catalog_path, settings.store, handed_over=handed_over)
    try:
        migrate(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='appliance_id'").fetchone()
        if row is not None and row[0] != settings.hall_id:
            raise DataDirError(
                f"the catalog belongs to appliance {row[0]!r} but the settings say "
                f"hall_id={settings.hall_id!r}; its records are bound to the original id — restore hall_id "
                "in hall.toml"
            )
        keyring = KeyRing(source, settings.hall_id)
        source.kek(keyring.current_kek_id(conn))
    except BaseException:
        conn.close()
        raise
    auditor = Auditor(keyring, checkpoint_every=settings.keys.checkpoint_every)
    queue = JobQueue(conn, keyring, auditor)
    store = RecordStore(
        conn, FileBlobStore(settings.blob_dir), settings.quarantine_dir, keyring, index, auditor
    )
    spool = Spool(settings.spool_dir, settings.quarantine_dir, queue, store)
    return Context(settings, queue, store, spool)
