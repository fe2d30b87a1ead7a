"""Crypto-shredding a record (``shredding.shred``, ``hall record shred``): the data key is destroyed,
so content, original name and metadata are gone; the record cannot be found by name, ID number or
address any more; its row and the audit trail of the deletion stay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import audit, record_metadata, record_reader, shredding
from appliance.context import Context
from appliance.errors import RecordShredded, StoreError
from appliance.samples.records import SyntheticRecord, add_records
from appliance.search import reindex, search
from appliance.settings import Settings
from tests.conftest import make_settings
from tests.store_workers import hall, opened, valid_metadata

ACTOR = "t"
REASON = "审批 2026-17"


@pytest.fixture
def loaded(fresh_settings: Settings) -> Iterator[tuple[Context, list[SyntheticRecord]]]:
    """Ten records; the first three with metadata, the first two confirmed."""
    with opened(fresh_settings) as app:
        recs = add_records(app, 10, seed=61, batch=10)
        for i, rec in enumerate(recs[:3]):
            meta = valid_metadata(rec, phone=rec.content.person.phone)
            record_metadata.edit(app.store, app.settings, rec.record_id, meta, actor=ACTOR)
            if i < 2:
                record_metadata.confirm(app.store, app.settings, rec.record_id, actor=ACTOR)
        yield app, recs


def queries(rec: SyntheticRecord) -> dict[str, str]:
    p = rec.content.person
    return {"name": p.name, "id_number": p.id_number, "address": p.address[3:9]}


def found(app: Context, query: str) -> list[str]:
    return [h.record_id for h in search(app.store, query, actor=ACTOR, limit=100)]


def fts_rowids(app: Context, query: str) -> set[int]:
    """Rows of the full-text blind index the query's tokens match (mapped to a record or not)."""
    expr = app.store.index.match_expression(query)
    assert expr, query
    return {r[0] for r in app.conn.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH ?", (expr,))}


def index_rows(app: Context, rid: str) -> tuple[int, int]:
    conn = app.conn
    return (
        conn.execute("SELECT COUNT(*) FROM exact_index WHERE record_id=?", (rid,)).fetchone()[0],
        conn.execute("SELECT COUNT(*) FROM search_docs WHERE record_id=?", (rid,)).fetchone()[0],
    )


def dek_row(app: Context, rid: str) -> dict[str, Any]:
    row = app.conn.execute(
        "SELECT d.* FROM deks d JOIN records r ON r.dek_id = d.id WHERE r.id=?", (rid,)
    ).fetchone()
    return dict(row)


def verify_chain(app: Context) -> None:
    public = app.keyring.keys.device_key().public_key()
    report = audit.verify(app.conn, {audit.key_id(public): public}, appliance_id=app.settings.hall_id)
    assert report.ok, report.breaks


def test_shredded_record_is_unreadable_unfindable_and_its_deletion_audited(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    app, recs = loaded
    gone, kept = recs[0], recs[1]  # both confirmed, with metadata
    rid = gone.record_id
    for rec in (gone, kept):
        for kind, q in queries(rec).items():
            assert rec.record_id in found(app, q), (kind, "found before the shred")
    rowids = {r[0] for r in app.conn.execute("SELECT rowid FROM search_docs WHERE record_id=?", (rid,))}
    assert len(rowids) == 2 and index_rows(app, rid)[0] >= 3  # page + metadata; name, ID, phone, 档号
    code = app.store.get(rid, actor=ACTOR)["metadata"]["archival_code"]
    job_id = app.conn.execute("SELECT job_id FROM records WHERE id=?", (rid,)).fetchone()[0]

    shredding.shred(app.store, rid, actor=ACTOR, reason=REASON)

    for read in (
        lambda: app.store.get(rid, actor=ACTOR),
        lambda: app.store.page_blob(rid, 0, "cleaned", actor=ACTOR),
        lambda: app.store.master(rid, actor=ACTOR),
        lambda: record_reader.store_name(app.store, job_id),
        lambda: app.keyring.dek(app.conn, job_id),
    ):
        with pytest.raises(RecordShredded):
            read()
    dek = dek_row(app, rid)
    assert dek["wrapped"] is None and dek["sealed"] is None and dek["shredded_at"] is not None
    row = app.conn.execute("SELECT * FROM records WHERE id=?", (rid,)).fetchone()
    assert row["status"] == "shredded" and row["shredded_at"] is not None
    assert row["meta_ct"] is None and row["suggest_ct"] is None
    assert {bytes(r[0]) for r in app.conn.execute("SELECT ocr_ct FROM pages WHERE record_id=?", (rid,))} == {
        b""
    }

    assert index_rows(app, rid) == (0, 0)
    for kind, q in queries(gone).items():
        assert rid not in found(app, q), kind
        assert not (fts_rowids(app, q) & rowids), (
            f"the {kind} tokens of the shredded record are still indexed"
        )
    assert rid not in found(app, code)
    for kind, q in queries(kept).items():
        assert kept.record_id in found(app, q), (kind, "other records are still found")

    entries = audit.entries(app.conn, action="record.shred")
    assert [(e.actor, e.target, e.detail) for e in entries] == [(ACTOR, rid, {"pages": 1})]
    assert app.audit.unseal(app.conn, entries[0]) == {"reason": REASON}
    assert REASON not in json.dumps(entries[0].detail, ensure_ascii=False), "the reason is sealed"
    deletion = app.conn.execute("SELECT outcome FROM events WHERE record_id=? AND type='deletion'", (rid,))
    assert [r[0] for r in deletion] == ["success"]
    verify_chain(app)

    with pytest.raises(RecordShredded):
        shredding.shred(app.store, rid, actor=ACTOR, reason=REASON)
    assert len(audit.entries(app.conn, action="record.shred")) == 1

    # a rebuilt index leaves it out too (API and CLI)
    assert reindex(app.store, actor=ACTOR) == len(recs) - 1
    assert index_rows(app, rid) == (0, 0)
    result = hall(app.settings.data_dir, "reindex")
    assert result.returncode == 0 and f"reindexed {len(recs) - 1} records" in result.stdout, result
    assert index_rows(app, rid) == (0, 0)
    for kind, q in queries(gone).items():
        assert rid not in found(app, q), kind
    for kind, q in queries(kept).items():
        assert kept.record_id in found(app, q), kind
    cli = hall(app.settings.data_dir, "search", "--json", gone.content.person.id_number)
    assert cli.returncode == 0 and json.loads(cli.stdout) == [], cli
    verify_chain(app)


def test_a_shred_without_a_reason_is_refused_and_changes_nothing(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    app, recs = loaded
    rid = recs[2].record_id
    before = (dek_row(app, rid), index_rows(app, rid))
    for reason in ("", "   \n"):
        with pytest.raises(StoreError, match="reason"):
            shredding.shred(app.store, rid, actor=ACTOR, reason=reason)
    assert (dek_row(app, rid), index_rows(app, rid)) == before
    assert app.store.get(rid, actor=ACTOR)["status"] == "draft"
    assert audit.entries(app.conn, action="record.shred") == []


@pytest.mark.parametrize("checkpointed", [False, True], ids=["fresh", "checkpointed"])
def test_the_destroyed_key_bytes_are_gone_from_the_catalog_file_and_its_wal(
    tmp_path: Path, checkpointed: bool
) -> None:
    """``secure_delete`` is on. Both copies of the data key (wrapped under the hall key, sealed
    to the archive) must be gone from ``catalog.db`` and ``catalog.db-wal`` once ``shred`` returns,
    while the box keeps running (connection open) — whether the record's row was still only in
    the WAL (fresh) or had been checkpointed into the main file. This is the box without
    replication, where the application owns checkpointing; under Litestream the old page versions
    go at Litestream's next checkpoint (docs/security.md)."""
    fresh_settings = make_settings(tmp_path / "data", replication={"enabled": False})
    with opened(fresh_settings) as app:
        recs = add_records(app, 6, seed=62)
        rid = recs[3].record_id
        dek = dek_row(app, rid)
        wrapped, sealed = bytes(dek["wrapped"]), bytes(dek["sealed"])
        assert len(wrapped) >= 32 and len(sealed) >= 32
        if checkpointed:
            app.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            add_records(app, 2, seed=63)  # the box goes on working: a fresh WAL
        db, wal = fresh_settings.catalog_path, fresh_settings.catalog_path.with_name("catalog.db-wal")
        assert wrapped in db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

        shredding.shred(app.store, rid, actor=ACTOR, reason=REASON)

        for path in (db, wal):
            data = path.read_bytes() if path.exists() else b""
            for copy, what in ((wrapped, "wrapped under the hall key"), (sealed, "sealed to the archive")):
                at = data.find(copy)
                assert at < 0, f"the destroyed data key ({what}) is still in {path.name} at byte {at}"


def test_cli_shred_asks_for_the_record_id_typed_out(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    app, recs = loaded
    data = app.settings.data_dir
    rid, other = recs[4].record_id, recs[5].record_id

    def state(record_id: str) -> tuple[object, ...]:
        row = app.conn.execute("SELECT status FROM records WHERE id=?", (record_id,)).fetchone()
        return (row[0], dek_row(app, record_id)["wrapped"] is not None, index_rows(app, record_id))

    before = state(rid)
    assert before[:2] == ("draft", True)
    for typed in ("", "\n", "wrong\n", f"{rid[:-1]}\n", f"{other}\n"):
        result = hall(data, "record", "shred", rid, "--reason", REASON, stdin=typed)
        assert result.returncode == 1, (typed, result)
        assert state(rid) == before, typed
    assert "not confirmed; nothing was changed" in result.stderr
    assert audit.entries(app.conn, action="record.shred") == []

    result = hall(data, "record", "shred", rid, "--reason", REASON, "--yes")
    assert result.returncode == 0 and f"record {rid} shredded" in result.stdout, result
    assert state(rid) == ("shredded", False, (0, 0))
    result = hall(data, "record", "shred", other, "--reason", REASON, stdin=f"  {other}\n")
    assert result.returncode == 0, result
    assert state(other)[:2] == ("shredded", False)
    again = hall(data, "record", "shred", rid, "--reason", REASON, "--yes")
    assert again.returncode == 2 and "record_shredded" in again.stderr, again
    with opened(app.settings) as fresh:
        targets = [e.target for e in audit.entries(fresh.conn, action="record.shred")]
        assert targets == [rid, other]
        assert all(e.actor.startswith("cli:") for e in audit.entries(fresh.conn, action="record.shred"))
        with pytest.raises(RecordShredded):
            fresh.store.get(rid, actor=ACTOR)
        verify_chain(fresh)
