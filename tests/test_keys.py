"""Key files (appliance.keys.FileKeySource) as the box sees them: created private by `initialise`,
never replaced, checked on load (missing, mode, size, format) with messages that name the file and
say what to do — in the library, in `hall status` (one line, no traceback) and in `hall keys
status`."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from appliance.context import initialise, local_archive_key_path, open_context
from appliance.errors import DecryptionFailed, KeyInvalid, KeyMissing, KeyPermissions
from appliance.keyring import KeyRing
from appliance.keys import FileKeySource, load_archive_private, raw_public
from appliance.samples.records import SyntheticRecord, add_records
from appliance.settings import Settings
from tests.conftest import ROOT

HALL = ROOT / ".venv" / "bin" / "hall"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def rewrite(path: Path, data: bytes) -> None:
    """Replace a read-only key file's bytes, keeping its mode (0400)."""
    original = mode(path)
    os.chmod(path, 0o600)
    path.write_bytes(data)
    os.chmod(path, original)


def key_files(settings: Settings) -> dict[str, bytes]:
    return {
        str(p.relative_to(settings.keys_dir)): p.read_bytes()
        for p in sorted(settings.keys_dir.rglob("*"))
        if p.is_file()
    }


def audit_count(settings: Settings) -> int:
    ctx = open_context(settings)
    try:
        return int(ctx.conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
    finally:
        ctx.close()


def plaintexts(rec: SyntheticRecord) -> list[str]:
    p = rec.content.person
    return [p.name, p.id_number, p.phone, p.address]


def hall(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `hall` entry point, as an operator runs it (no HALL_* overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALL_")}
    return subprocess.run(
        [str(HALL), "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def keys(fresh_settings: Settings) -> FileKeySource:
    return FileKeySource(fresh_settings.keys_dir)


@pytest.fixture
def stored(fresh_settings: Settings) -> SyntheticRecord:
    """One record written through the real store path; the context that wrote it is closed (so no
    data key stays cached in memory)."""
    ctx = open_context(fresh_settings)
    try:
        (rec,) = add_records(ctx, 1, seed=7)
        return rec
    finally:
        ctx.close()


# --- initialise ------------------------------------------------------------------------------------
def test_initialise_creates_private_key_files(fresh_settings: Settings, keys: FileKeySource) -> None:
    assert keys.dir == fresh_settings.keys_dir
    assert mode(keys.dir) == 0o700
    assert mode(keys.kek_dir) == 0o700
    kek_ids = keys.kek_ids()
    assert len(kek_ids) == 1
    for path in (keys.kek_path(kek_ids[0]), keys.index_path, keys.device_path):
        assert path.is_file() and not path.is_symlink(), path
        assert mode(path) == 0o400, f"{path} has mode {mode(path):04o}"
        assert os.lstat(path).st_uid == os.geteuid()
    assert len(keys.kek(kek_ids[0])) == 32
    assert len(keys.index_key()) == 32
    keys.device_key()  # a PKCS#8 PEM Ed25519 private key
    # The pinned archive public key: the public half of the local archive pair (embedded
    # defaults), which nobody may overwrite.
    assert keys.archive_path.is_file()
    assert mode(keys.archive_path) & 0o222 == 0
    archive_private = load_archive_private(local_archive_key_path(fresh_settings))
    assert keys.archive_path.read_bytes() == raw_public(archive_private.public_key())
    ctx = open_context(fresh_settings)
    try:
        assert KeyRing.current_kek_id(ctx.conn) == kek_ids[0]
    finally:
        ctx.close()


def test_initialise_again_changes_nothing(fresh_settings: Settings, keys: FileKeySource) -> None:
    before = key_files(fresh_settings)
    assert set(before) >= {"index.key", "device.ed25519", "archive.x25519.pub"}
    modes = {name: mode(fresh_settings.keys_dir / name) for name in before}
    archive_before = local_archive_key_path(fresh_settings).read_bytes()
    (kek_before,) = keys.kek_ids()

    assert initialise(fresh_settings) == [], "nothing is created the second time"

    assert key_files(fresh_settings) == before, "same key files, same bytes"
    assert {name: mode(fresh_settings.keys_dir / name) for name in before} == modes
    assert local_archive_key_path(fresh_settings).read_bytes() == archive_before
    assert keys.kek_ids() == [kek_before]
    ctx = open_context(fresh_settings)
    try:
        assert KeyRing.current_kek_id(ctx.conn) == kek_before
    finally:
        ctx.close()


# --- problems with key files, through open_context and the first use -----------------------------
def test_missing_index_key_names_the_full_path(fresh_settings: Settings, keys: FileKeySource) -> None:
    keys.index_path.unlink()
    with pytest.raises(KeyMissing) as info:
        open_context(fresh_settings)
    assert keys.index_path.is_absolute()
    assert str(keys.index_path) in str(info.value)
    assert info.value.code == "key_missing"


def test_index_key_readable_by_others_says_how_to_fix_it(
    fresh_settings: Settings, keys: FileKeySource
) -> None:
    os.chmod(keys.index_path, 0o644)
    with pytest.raises(KeyPermissions) as info:
        open_context(fresh_settings)
    assert f"chmod 0400 {keys.index_path}" in str(info.value)
    assert "0644" in str(info.value)
    os.chmod(keys.index_path, 0o400)  # doing what the message says fixes it
    open_context(fresh_settings).close()


def test_index_key_of_31_bytes_is_invalid(fresh_settings: Settings, keys: FileKeySource) -> None:
    rewrite(keys.index_path, os.urandom(31))
    with pytest.raises(KeyInvalid) as info:
        open_context(fresh_settings)
    assert str(keys.index_path) in str(info.value)
    assert "31 bytes" in str(info.value)


def test_device_key_that_is_not_pem_is_invalid(
    fresh_settings: Settings, keys: FileKeySource, stored: SyntheticRecord
) -> None:
    """Every key the catalog needs is checked when it is opened: a broken device key stops the
    service at start (naming the file), not at the first audited read."""
    entries = audit_count(fresh_settings)
    rewrite(keys.device_path, b"this is not a PEM private key\n")
    with pytest.raises(KeyInvalid) as info:
        keys.device_key()
    assert str(keys.device_path) in str(info.value) and "PEM" in str(info.value)
    with pytest.raises(KeyInvalid) as info:
        open_context(fresh_settings)
    assert str(keys.device_path) in str(info.value)
    with closing(sqlite3.connect(fresh_settings.catalog_path)) as raw:
        assert raw.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == entries


def test_missing_hall_key_names_its_path(
    fresh_settings: Settings, keys: FileKeySource, stored: SyntheticRecord
) -> None:
    (kek_id,) = keys.kek_ids()
    path = keys.kek_path(kek_id)
    path.unlink()
    with pytest.raises(KeyMissing) as info:
        open_context(fresh_settings)
    assert str(path) in str(info.value)
    with pytest.raises(KeyMissing):  # `hall init` on an existing catalog never makes a new key
        initialise(fresh_settings)
    assert not path.exists() and keys.kek_ids() == []
    for secret in plaintexts(stored):
        assert secret not in str(info.value)


def test_hall_key_readable_by_others_is_refused(
    fresh_settings: Settings, keys: FileKeySource, stored: SyntheticRecord
) -> None:
    (kek_id,) = keys.kek_ids()
    path = keys.kek_path(kek_id)
    os.chmod(path, 0o644)
    with pytest.raises(KeyPermissions) as info:
        open_context(fresh_settings)
    assert f"chmod 0400 {path}" in str(info.value)


def test_wrong_hall_key_says_the_key_file_does_not_belong(
    fresh_settings: Settings, keys: FileKeySource, stored: SyntheticRecord
) -> None:
    (kek_id,) = keys.kek_ids()
    path = keys.kek_path(kek_id)
    rewrite(path, os.urandom(32))
    assert mode(path) == 0o400 and len(path.read_bytes()) == 32

    ctx = open_context(fresh_settings)  # opening does not need the hall key
    try:
        for read in (
            lambda: ctx.store.get(stored.record_id, actor="t"),
            lambda: ctx.store.master(stored.record_id, actor="t"),
            lambda: ctx.store.page_blob(stored.record_id, 0, "cleaned", actor="t"),
        ):
            with pytest.raises(DecryptionFailed) as info:
                read()
            message = str(info.value)
            assert kek_id in message
            assert "does not belong to this catalog" in message
            for secret in plaintexts(stored):
                assert secret not in message
    finally:
        ctx.close()


# --- the CLI ---------------------------------------------------------------------------------------
def test_hall_status_with_missing_index_key_prints_one_line_and_exits_2(
    fresh_settings: Settings, keys: FileKeySource
) -> None:
    keys.index_path.unlink()
    result = hall(fresh_settings.data_dir, "status")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error [key_missing]: ")
    assert str(keys.index_path) in lines[0]
    assert result.stdout == ""


def test_hall_keys_status_json_on_a_fresh_data_dir(fresh_settings: Settings, keys: FileKeySource) -> None:
    result = hall(fresh_settings.data_dir, "keys", "status", "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    items = {i["name"]: i for i in json.loads(result.stdout)}
    (kek_id,) = keys.kek_ids()
    expected = {
        "index key": (keys.index_path, "0400"),
        "device key": (keys.device_path, "0400"),
        "archive public key": (keys.archive_path, "0444"),
        "archive signing key": (keys.archive_signing_path, "0444"),
        f"hall key {kek_id}": (keys.kek_path(kek_id), "0400"),
    }
    assert set(items) == set(expected)
    for name, (path, file_mode) in expected.items():
        item = items[name]
        assert item["path"] == str(path)
        assert item["present"] is True and item["ok"] is True and item["problem"] is None, item
        assert item["mode"] == file_mode


def test_hall_keys_status_json_names_the_problem(fresh_settings: Settings, keys: FileKeySource) -> None:
    os.chmod(keys.index_path, 0o644)
    result = hall(fresh_settings.data_dir, "keys", "status", "--json")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    items = {i["name"]: i for i in json.loads(result.stdout)}
    bad = items.pop("index key")
    assert bad["ok"] is False and bad["present"] is True and bad["mode"] == "0644"
    assert f"chmod 0400 {keys.index_path}" in bad["problem"]
    assert items and all(i["ok"] and i["problem"] is None for i in items.values()), items
