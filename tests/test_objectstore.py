"""The archive object store: the same contract from a local folder and from a real S3 service
(SeaweedFS ``weed mini`` on 127.0.0.1): content-addressed keys, idempotent PUT, exists/get/delete,
paced uploads, and errors that say whether to retry (unreachable) or fix the set-up (refused)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.objectstore import (
    FolderObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    blob_key,
)
from tests.seaweed_harness import SeaweedS3, free_port, seaweed_s3

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    try:
        cm = seaweed_s3(tmp_path_factory.mktemp("seaweed"))
        server = cm.__enter__()
    except RuntimeError as e:  # never skip: a missing S3 service is a failure
        pytest.fail(f"cannot start the SeaweedFS S3 service: {e}")
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "folder":
        yield FolderObjectStore(tmp_path / "objects")
        return
    server: SeaweedS3 = request.getfixturevalue("s3")
    s = S3ObjectStore(
        server.endpoint, server.bucket, server.access_key, server.secret_key, prefix=f"t/{tmp_path.name}"
    )
    yield s
    s.close()


def test_blob_key_is_content_addressed_and_refuses_anything_else() -> None:
    ref = hashlib.sha256(b"x").hexdigest()
    assert blob_key("hall-1", ref) == f"halls/hall-1/blobs/{ref[:2]}/{ref}"
    for bad in ("../etc", ref.upper(), ref[:-1], ""):
        with pytest.raises(ObjectStoreError, match="invalid blob reference"):
            blob_key("hall-1", bad)


def test_put_is_idempotent_and_round_trips(store: ObjectStore) -> None:
    data = os.urandom(200_000)
    key = blob_key("h", hashlib.sha256(data).hexdigest())
    assert not store.exists(key)
    with pytest.raises(ObjectNotFound):
        store.get(key)
    paced: list[int] = []
    store.put(key, data, pace=paced.append)
    assert sum(paced) == len(data) and max(paced) <= 64 * 1024, "every byte goes through the pacer in chunks"
    store.put(key, data)  # again: no error, same content
    assert store.exists(key) and store.get(key) == data
    store.delete(key)
    store.delete(key)  # deleting what is gone is not an error
    assert not store.exists(key)


def test_keys_that_escape_the_store_are_refused(store: ObjectStore) -> None:
    for bad in ("../x", "/abs", "a/../../b", "sp ace"):
        with pytest.raises(ObjectStoreError, match="invalid object key"):
            store.put(bad, b"x")


def test_wrong_credentials_are_a_configuration_error_not_an_outage(s3: SeaweedS3) -> None:
    wrong = S3ObjectStore(s3.endpoint, s3.bucket, s3.access_key, "not-the-secret")
    try:
        with pytest.raises(ObjectStoreError) as e:
            wrong.put("halls/h/x", b"x")
        assert not isinstance(e.value, ObjectStoreUnavailable)
        assert "HTTP 403" in str(e.value)
    finally:
        wrong.close()


def test_unreachable_store_says_retry_later() -> None:
    down = S3ObjectStore(f"http://127.0.0.1:{free_port()}", "b", "ak", "sk", timeout_s=2)
    try:
        with pytest.raises(ObjectStoreUnavailable, match="unreachable"):
            down.exists("halls/h/x")
    finally:
        down.close()


def test_missing_credentials_are_named() -> None:
    with pytest.raises(ObjectStoreError, match="no credentials"):
        S3ObjectStore("http://127.0.0.1:1", "b", "", "")
