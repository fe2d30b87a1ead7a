"""The receiver on both catalog backends — SQLite and a real PostgreSQL 15 (started by
``tests/postgres_harness.py`` on 127.0.0.1 for this module, one fresh database per test):
acceptance, idempotency, replay, rejection, concurrent duplicates, search, checkpoints."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.audit import checkpoint_message
from appliance.keys import raw_public
from sync import protocol
from sync.archive import Receiver, public_keys
from sync.archive.errors import EnrollmentRefused
from sync.objectstore import FolderObjectStore, blob_key
from tests.archive_harness import PATH, Hall, counts, failed_items, make_hall, open_receiver, tamper_manifest
from tests.postgres_harness import PostgresServer, postgres_server

T = TypeVar("T")
_db_names = itertools.count(1)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Hall]:
    h = make_hall(tmp_path, "hall-a", records=2, seed=3)
    yield h
    h.close()


@pytest.fixture
def rx(hall: Hall, backend: str, request: pytest.FixtureRequest) -> Iterator[Receiver]:
    dsn = None
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("pg")
        dsn = server.create_database(f"archive_{next(_db_names)}")
    receiver = open_receiver(hall.settings.local_archive_dir, dsn)
    assert receiver.catalog.dialect == backend
    hall.enroll(receiver)
    yield receiver
    receiver.close()


def _together(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` for i < n in n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_acceptance_is_idempotent(hall: Hall, rx: Receiver) -> None:
    built = hall.package(0)
    hall.ship(rx.store, built)
    first = hall.post(rx, built.body)
    assert first.status == 200, first.body
    assert hall.post(rx, built.body).body == first.body
    _, signing = public_keys(rx.settings.archive_dir)
    assert protocol.verify_receipt(signing, first.body)["idempotency_key"] == built.idempotency_key
    assert counts(rx)["packages"] == 1 and counts(rx)["records"] == 1
    assert counts(rx)["search_tokens"] > 0


def test_replay_unknown_device_and_tampering_store_nothing(hall: Hall, rx: Receiver) -> None:
    built = hall.package(0)
    hall.ship(rx.store, built)
    stranger = Ed25519PrivateKey.generate()
    unknown = rx.accept(built.body, protocol.sign_request(stranger, "POST", PATH, built.body), "POST", PATH)
    assert (unknown.status, unknown.body["code"]) == (401, "unknown_device")
    assert isinstance(rx.store, FolderObjectStore)
    path = rx.store.root / blob_key(
        "hall-a", built.package["manifest"]["pages"][0]["blobs"]["cleaned"]["ref"]
    )
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    headers = hall.headers(built.body)
    rejected = rx.accept(built.body, headers, "POST", PATH)
    assert rejected.status == 422 and failed_items(rejected) == ["blob_hash", "formats_open"]
    replay = rx.accept(built.body, headers, "POST", PATH)
    assert (replay.status, replay.body["code"]) == (409, "replay")
    assert counts(rx) == {"packages": 0, "records": 0, "rejections": 1, "search_tokens": 0}


def test_concurrent_duplicates_store_one_package_and_answer_one_receipt(hall: Hall, rx: Receiver) -> None:
    built = hall.package(0)
    hall.ship(rx.store, built)
    replies = _together(8, lambda i: hall.post(rx, built.body))
    assert {r.status for r in replies} == {200}
    assert all(r.body == replies[0].body for r in replies)
    assert counts(rx)["packages"] == 1 and counts(rx)["records"] == 1


def test_a_request_replayed_concurrently_is_accepted_once(hall: Hall, rx: Receiver) -> None:
    built = hall.package(1)
    hall.ship(rx.store, built)
    headers = hall.headers(built.body)
    replies = _together(6, lambda i: rx.accept(built.body, headers, "POST", PATH))
    assert sorted(r.status for r in replies) == [200] + [409] * 5
    assert counts(rx)["packages"] == 1


def test_one_token_enrolls_one_device_under_concurrency(rx: Receiver) -> None:
    token = rx.issue_enrollment_token("hall-z")
    keys = [Ed25519PrivateKey.generate() for _ in range(4)]

    def enroll(i: int) -> str:
        try:
            rx.enroll(token, "hall-z", "丙大厅", protocol.b64(raw_public(keys[i].public_key())))
        except EnrollmentRefused:
            return "refused"
        return "enrolled"

    assert sorted(_together(4, enroll)) == ["enrolled", "refused", "refused", "refused"]
    active = rx.catalog.db.read().all(
        "SELECT key_id FROM devices WHERE hall_id='hall-z' AND revoked_at IS NULL"
    )
    assert len(active) == 1


def test_search_and_checkpoints(hall: Hall, rx: Receiver) -> None:
    dev = hall.device
    for i, seq in ((0, 30), (1, 20)):
        built = hall.package(i)
        hall.ship(rx.store, built)
        entry = hashlib.sha256(b"e").hexdigest()
        cp = {"seq": seq, "entry_hash": entry, "key_id": protocol.key_id(dev.public_key()),
              "signature": protocol.b64(dev.sign(checkpoint_message("hall-a", seq, entry)))}  # fmt: skip
        assert hall.post(rx, tamper_manifest(built, dev, audit_checkpoint=cp)).status == 200
    cp_row = rx.catalog.checkpoint("hall-a")
    assert cp_row is not None and cp_row["seq"] == 30 and "seq 20" in cp_row["flag"]
    person = hall.records[1].content.person
    hits = rx.search(f"{person.name} {person.id_number}")
    assert [h.record_id for h in hits] == [hall.records[1].record_id]
    status = rx.status()["halls"]
    assert [(h["hall_id"], h["records"], h["packages"]) for h in status] == [("hall-a", 2, 2)]
