"""The central receiver's core (``sync/archive/receiver.py``) on real packages from real boxes:
enrollment, request authentication and replay protection, 四性检测 on tampered packages,
idempotent acceptance with signed receipts, revocation, cross-hall search and status."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit import checkpoint_message
from appliance.keys import raw_public
from sync import protocol
from sync.archive import Receiver, public_keys
from sync.archive.errors import EnrollmentRefused
from sync.objectstore import FolderObjectStore, blob_key
from tests.archive_harness import (
    PATH,
    Clock,
    Hall,
    counts,
    failed_items,
    make_hall,
    open_receiver,
    tamper_manifest,
)

NOTHING = {"packages": 0, "records": 0, "rejections": 0, "search_tokens": 0}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hall_a(tmp_path: Path) -> Iterator[Hall]:
    hall = make_hall(tmp_path, "hall-a", records=2, seed=1)
    yield hall
    hall.close()


@pytest.fixture
def archive_dir(hall_a: Hall) -> Path:
    return hall_a.settings.local_archive_dir


@pytest.fixture
def rx(archive_dir: Path, clock: Clock) -> Iterator[Receiver]:
    receiver = open_receiver(archive_dir, clock=clock)
    yield receiver
    receiver.close()


@pytest.fixture
def enrolled(hall_a: Hall, rx: Receiver) -> Hall:
    hall_a.enroll(rx)
    return hall_a


def _checkpoint(
    device: Ed25519PrivateKey, hall_id: str, seq: int, *, sign_as: str | None = None
) -> dict[str, object]:
    entry = hashlib.sha256(f"entry {seq}".encode()).hexdigest()
    signature = device.sign(checkpoint_message(sign_as or hall_id, seq, entry))
    return {"seq": seq, "entry_hash": entry, "key_id": protocol.key_id(device.public_key()),
            "signature": protocol.b64(signature)}  # fmt: skip


# --- enrollment -----------------------------------------------------------------------------
def test_enrollment_answers_the_archive_keys_and_the_token_is_single_use(
    hall_a: Hall, rx: Receiver, archive_dir: Path
) -> None:
    token = rx.issue_enrollment_token("hall-a")
    answer = rx.enroll(token, "hall-a", "甲大厅", hall_a.device_b64)
    enc, sig = public_keys(archive_dir)
    assert answer["archive_id"] == "test-archive" and answer["hall_id"] == "hall-a"
    assert answer["device_key_id"] == protocol.key_id(hall_a.device.public_key())
    assert answer["archive_encryption_key"] == protocol.b64(raw_public(enc))
    assert answer["archive_signing_key"] == protocol.b64(raw_public(sig))
    assert answer["enrolled_at"].endswith("Z")
    with pytest.raises(EnrollmentRefused, match="already used"):
        rx.enroll(token, "hall-a", "甲大厅", hall_a.device_b64)
    stored = rx.catalog.db.read().all("SELECT token_hash FROM enrollment_tokens")
    assert [r["token_hash"] for r in stored] == [hashlib.sha256(token.encode()).hexdigest()]


def test_an_expired_token_or_one_for_another_hall_is_refused(
    hall_a: Hall, rx: Receiver, clock: Clock
) -> None:
    token = rx.issue_enrollment_token("hall-a", ttl_s=60)
    clock.now += 61
    with pytest.raises(EnrollmentRefused, match="expired"):
        rx.enroll(token, "hall-a", "甲大厅", hall_a.device_b64)
    other = rx.issue_enrollment_token("hall-b")
    with pytest.raises(EnrollmentRefused, match="another hall"):
        rx.enroll(other, "hall-a", "甲大厅", hall_a.device_b64)
    assert rx.catalog.device(protocol.key_id(hall_a.device.public_key())) is None


def test_reenrolling_a_hall_revokes_its_previous_key(enrolled: Hall, rx: Receiver) -> None:
    replacement = Ed25519PrivateKey.generate()
    rx.enroll(
        rx.issue_enrollment_token("hall-a"),
        "hall-a",
        "甲大厅",
        protocol.b64(raw_public(replacement.public_key())),
    )
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    reply = enrolled.post(rx, built.body)
    assert (reply.status, reply.body["code"]) == (401, "device_revoked")
    assert counts(rx) == NOTHING


# --- authentication and freshness -----------------------------------------------------------
def test_an_unenrolled_device_gets_401_and_nothing_is_stored(hall_a: Hall, rx: Receiver) -> None:
    built = hall_a.package(0)
    hall_a.ship(rx.store, built)
    reply = hall_a.post(rx, built.body)
    assert (reply.status, reply.body["code"]) == (401, "unknown_device")
    assert counts(rx) == NOTHING and rx.catalog.count("nonces") == 0


def test_a_replayed_request_gets_409_and_stores_nothing_new(enrolled: Hall, rx: Receiver) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    headers = enrolled.headers(built.body)
    first = rx.accept(built.body, headers, "POST", PATH)
    assert first.status == 200
    before = counts(rx)
    again = rx.accept(built.body, headers, "POST", PATH)
    assert (again.status, again.body["code"]) == (409, "replay")
    assert counts(rx) == before


def test_a_stale_or_altered_request_gets_401(enrolled: Hall, rx: Receiver, clock: Clock) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    stale = enrolled.post(rx, built.body, now=clock.now - 301)
    assert (stale.status, stale.body["code"]) == (401, "stale_request")
    headers = enrolled.headers(built.body)
    altered = rx.accept(built.body + b" ", headers, "POST", PATH)
    assert (altered.status, altered.body["code"]) == (401, "signature_invalid")
    wrong_path = rx.accept(built.body, headers, "POST", "/api/v1/revoke-self")
    assert (wrong_path.status, wrong_path.body["code"]) == (401, "signature_invalid")
    assert counts(rx) == NOTHING


def test_expired_nonces_are_forgotten(enrolled: Hall, rx: Receiver, clock: Clock) -> None:
    for i in range(3):
        assert enrolled.post(rx, b"{}", now=clock.now).status == 400  # authenticated, then malformed
        assert rx.catalog.count("nonces") == i + 1
    clock.now += 601
    assert enrolled.post(rx, b"{}", now=clock.now).status == 400
    assert rx.catalog.count("nonces") == 1


def test_a_revoked_device_is_refused(enrolled: Hall, rx: Receiver) -> None:
    assert rx.revoke("hall-a") == [protocol.key_id(enrolled.device.public_key())]
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    reply = enrolled.post(rx, built.body)
    assert (reply.status, reply.body["code"]) == (401, "device_revoked")
    assert counts(rx) == NOTHING


def test_a_device_can_revoke_itself(enrolled: Hall, rx: Receiver) -> None:
    path = "/api/v1/revoke-self"
    reply = rx.revoke_self(b"", enrolled.headers(b"", path=path), "POST", path)
    assert reply.status == 200 and reply.body["hall_id"] == "hall-a"
    assert rx.catalog.device(reply.body["device_key_id"]).revoked_at is not None  # type: ignore[union-attr]
    assert enrolled.post(rx, b"{}").body["code"] == "device_revoked"


# --- acceptance -------------------------------------------------------------------------------
def test_acceptance_is_idempotent_with_a_signed_receipt(
    enrolled: Hall, rx: Receiver, archive_dir: Path
) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    first = enrolled.post(rx, built.body)
    assert first.status == 200, first.body.get("failed")
    again = enrolled.post(rx, built.body)  # a resend after a lost response: new nonce, same package
    assert again.status == 200 and again.body == first.body
    _, signing = public_keys(archive_dir)
    body = protocol.verify_receipt(signing, first.body)
    assert body["status"] == "accepted" and body["failed"] == []
    assert (body["record_id"], body["record_version"]) == (built.record_id, built.version)
    assert body["idempotency_key"] == built.idempotency_key  # recomputed by the archive
    assert body["package_sha256"] == hashlib.sha256(built.body).hexdigest()
    assert all(prop["passed"] for prop in body["checks"].values())
    items = {i["item"] for prop in body["checks"].values() for i in prop["items"]}
    assert len(items) == 20
    assert counts(rx)["packages"] == 1 and counts(rx)["records"] == 1
    stored = rx.catalog.db.read().one("SELECT package FROM packages")
    assert stored is not None and stored["package"].encode() == built.body  # kept as received


def test_a_new_version_of_a_record_replaces_it(enrolled: Hall, rx: Receiver) -> None:
    from appliance import record_metadata

    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    assert enrolled.post(rx, built.body).status == 200
    record_metadata.edit(
        enrolled.ctx.store, enrolled.settings, built.record_id, {"remarks": "补充说明"}, actor="t"
    )
    newer = enrolled.package(0)
    assert enrolled.post(rx, newer.body).status == 200
    assert counts(rx)["packages"] == 2 and counts(rx)["records"] == 1
    row = rx.catalog.db.read().one("SELECT record_version FROM records")
    assert row is not None and row["record_version"] == newer.version
    assert [h.record_id for h in rx.search("补充说明")] == [built.record_id]


# --- 四性检测 on tampered packages --------------------------------------------------------------
def _rejected(rx: Receiver, reply_status: int, before: dict[str, int]) -> None:
    assert reply_status == 422
    after = counts(rx)
    assert after["packages"] == before["packages"] and after["records"] == before["records"]
    assert after["rejections"] == before["rejections"] + 1


def test_one_altered_byte_of_a_blob_is_rejected_and_the_object_deleted(
    enrolled: Hall, rx: Receiver, archive_dir: Path
) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    master = built.package["manifest"]["master"]["ref"]
    assert isinstance(rx.store, FolderObjectStore)
    path = rx.store.root / blob_key("hall-a", master)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    reply = enrolled.post(rx, built.body)
    _rejected(rx, reply.status, NOTHING)
    assert failed_items(reply) == ["blob_hash", "formats_open"]
    assert not path.exists()
    _, signing = public_keys(archive_dir)
    assert protocol.verify_receipt(signing, reply.body)["status"] == "rejected"
    logged = rx.catalog.rejections("hall-a")
    assert [f["item"] for f in logged[0]["failed"]] == failed_items(reply)
    assert logged[0]["idempotency_key"] == built.idempotency_key
    enrolled.ship(rx.store, built)  # the box ships the blob again: now it is accepted
    assert enrolled.post(rx, built.body).status == 200


def test_a_manifest_field_changed_after_signing_is_rejected(enrolled: Hall, rx: Receiver) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    reply = enrolled.post(rx, tamper_manifest(built, None, archival_code="0001-WS·2023-D30-ZWFW-0999"))
    _rejected(rx, reply.status, NOTHING)
    assert failed_items(reply) == ["package_signature", "metadata_valid"]


def test_a_changed_signature_is_rejected(enrolled: Hall, rx: Receiver) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    sig = bytearray(protocol.unb64(built.package["signature"], "sig"))
    sig[0] ^= 0x80
    body = protocol.canonical_json({**built.package, "signature": protocol.b64(bytes(sig))})
    reply = enrolled.post(rx, body)
    _rejected(rx, reply.status, NOTHING)
    assert failed_items(reply) == ["package_signature"]


def test_signed_but_inconsistent_manifests_fail_the_named_items(enrolled: Hall, rx: Receiver) -> None:
    built = enrolled.package(0)
    enrolled.ship(rx.store, built)
    m = built.package["manifest"]
    dev = enrolled.device
    cases: dict[str, dict[str, Any]] = {
        "fixity": {"fixity": {**m["fixity"], "blob_count": m["fixity"]["blob_count"] + 1}},
        "process_history": {"events": [e for e in m["events"] if e["type"] != "storage"]},
        "sealed_to_archive": {"dek": {**m["dek"], "archive_key_id": "0" * 16}},
        "archival_code_format": {"archival_code": "0001-WS2023-D30-ZWFW-0001"},
        "no_plaintext": {"metadata": {**m["metadata"], "title": "营业执照"}},
        "manifest_parses": {"page_count": "1"},
    }
    before = NOTHING
    for item, change in cases.items():
        reply = enrolled.post(rx, tamper_manifest(built, dev, **change))
        _rejected(rx, reply.status, before)
        before = counts(rx)
        assert item in failed_items(reply), (item, failed_items(reply))
        assert "package_signature" not in failed_items(reply)  # re-signed: only the named item fails
    ct = bytearray(protocol.unb64(m["metadata"]["ct"], "ct"))
    ct[-1] ^= 1
    reply = enrolled.post(
        rx, tamper_manifest(built, dev, metadata={**m["metadata"], "ct": protocol.b64(bytes(ct))})
    )
    assert failed_items(reply) == ["metadata_valid", "page_count", "mandatory_metadata", "decrypts"]
    missing = enrolled.package(1)  # its blobs were never shipped
    reply = enrolled.post(rx, missing.body)
    assert failed_items(reply) == ["blobs_present", "formats_open"]


def test_a_device_cannot_send_another_halls_package(enrolled: Hall, rx: Receiver, tmp_path: Path) -> None:
    hall_b = make_hall(
        tmp_path, "hall-b", archive_dir=rx.settings.archive_dir, records=1, seed=2, fonds="0002"
    )
    try:
        hall_b.enroll(rx)
        built = enrolled.package(0)
        enrolled.ship(rx.store, built)
        reply = hall_b.post(rx, built.body)  # hall-a's package, sent by hall-b's device
        assert reply.status == 422
        assert failed_items(reply) == ["package_signature", "device_enrolled"]
    finally:
        hall_b.close()


def test_a_second_hall_using_the_same_archival_code_is_rejected(
    enrolled: Hall, rx: Receiver, tmp_path: Path
) -> None:
    hall_b = make_hall(
        tmp_path, "hall-b", archive_dir=rx.settings.archive_dir, records=1, seed=1
    )  # same 全宗号
    try:
        hall_b.enroll(rx)
        a, b = enrolled.package(0), hall_b.package(0)
        assert a.package["manifest"]["archival_code"] == b.package["manifest"]["archival_code"]
        enrolled.ship(rx.store, a)
        hall_b.ship(rx.store, b)
        assert enrolled.post(rx, a.body).status == 200
        reply = hall_b.post(rx, b.body)
        assert reply.status == 422 and failed_items(reply) == ["archival_code_unique"]
    finally:
        hall_b.close()


def test_audit_checkpoints_keep_the_highest_and_flag_a_lower_one(enrolled: Hall, rx: Receiver) -> None:
    dev = enrolled.device
    first, second = enrolled.package(0), enrolled.package(1)
    enrolled.ship(rx.store, first)
    enrolled.ship(rx.store, second)
    body = tamper_manifest(first, dev, audit_checkpoint=_checkpoint(dev, "hall-a", 40))
    assert enrolled.post(rx, body).status == 200
    cp = rx.catalog.checkpoint("hall-a")
    assert cp is not None and (cp["seq"], cp["flag"]) == (40, None)
    body = tamper_manifest(second, dev, audit_checkpoint=_checkpoint(dev, "hall-a", 12))
    assert enrolled.post(rx, body).status == 200  # accepted, but the regression is flagged
    cp = rx.catalog.checkpoint("hall-a")
    assert cp is not None and cp["seq"] == 40 and "seq 12 arrived after seq 40" in cp["flag"]
    forged = tamper_manifest(first, dev, audit_checkpoint=_checkpoint(dev, "hall-a", 99, sign_as="hall-x"))
    assert enrolled.post(rx, forged).status == 200
    cp = rx.catalog.checkpoint("hall-a")
    assert cp is not None and cp["seq"] == 40 and "does not verify" in cp["flag"]
    assert rx.status()["halls"][0]["checkpoint_flag"] == cp["flag"]


def test_malformed_bodies_are_protocol_errors(enrolled: Hall, rx: Receiver) -> None:
    for body in (
        b"not json",
        b"[]",
        b'{"manifest": {"hall_id": "hall-a"}}',
        b'{"manifest": {"record_version": 1.5}}',
    ):
        reply = enrolled.post(rx, body)
        assert (reply.status, reply.body["code"]) == (400, "protocol"), body
    assert counts(rx) == NOTHING


# --- search and status across halls ------------------------------------------------------------
def test_search_and_status_across_two_halls(
    enrolled: Hall, rx: Receiver, tmp_path: Path, clock: Clock
) -> None:
    hall_b = make_hall(
        tmp_path, "hall-b", archive_dir=rx.settings.archive_dir, records=2, seed=7, fonds="0002"
    )
    try:
        hall_b.enroll(rx)
        for hall in (enrolled, hall_b):
            for i in range(2):
                built = hall.package(i)
                hall.ship(rx.store, built)
                assert hall.post(rx, built.body).status == 200
        target_b = hall_b.records[1].content.person
        hits = rx.search(target_b.name)
        assert (hits[0].hall_id, hits[0].record_id) == ("hall-b", hall_b.records[1].record_id)
        assert "【" + target_b.name + "】" in hits[0].snippet
        assert hits[0].archival_code.startswith("0002-WS·") and hits[0].title
        target_a = enrolled.records[0].content.person
        by_id = rx.search(target_a.id_number)
        assert [(h.hall_id, h.record_id) for h in by_id] == [("hall-a", enrolled.records[0].record_id)]
        everywhere = rx.search("公民身份号码")
        assert {h.hall_id for h in everywhere} == {"hall-a", "hall-b"} and len(everywhere) == 4
        assert rx.search("不存在的词语组合") == []
        enrolled.post(rx, tamper_manifest(enrolled.package(0), None, page_count=9))
        clock.now += 120
        st = {h["hall_id"]: h for h in rx.status()["halls"]}
        assert (st["hall-a"]["records"], st["hall-a"]["packages"], st["hall-a"]["rejections"]) == (2, 2, 1)
        assert (st["hall-b"]["records"], st["hall-b"]["packages"], st["hall-b"]["rejections"]) == (2, 2, 0)
        assert st["hall-b"]["last_contact"] is not None and 110 <= st["hall-b"]["lag_s"] <= 130
        assert not st["hall-a"]["revoked"]
        rx.revoke("hall-b")
        assert {h["hall_id"]: h["revoked"] for h in rx.status()["halls"]} == {"hall-a": False, "hall-b": True}
    finally:
        hall_b.close()


# --- set-up -------------------------------------------------------------------------------------
def test_init_keeps_an_existing_archive_key_and_never_replaces_keys(tmp_path: Path) -> None:
    from appliance.keys import generate_archive_keypair
    from sync.archive import init_archive

    d = tmp_path / "local-archive"
    existing = generate_archive_keypair(d / "keys" / "archive.x25519")  # what `hall init` made before
    first = init_archive(d, "local")
    assert sorted(Path(p).name for p in first.created_keys) == ["archive.ed25519", "index.key"]
    assert first.staff_token is not None and first.wrote_settings
    enc, sig = public_keys(d)
    assert raw_public(enc) == raw_public(existing)
    before = {p.name: p.read_bytes() for p in (d / "keys").iterdir()}
    again = init_archive(d)
    assert again.created_keys == [] and again.staff_token is None and not again.wrote_settings
    assert {p.name: p.read_bytes() for p in (d / "keys").iterdir()} == before
    assert raw_public(public_keys(d)[1]) == raw_public(sig)
    assert oct((d / "keys").stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in (d / "keys").iterdir()} == {"0o400"}


def test_archive_settings_file_environment_and_validation(tmp_path: Path) -> None:
    from appliance.errors import ConfigError
    from sync.archive import ArchiveSettings

    d = tmp_path / "a"
    d.mkdir()
    s = ArchiveSettings.load(d, {}, archive_id="prov")
    (d / "archive.toml").write_text(s.to_toml(), encoding="utf-8")
    loaded = ArchiveSettings.load(d, {"HALL_ARCHIVE__PORT": "8191", "HALL_ARCHIVE__CATALOG_DSN": "host=db x"})
    assert (loaded.archive_id, loaded.port, loaded.catalog_dsn, loaded.catalog) == (
        "prov",
        8191,
        "host=db x",
        "sqlite",
    )
    assert loaded.sqlite_path == d.resolve() / "archive.db" and loaded.objects_path == d.resolve() / "objects"
    for bad in ({"HALL_ARCHIVE__CATALOG": "postgresql"}, {"HALL_ARCHIVE__NONCE_TTL_S": "100"},
                {"HALL_ARCHIVE__OBJECTS": "s3"}, {"HALL_ARCHIVE__NO_SUCH": "1"}):  # fmt: skip
        with pytest.raises(ConfigError):
            ArchiveSettings.load(d, bad)
