"""What the counter API does for each role (behaviour; who may call what is test_api_authz):
records and metadata, search and retrieval success on the dashboard, quarantine decisions,
intake previews, device configuration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance import audit
from appliance.api import create_app
from appliance.context import open_context
from appliance.preview import make_preview
from appliance.samples.records import SyntheticRecord
from appliance.settings import Settings
from tests.api_client import Staff, add_staff, login, seed_records, settings_for
from tests.badfiles import encoded


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, Staff], list[SyntheticRecord]]]:
    settings = settings_for(tmp_path)
    add_staff(settings)
    recs = seed_records(settings, 3)
    clients = {
        r: TestClient(create_app(settings), base_url="https://testserver")
        for r in ("clerk", "supervisor", "technician")
    }
    staff = {role: login(c, f"{role}1") for role, c in clients.items()}
    yield settings, staff, recs
    for c in clients.values():
        c.close()


def test_clerk_edits_with_validation_and_confirms(
    world: tuple[Settings, dict[str, Staff], list[SyntheticRecord]],
) -> None:
    settings, staff, recs = world
    clerk, r = staff["clerk"], recs[0]
    rec = clerk.client.get(f"/api/v1/records/{r.record_id}").json()
    assert rec["suggestions"]["applicant"]["value"] == r.content.person.name
    assert rec["metadata"]["fonds"] == settings.archival.fonds, (
        "the hall's defaults are shown before any save"
    )
    bad = clerk.write(
        "PATCH", f"/api/v1/records/{r.record_id}/metadata", json={"fields": {"证件号码": "123"}}
    )
    assert bad.status_code == 422 and bad.json()["detail"]["problems"][0]["field"] == "id_number"  # type: ignore[attr-defined]
    c = r.content
    fields = {
        "title": c.title,
        "date": c.apply_date.isoformat(),
        "matter": c.matter,
        "applicant": c.person.name,
    }
    ok = clerk.write("PATCH", f"/api/v1/records/{r.record_id}/metadata", json={"fields": fields})
    assert ok.status_code == 200, ok.text  # type: ignore[attr-defined]
    done = clerk.write("POST", f"/api/v1/records/{r.record_id}/confirm")
    code = done.json()["archival_code"]  # type: ignore[attr-defined]
    assert code.endswith("-0001")
    again = clerk.write("POST", f"/api/v1/records/{r.record_id}/confirm")
    assert again.status_code == 409  # type: ignore[attr-defined]
    image = clerk.client.get(f"/api/v1/records/{r.record_id}/pages/0/image?kind=thumbnail")
    assert image.status_code == 200 and "no-store" in image.headers["cache-control"]


def test_search_then_open_counts_as_a_retrieval(
    world: tuple[Settings, dict[str, Staff], list[SyntheticRecord]],
) -> None:
    _, staff, recs = world
    clerk, sup = staff["clerk"], staff["supervisor"]
    name = recs[1].content.person.name
    found = clerk.client.get("/api/v1/search", params={"q": name}).json()
    assert recs[1].record_id in [h["record_id"] for h in found["hits"]]
    assert clerk.client.get("/api/v1/search", params={"q": "不存在的内容词组"}).json()["hits"] == []
    clerk.client.get(f"/api/v1/records/{recs[1].record_id}", params={"search_id": found["search_id"]})
    dash = sup.client.get("/api/v1/dashboard").json()
    assert dash["retrieval"] == {"searches": 2, "opened": 1}
    assert sum(d["pages"] for d in dash["pages_per_day"]) == 3


def test_quarantine_retry_and_dismiss(
    world: tuple[Settings, dict[str, Staff], list[SyntheticRecord]],
) -> None:
    settings, staff, _ = world
    sup = staff["supervisor"]
    ctx = open_context(settings)
    try:
        inbox = settings.drop_path(settings.drop_folders[0])
        for name in ("a.jpg", "b.jpg"):
            (inbox / name).write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
            job = ctx.spool.take(inbox / name, counter="1号窗口", root=inbox).job_id
            ctx.store.mark_quarantined(
                job, "truncated", "the file ends early", keep=ctx.store.quarantine_path(job)
            )
            ctx.spool.finish(job, "quarantined")
    finally:
        ctx.close()
    items = sup.client.get("/api/v1/quarantine").json()["items"]
    assert {i["original_name"] for i in items} == {"a.jpg", "b.jpg"} and all(i["kept"] for i in items)
    assert all("path" not in i for i in items), "no server paths in the API"
    first, second = items
    data = sup.client.get(f"/api/v1/quarantine/{first['job_id']}/file")
    assert data.content.startswith(b"\xff\xd8\xff") and "no-store" in data.headers["cache-control"]
    assert (
        sup.write(
            "POST", f"/api/v1/quarantine/{first['job_id']}/decision", json={"action": "retry"}
        ).status_code
        == 204
    )  # type: ignore[attr-defined]
    assert (
        sup.write(
            "POST",
            f"/api/v1/quarantine/{second['job_id']}/decision",
            json={"action": "dismiss", "note": "纸张损坏"},
        ).status_code
        == 204
    )  # type: ignore[attr-defined]
    assert sup.client.get("/api/v1/quarantine").json()["items"] == []
    assert sup.client.get("/api/v1/queue").json()["counts"]["received"] == 1, (
        "the retried file is queued again"
    )
    again = sup.write("POST", f"/api/v1/quarantine/{first['job_id']}/decision", json={"action": "dismiss"})
    assert again.status_code == 409  # type: ignore[attr-defined]


def test_intake_preview_is_served_decrypted_with_its_flags(
    world: tuple[Settings, dict[str, Staff], list[SyntheticRecord]],
) -> None:
    settings, staff, _ = world
    ctx = open_context(settings)
    try:
        inbox = settings.drop_path(settings.drop_folders[0])
        (inbox / "page.png").write_bytes(encoded("PNG"))
        job = ctx.spool.take(inbox / "page.png", counter="1号窗口", root=inbox).job_id
        assert make_preview(ctx, job)
        row = ctx.conn.execute(
            "SELECT detail FROM events WHERE job_id=? AND type='preview'", (job,)
        ).fetchone()
    finally:
        ctx.close()
    detail = json.loads(row[0])
    assert detail["pages"] == 1 and isinstance(detail["flags"], list)
    r = staff["clerk"].client.get(f"/api/v1/jobs/{job}/preview")
    assert (
        r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff" and "no-store" in r.headers["cache-control"]
    )
    assert staff["technician"].client.get(f"/api/v1/jobs/{job}/preview").status_code == 403


def test_technician_configures_the_device(
    world: tuple[Settings, dict[str, Staff], list[SyntheticRecord]],
) -> None:
    settings, staff, _ = world
    tech = staff["technician"]
    r = tech.write(
        "PUT", "/api/v1/device/config", json={"values": {"settle_seconds": 3.5, "hall_name": "二号大厅"}}
    )
    assert r.status_code == 200 and r.json()["restart_required"] is True  # type: ignore[attr-defined]
    reloaded = Settings.load(settings.data_dir)
    assert reloaded.intake.settle_seconds == 3.5 and reloaded.hall_name == "二号大厅"
    assert tech.write("PUT", "/api/v1/device/config", json={"values": {"workers": 0}}).status_code == 422  # type: ignore[attr-defined]
    assert tech.write("PUT", "/api/v1/device/config", json={"values": {"data_dir": "/"}}).status_code == 422  # type: ignore[attr-defined]
    device = tech.client.get("/api/v1/device").json()
    assert all(k["ok"] for k in device["keys"]) and device["drop_folders"][0]["exists"]
    ctx = open_context(reloaded)
    try:
        [entry] = audit.entries(ctx.conn, action="device.configure")
    finally:
        ctx.close()
    assert entry.actor == "user:technician1"
