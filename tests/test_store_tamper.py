"""Tampering with the encrypted store from outside the application — straight in SQLite and on
disk — is caught by authenticated decryption (or the blob content address), never decrypts to
another record's content, and every error stays free of plaintext.

What encryption alone cannot catch is documented where it matters: putting back an older
ciphertext *together with* its older version number (see the rollback test)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance import audit, record_metadata
from appliance.context import Context, open_context
from appliance.errors import BlobCorrupted, DecryptionFailed, HallError
from appliance.samples.records import SyntheticRecord, add_records
from appliance.settings import Settings


@dataclass(frozen=True, repr=False)  # no reprs: they would print the plaintext
class Rec:
    id: str
    job_id: str
    truth: SyntheticRecord


@dataclass(repr=False)
class World:
    ctx: Context
    settings: Settings
    a: Rec
    b: Rec
    c: Rec

    @property
    def secrets(self) -> list[str]:
        """Every record's personal values: none may appear in any error message."""
        out = []
        for rec in (self.a, self.b, self.c):
            p = rec.truth.content.person
            out += [p.name, p.id_number, p.phone, p.address]
        return out


@pytest.fixture
def world(ctx: Context) -> Iterator[World]:
    truths = add_records(ctx, 3, seed=20240607)
    recs = []
    for t in truths:
        job_id = ctx.conn.execute("SELECT job_id FROM records WHERE id=?", (t.record_id,)).fetchone()[0]
        recs.append(Rec(t.record_id, job_id, t))
    a, b, c = recs
    for rec in (a, b):  # metadata with the applicant's name and ID number (version 1)
        p = rec.truth.content.person
        record_metadata.edit(
            ctx.store,
            ctx.settings,
            rec.id,
            {"title": "户口迁移申请", "applicant": p.name, "id_number": p.id_number},
            actor="user:clerk",
        )
    yield World(ctx, ctx.settings, a, b, c)


def tamper(settings: Settings, sql: str, *params: object) -> None:
    """Change the catalog the way someone holding the file would: another connection, no
    foreign-key enforcement, no application code."""
    conn = sqlite3.connect(settings.catalog_path)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def column(w: World, sql: str, *params: object) -> Any:
    row = w.ctx.conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def assert_clean(w: World, exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            for secret in w.secrets:
                assert secret not in text, f"plaintext {secret!r} leaked into the error {text!r}"
        seen = seen.__cause__ or seen.__context__


def fails(w: World, exc_type: type[HallError], read: Callable[[], object]) -> str:
    with pytest.raises(exc_type) as info:
        read()
    assert_clean(w, info.value)
    return str(info.value)


def blob_path(settings: Settings, ref: str) -> Path:
    return settings.blob_dir / ref[:2] / ref[2:4] / ref


def flip_in_file(path: Path, pos: int) -> bytes:
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o400)
    return bytes(data)


def test_untouched_records_read_back(world: World) -> None:
    """The baseline the tamper tests depart from."""
    w = world
    for rec in (w.a, w.b, w.c):
        got = w.ctx.store.get(rec.id, actor="t")
        assert got["pages"][0]["text"] == "\n".join(rec.truth.lines)
        assert got["original_name"] == f"{rec.truth.content.person.name}.jpg"
        w.ctx.store.page_blob(rec.id, 0, "cleaned", actor="t")
    assert w.ctx.store.get(w.b.id, actor="t")["metadata"]["id_number"] == w.b.truth.content.person.id_number


# --- ciphertext moved between rows ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "col", "key", "field"),
    [
        ("pages", "ocr_ct", "record_id", "page/0/ocr"),
        ("records", "meta_ct", "id", "metadata"),
        ("records", "suggest_ct", "id", "suggestions"),
        ("jobs", "name_ct", "id", "job/name"),
    ],
)
def test_ciphertext_copied_from_another_record_fails(
    world: World, table: str, col: str, key: str, field: str
) -> None:
    w = world
    owner_a, owner_b = (w.a.job_id, w.b.job_id) if table == "jobs" else (w.a.id, w.b.id)
    ct_a = column(w, f"SELECT {col} FROM {table} WHERE {key}=?", owner_a)
    tamper(w.settings, f"UPDATE {table} SET {col}=? WHERE {key}=?", ct_a, owner_b)

    message = fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="t"))
    assert f"{field} of {owner_b}" in message
    # A itself is untouched and still reads.
    assert w.ctx.store.get(w.a.id, actor="t")["original_name"] == f"{w.a.truth.content.person.name}.jpg"


def test_ciphertext_moved_between_fields_of_the_same_record_fails(world: World) -> None:
    """Same record, same key, same version: only the field name differs — still refused."""
    w = world
    suggest_ct = column(w, "SELECT suggest_ct FROM records WHERE id=?", w.b.id)
    tamper(w.settings, "UPDATE records SET meta_ct=?, meta_version=1 WHERE id=?", suggest_ct, w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="t"))
    assert f"metadata of {w.b.id}" in message


def test_record_pointed_at_another_records_data_key_fails(world: World) -> None:
    w = world
    tamper(w.settings, "UPDATE records SET dek_id=? WHERE id=?", w.a.job_id, w.b.id)
    fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="t"))
    fails(w, DecryptionFailed, lambda: w.ctx.store.master(w.b.id, actor="t"))


def test_record_pointed_at_another_job_does_not_show_that_jobs_name(world: World) -> None:
    """Swapping ``records.job_id`` of A and B (plaintext references) must not make B show A's
    original file name — which carries A's applicant name. The job name is bound to its job only,
    so the reader has to tie it to the record (e.g. open it with the record's data key)."""
    w = world
    tamper(w.settings, "UPDATE records SET job_id='swap' WHERE id=?", w.a.id)
    tamper(w.settings, "UPDATE records SET job_id=? WHERE id=?", w.a.job_id, w.b.id)
    tamper(w.settings, "UPDATE records SET job_id=? WHERE id=?", w.b.job_id, w.a.id)
    try:
        shown = w.ctx.store.get(w.b.id, actor="t")
    except DecryptionFailed as e:
        assert_clean(w, e)
    else:
        leaked = shown["original_name"] == f"{w.a.truth.content.person.name}.jpg"
        pytest.fail(f"record B was read back with job A's data (shows A's original file name: {leaked})")


# --- blobs moved between pages and records --------------------------------------------------------
def test_blob_reference_of_another_record_fails(world: World) -> None:
    w = world
    ref_a = column(w, "SELECT cleaned_blob FROM pages WHERE record_id=? AND idx=0", w.a.id)
    tamper(w.settings, "UPDATE pages SET cleaned_blob=? WHERE record_id=? AND idx=0", ref_a, w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.page_blob(w.b.id, 0, "cleaned", actor="t"))
    assert f"page/0/cleaned of {w.b.id}" in message
    assert w.ctx.store.page_blob(w.a.id, 0, "cleaned", actor="t")  # A still reads


def test_blob_reference_of_another_kind_in_the_same_record_fails(world: World) -> None:
    w = world
    cleaned = column(w, "SELECT cleaned_blob FROM pages WHERE record_id=? AND idx=0", w.b.id)
    tamper(w.settings, "UPDATE pages SET thumb_blob=? WHERE record_id=? AND idx=0", cleaned, w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.page_blob(w.b.id, 0, "thumbnail", actor="t"))
    assert f"page/0/thumbnail of {w.b.id}" in message
    assert w.ctx.store.page_blob(w.b.id, 0, "cleaned", actor="t")


def test_master_reference_of_another_record_fails(world: World) -> None:
    w = world
    master_a = column(w, "SELECT master_blob FROM records WHERE id=?", w.a.id)
    tamper(w.settings, "UPDATE records SET master_blob=? WHERE id=?", master_a, w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.master(w.b.id, actor="t"))
    assert f"master of {w.b.id}" in message


def test_flipped_byte_in_a_blob_file_breaks_its_content_address(world: World) -> None:
    w = world
    ref = column(w, "SELECT cleaned_blob FROM pages WHERE record_id=? AND idx=0", w.b.id)
    path = blob_path(w.settings, ref)
    flip_in_file(path, path.stat().st_size // 2)
    message = fails(w, BlobCorrupted, lambda: w.ctx.store.page_blob(w.b.id, 0, "cleaned", actor="t"))
    assert ref in message


def test_flipped_byte_in_a_re_addressed_blob_fails_authentication(world: World) -> None:
    """Re-addressing hides the damage from the content hash; AES-GCM still catches it."""
    w = world
    ref = column(w, "SELECT cleaned_blob FROM pages WHERE record_id=? AND idx=0", w.b.id)
    old = blob_path(w.settings, ref)
    data = flip_in_file(old, old.stat().st_size // 2)
    new_ref = hashlib.sha256(data).hexdigest()
    new = blob_path(w.settings, new_ref)
    new.parent.mkdir(parents=True, exist_ok=True)
    old.rename(new)
    tamper(w.settings, "UPDATE pages SET cleaned_blob=? WHERE record_id=? AND idx=0", new_ref, w.b.id)
    assert w.ctx.store.blobs.get(new_ref) == data  # the content address now holds
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.page_blob(w.b.id, 0, "cleaned", actor="t"))
    assert f"page/0/cleaned of {w.b.id}" in message


# --- damaged or rolled-back fields in the database -----------------------------------------------------
def test_flipped_byte_in_meta_ct_fails(world: World) -> None:
    w = world
    ct = bytearray(column(w, "SELECT meta_ct FROM records WHERE id=?", w.b.id))
    ct[len(ct) // 2] ^= 0x01
    tamper(w.settings, "UPDATE records SET meta_ct=? WHERE id=?", bytes(ct), w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="t"))
    assert f"metadata of {w.b.id} (version 1" in message


def test_rolled_back_metadata(world: World) -> None:
    w = world
    meta_v1 = column(w, "SELECT meta_ct FROM records WHERE id=?", w.b.id)
    assert column(w, "SELECT meta_version FROM records WHERE id=?", w.b.id) == 1
    record_metadata.edit(w.ctx.store, w.settings, w.b.id, {"title": "更正后的标题"}, actor="user:clerk")
    assert column(w, "SELECT meta_version FROM records WHERE id=?", w.b.id) == 2
    meta_v2 = column(w, "SELECT meta_ct FROM records WHERE id=?", w.b.id)

    # The v1 ciphertext under the current version number: the version is in the AAD.
    tamper(w.settings, "UPDATE records SET meta_ct=? WHERE id=?", meta_v1, w.b.id)
    message = fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="t"))
    assert f"metadata of {w.b.id} (version 2" in message

    # The v1 ciphertext *with* meta_version=1 is a consistent older state: encryption alone
    # cannot tell it from the truth (the box keeps no authenticated "latest version" of its own).
    # What does catch it is the audit chain, which is append-only and hash-chained: it still
    # records the edit to version 2, so comparing the chain with the record exposes the rollback.
    tamper(w.settings, "UPDATE records SET meta_ct=?, meta_version=1 WHERE id=?", meta_v1, w.b.id)
    rolled_back = w.ctx.store.get(w.b.id, actor="t")
    assert rolled_back["metadata"]["title"] == "户口迁移申请", "the rollback decrypts (documented limit)"
    assert rolled_back["meta_version"] == 1

    edits = audit.entries(w.ctx.conn, action="metadata.edit", target=w.b.id)
    assert [e.detail["version"] for e in edits] == [1, 2]
    assert max(e.detail["version"] for e in edits) > rolled_back["meta_version"], "rollback detectable"
    assert w.ctx.audit.unseal(w.ctx.conn, edits[-1]) == {"title": ["户口迁移申请", "更正后的标题"]}
    for entry in edits:  # the chain holds field names and versions; the values only sealed
        assert_clean(
            w, AssertionError(json.dumps([entry.actor, entry.target, entry.detail], ensure_ascii=False))
        )
    assert bytes(meta_v2) != bytes(meta_v1)


def test_every_tampered_read_leaves_an_audit_entry_but_no_content(world: World) -> None:
    """The read is audited before decryption; a failed decryption returns nothing."""
    w = world
    before = len(audit.entries(w.ctx.conn, action="record.view", target=w.b.id, limit=1000))
    ct_a = column(w, "SELECT ocr_ct FROM pages WHERE record_id=? AND idx=0", w.a.id)
    tamper(w.settings, "UPDATE pages SET ocr_ct=? WHERE record_id=? AND idx=0", ct_a, w.b.id)
    fails(w, DecryptionFailed, lambda: w.ctx.store.get(w.b.id, actor="user:clerk"))
    after = audit.entries(w.ctx.conn, action="record.view", target=w.b.id, limit=1000)
    assert len(after) == before + 1 and after[-1].actor == "user:clerk"


def test_tampering_is_detected_by_a_fresh_context_too(world: World) -> None:
    """No data key cached from the writing context hides anything: a new context fails the same."""
    w = world
    ct_a = column(w, "SELECT meta_ct FROM records WHERE id=?", w.a.id)
    tamper(w.settings, "UPDATE records SET meta_ct=? WHERE id=?", ct_a, w.b.id)
    fresh = open_context(w.settings)
    try:
        with pytest.raises(DecryptionFailed) as info:
            fresh.store.get(w.b.id, actor="t")
        assert_clean(w, info.value)
        assert f"metadata of {w.b.id}" in str(info.value)
    finally:
        fresh.close()
