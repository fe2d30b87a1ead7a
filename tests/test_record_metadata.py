"""Archive metadata on records: OCR suggestions kept apart until a person accepts them, validated
edits (sealed old/new values in the audit chain, events in the processing history), retention
expiry, audited reads, and the audit chain checked from the CLI."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance import audit, record_metadata
from appliance.cli import main
from appliance.context import Context, open_context
from appliance.record_metadata import MetadataRejected, RecordStateError
from appliance.samples.records import SyntheticRecord, add_records
from appliance.settings import Settings


@pytest.fixture
def loaded(fresh_settings: Settings) -> Iterator[tuple[Context, list[SyntheticRecord]]]:
    ctx = open_context(fresh_settings)
    recs = add_records(ctx, 4, seed=11)
    yield ctx, recs
    ctx.close()


def _valid(r: SyntheticRecord) -> dict[str, str]:
    c = r.content
    return {
        "title": c.title,
        "date": c.apply_date.isoformat(),
        "matter": c.matter,
        "applicant": c.person.name,
    }


def test_suggestions_come_from_the_ocr_text_and_are_not_applied(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    rec = ctx.store.get(recs[0].record_id, actor="t")
    p = recs[0].content.person
    assert rec["suggestions"]["id_number"]["value"] == p.id_number
    assert rec["suggestions"]["applicant"]["value"] == p.name
    assert rec["suggestions"]["phone"]["value"] == p.phone
    assert rec["metadata"] == {}, "nothing is applied until a person confirms it"
    assert rec["status"] == "draft"


def test_edit_validates_and_names_each_problem(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    rid = recs[0].record_id
    bad_id = recs[0].content.person.id_number[:-1] + (
        "0" if recs[0].content.person.id_number[-1] != "0" else "1"
    )
    with pytest.raises(MetadataRejected) as e:
        record_metadata.edit(ctx.store, ctx.settings, rid, {"证件号码": bad_id, "保管期限": "D50"}, actor="t")
    assert {p.field for p in e.value.problems} == {"id_number", "retention"}
    assert bad_id not in str(e.value), "messages never repeat personal values"
    with pytest.raises(MetadataRejected, match="classified"):
        record_metadata.edit(ctx.store, ctx.settings, rid, {"密级": "机密"}, actor="t")
    with pytest.raises(RecordStateError):
        record_metadata.edit(ctx.store, ctx.settings, rid, {"档号": "0001-WS·2026-D30-ZWFW-0001"}, actor="t")
    with pytest.raises(ValueError, match="unknown metadata field"):
        record_metadata.edit(ctx.store, ctx.settings, rid, {"colour": "red"}, actor="t")
    assert ctx.store.get(rid, actor="t")["metadata"] == {}, "a rejected edit changes nothing"


def test_edit_is_stored_encrypted_versioned_and_audited(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    rid, person = recs[1].record_id, recs[1].content.person
    meta = record_metadata.edit(
        ctx.store, ctx.settings, rid, {"申请人": person.name, "联系电话": person.phone}, actor="user:a"
    )
    assert meta["applicant"] == person.name and meta["fonds"] == ctx.settings.archival.fonds
    record_metadata.edit(ctx.store, ctx.settings, rid, {"applicant": "张三"}, actor="user:b")
    row = ctx.conn.execute("SELECT meta_ct, meta_version FROM records WHERE id=?", (rid,)).fetchone()
    assert row["meta_version"] == 2 and "张三".encode() not in row["meta_ct"]
    edits = audit.entries(ctx.conn, action="metadata.edit", target=rid)
    assert [e.actor for e in edits] == ["user:a", "user:b"]
    assert edits[1].detail == {"fields": ["applicant"], "version": 2}
    assert ctx.audit.unseal(ctx.conn, edits[1]) == {"applicant": [person.name, "张三"]}
    events = [e for e in ctx.store.get(rid, actor="t")["events"] if e["type"] == "metadata modification"]
    assert [e["agent"] for e in events] == ["user:a", "user:b"]


def test_confirm_requires_complete_metadata_and_assigns_the_archival_code(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    rid = recs[2].record_id
    with pytest.raises(MetadataRejected) as e:
        record_metadata.confirm(ctx.store, ctx.settings, rid, actor="t")
    assert {"title", "date", "matter", "applicant"} <= {p.field for p in e.value.problems}
    record_metadata.edit(ctx.store, ctx.settings, rid, _valid(recs[2]), actor="t")
    code = record_metadata.confirm(ctx.store, ctx.settings, rid, actor="user:clerk")
    a = ctx.settings.archival
    year = recs[2].content.apply_date.year
    assert code == f"{a.fonds}-{a.category}·{year}-{a.retention}-{a.department}-0001"
    rec = ctx.store.get(rid, actor="t")
    assert rec["status"] == "confirmed" and rec["metadata"]["archival_code"] == code
    assert rec["confirmed_by"] == "user:clerk"
    assert next(e for e in rec["events"] if e["type"] == "archival code assignment")["detail"] == {
        "archival_code": code
    }


def test_retention_report_lists_expired_records_only(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    for r, retention in zip(recs[:3], ("D10", "D30", "Y"), strict=True):
        record_metadata.edit(
            ctx.store, ctx.settings, r.record_id, {**_valid(r), "retention": retention}, actor="t"
        )
        record_metadata.confirm(ctx.store, ctx.settings, r.record_id, actor="t")
    year = recs[0].content.apply_date.year
    assert (
        record_metadata.retention_report(ctx.store, ctx.settings, actor="t", today=dt.date(year + 10, 12, 31))
        == []
    )
    report = record_metadata.retention_report(
        ctx.store, ctx.settings, actor="t", today=dt.date(year + 11, 1, 1)
    )
    assert [i["record_id"] for i in report] == [recs[0].record_id]
    assert report[0]["expired_on"] == f"{year + 11}-01-01"
    out = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(ctx.settings.data_dir),
            "retention",
            "report",
            "--json",
            "--as-of",
            f"{recs[1].content.apply_date.year + 31}-06-01",
        ],
    )
    assert out.exit_code == 0, out.output
    assert {i["record_id"] for i in json.loads(out.stdout)} == {recs[0].record_id, recs[1].record_id}


def test_every_read_of_content_is_audited_before_it_is_returned(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    rid = recs[3].record_id
    ctx.store.get(rid, actor="user:v")
    ctx.store.page_blob(rid, 0, "cleaned", actor="user:v")
    ctx.store.master(rid, actor="user:v")
    actions = [(e.actor, e.action) for e in audit.entries(ctx.conn, target=rid)]
    assert actions[-3:] == [("user:v", "record.view"), ("user:v", "page.view"), ("user:v", "master.view")]


def test_audit_verify_cli_passes_then_names_the_tampered_entry(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    data = str(ctx.settings.data_dir)
    for r in recs:
        ctx.store.get(r.record_id, actor="user:v")
    ok = CliRunner().invoke(main, ["--data-dir", data, "audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.stdout
    raw = sqlite3.connect(ctx.settings.catalog_path)
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("UPDATE audit_log SET actor='user:someone-else' WHERE seq=5")
    raw.commit()
    raw.close()
    bad = CliRunner().invoke(main, ["--data-dir", data, "audit", "verify", "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert (
        report["ok"] is False and report["breaks"][0]["seq"] == 5 and report["breaks"][0]["kind"] == "altered"
    )


def test_export_writes_the_decrypted_record_named_by_its_archival_code(
    loaded: tuple[Context, list[SyntheticRecord]], tmp_path: Path
) -> None:
    ctx, recs = loaded
    r = recs[0]
    record_metadata.edit(ctx.store, ctx.settings, r.record_id, _valid(r), actor="t")
    code = record_metadata.confirm(ctx.store, ctx.settings, r.record_id, actor="t")
    out = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(ctx.settings.data_dir),
            "record",
            "export",
            r.record_id,
            "--out",
            str(tmp_path / "usb"),
        ],
    )
    assert out.exit_code == 0, out.output
    stem = code.replace("·", "-")
    assert sorted(p.name for p in (tmp_path / "usb").iterdir()) == [
        f"{stem}-0001.jpg",
        f"{stem}.jpg",
        f"{stem}.json",
    ]
    info = json.loads((tmp_path / "usb" / f"{stem}.json").read_text(encoding="utf-8"))
    assert info["metadata"]["applicant"] == r.content.person.name and info["text"] == ["\n".join(r.lines)]
    assert (tmp_path / "usb" / f"{stem}.jpg").read_bytes() == ctx.store.master(r.record_id, actor="t")
    [entry] = audit.entries(ctx.conn, action="record.export", target=r.record_id)
    assert entry.actor.startswith("cli:")
