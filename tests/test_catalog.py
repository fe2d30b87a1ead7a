from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.catalog import SCHEMA_VERSION, connect, migrate
from appliance.errors import DataDirError
from appliance.settings import StoreSettings


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def test_fresh_catalog_has_current_schema_and_durability_pragmas(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db", StoreSettings())
    migrate(conn)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert "ocr_ct" in _columns(conn, "pages") and "text" not in _columns(conn, "pages")


def test_plaintext_development_catalog_is_refused_with_advice(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db", StoreSettings())
    migrate(conn)
    conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    with pytest.raises(DataDirError, match=r"development build .* unencrypted"):
        migrate(conn)


def test_newer_catalog_is_refused_with_advice(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db", StoreSettings())
    migrate(conn)
    conn.execute("UPDATE meta SET value='99'")
    with pytest.raises(DataDirError, match="newer"):
        migrate(conn)
