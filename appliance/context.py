"""Opens a data directory and builds the objects every command needs from one Settings object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.blobstore import FileBlobStore
from appliance.catalog import connect, migrate
from appliance.errors import DataDirError
from appliance.jobqueue import JobQueue
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
    def conn(self):  # type: ignore[no-untyped-def]
        return self.queue.conn

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


def initialise(settings: Settings) -> None:
    """Create the data directory layout and the catalog (idempotent)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    for d in data_dirs(settings):
        d.mkdir(parents=True, exist_ok=True)
    conn = connect(settings.catalog_path, settings.store)
    try:
        migrate(conn)
    finally:
        conn.close()


def open_context(settings: Settings, *, handed_over: bool = False) -> Context:
    if not settings.catalog_path.exists():
        raise DataDirError(
            f"{settings.data_dir} is not an initialised data dir (no {settings.catalog_path.name}); "
            f"run: hall --data-dir {settings.data_dir} init"
        )
    for d in data_dirs(settings):
        d.mkdir(parents=True, exist_ok=True)
    conn = connect(settings.catalog_path, settings.store, handed_over=handed_over)
    migrate(conn)
    queue = JobQueue(conn)
    store = RecordStore(conn, FileBlobStore(settings.blob_dir), settings.quarantine_dir)
    spool = Spool(settings.spool_dir, settings.quarantine_dir, queue, store)
    return Context(settings, queue, store, spool)
