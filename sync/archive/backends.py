"""Opening the archive's catalog and object store from its settings."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sync.archive.catalog import Catalog
from sync.archive.db import Database
from sync.archive.settings import ArchiveSettings
from sync.objectstore import FolderObjectStore, ObjectStore, S3ObjectStore


def open_catalog(settings: ArchiveSettings, *, migrate: bool = True) -> Catalog:
    if settings.catalog == "postgresql":
        assert settings.catalog_dsn is not None  # the settings validator guarantees it
        db = Database.postgresql(settings.catalog_dsn)
    else:
        db = Database.sqlite(settings.sqlite_path)
    catalog = Catalog(db)
    if migrate:
        try:
            catalog.migrate()
        except BaseException:
            catalog.close()
            raise
    return catalog


def open_object_store(settings: ArchiveSettings, environ: Mapping[str, str] | None = None) -> ObjectStore:
    if settings.objects == "folder":
        settings.objects_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FolderObjectStore(settings.objects_path)
    env = os.environ if environ is None else environ
    assert settings.s3_endpoint is not None and settings.s3_bucket is not None
    return S3ObjectStore(
        settings.s3_endpoint,
        settings.s3_bucket,
        env.get(settings.s3_access_key_env, ""),
        env.get(settings.s3_secret_key_env, ""),
        region=settings.s3_region,
        prefix=settings.s3_prefix,
    )


def close_object_store(store: ObjectStore) -> None:
    if isinstance(store, S3ObjectStore):
        store.close()
