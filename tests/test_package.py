"""The transfer package of a record (``sync/package.py``): deterministic bytes, every blob listed
with its hash and size, everything personal as ciphertext that only the archive key opens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from appliance import envelope, record_metadata, shredding
from appliance.context import Context, local_archive_key_path, open_context
from appliance.envelope import Aad
from appliance.errors import DecryptionFailed, RecordShredded
from appliance.keys import load_archive_private
from appliance.samples.records import SyntheticRecord, add_records, confirm_records
from appliance.settings import Settings
from sync import protocol
from sync.package import NotTransferable, build_package, record_blob_refs


@pytest.fixture
def loaded(fresh_settings: Settings) -> Iterator[tuple[Context, list[SyntheticRecord]]]:
    ctx = open_context(fresh_settings)
    recs = add_records(ctx, 3, seed=5, valid_images=True, image_bytes=5000)
    confirm_records(ctx, recs[:2])
    yield ctx, recs
    ctx.close()


def _open(ctx: Context, manifest: dict[str, Any], part: dict[str, Any]) -> bytes:
    archive = load_archive_private(local_archive_key_path(ctx.settings))
    dek = envelope.open_from_archive(
        archive,
        protocol.unb64(manifest["dek"]["sealed"], "dek"),
        appliance=manifest["hall_id"],
        dek_id=manifest["dek"]["id"],
    )
    return envelope.open_sealed(dek, part["ct"], Aad(manifest["hall_id"], **part["aad"]))


def test_the_same_record_state_gives_the_same_bytes_and_key(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    first, again = build_package(ctx, recs[0].record_id), build_package(ctx, recs[0].record_id)
    assert first.body == again.body and first.idempotency_key == again.idempotency_key
    other = build_package(ctx, recs[1].record_id)
    assert other.idempotency_key != first.idempotency_key
    record_metadata.edit(ctx.store, ctx.settings, recs[0].record_id, {"creator": "另一个单位"}, actor="t")
    edited = build_package(ctx, recs[0].record_id)
    assert edited.version == first.version + 1 and edited.idempotency_key != first.idempotency_key


def test_manifest_lists_every_blob_with_hash_and_size(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    built = build_package(ctx, recs[0].record_id)
    m = built.package["manifest"]
    listed = [m["master"], *(b for p in m["pages"] for b in p["blobs"].values())]
    assert sorted({b["ref"] for b in listed}) == sorted(built.blob_refs)
    assert built.blob_refs == record_blob_refs(ctx.conn, recs[0].record_id)
    for b in listed:
        data = ctx.store.blobs.get(b["ref"])
        assert hashlib.sha256(data).hexdigest() == b["ref"] and len(data) == b["size"]
    assert m["fixity"] == {
        "algorithm": "sha-256",
        "blob_count": len(built.blob_refs),
        "blob_bytes": sum(b["size"] for b in {b["ref"]: b for b in listed}.values()),
    }
    assert m["page_count"] == len(m["pages"]) == 1
    assert [e["type"] for e in m["events"]] == [
        "ingestion",
        "storage",
        "metadata modification",
        "archival code assignment",
    ]
    protocol.verify_package(ctx.keyring.keys.device_key().public_key(), json.loads(built.body))


def test_nothing_personal_is_in_the_clear_and_the_archive_key_opens_it(
    loaded: tuple[Context, list[SyntheticRecord]],
) -> None:
    ctx, recs = loaded
    r = recs[0]
    built = build_package(ctx, r.record_id)
    person = r.content.person
    for secret in (person.name, person.id_number, person.phone, r.content.title):
        assert secret.encode() not in built.body and json.dumps(secret).encode() not in built.body
    m = json.loads(built.body)["manifest"]
    meta = json.loads(_open(ctx, m, {**m["metadata"], "ct": protocol.unb64(m["metadata"]["ct"], "m")}))
    assert meta["applicant"] == person.name and meta["archival_code"] == m["archival_code"]
    page = m["pages"][0]
    ocr = json.loads(_open(ctx, m, {**page["ocr"], "ct": protocol.unb64(page["ocr"]["ct"], "o")}))
    assert person.id_number in ocr["text"]
    master = _open(ctx, m, {"ct": ctx.store.blobs.get(m["master"]["ref"]), "aad": m["master"]["aad"]})
    assert master[:2] == b"\xff\xd8" and len(master) == m["master"]["plain_size"]
    wrong = {**m["metadata"], "ct": protocol.unb64(m["metadata"]["ct"], "m"), "aad": m["master"]["aad"]}
    with pytest.raises(DecryptionFailed):
        _open(ctx, m, wrong)  # the AAD binds each ciphertext to its field


def test_drafts_and_shredded_records_are_not_packaged(loaded: tuple[Context, list[SyntheticRecord]]) -> None:
    ctx, recs = loaded
    with pytest.raises(NotTransferable, match="draft"):
        build_package(ctx, recs[2].record_id)
    shredding.shred(ctx.store, recs[1].record_id, actor="t", reason="test")
    with pytest.raises(RecordShredded):
        build_package(ctx, recs[1].record_id)
