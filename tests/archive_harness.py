"""Real boxes and a real archive for the receiver's tests: a box data dir whose records are
confirmed and sealed to the archive, packages built by ``sync.package``, blobs shipped into the
archive's object store as the box would, and signed requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.blobstore import FileBlobStore
from appliance.context import Context, open_context
from appliance.keys import FileKeySource, raw_public
from appliance.samples.records import SyntheticRecord, add_records, confirm_records
from appliance.settings import Settings
from sync import protocol
from sync.archive import ArchiveSettings, Receiver, Reply, init_archive, public_keys
from sync.objectstore import ObjectStore, blob_key
from sync.package import BuiltPackage, build_package
from tests.conftest import make_settings

PATH = "/api/v1/packages"
NOT_LOCAL = {"archive_url": "http://127.0.0.1:9"}  # a box that does not enroll itself at init


@dataclass
class Hall:
    settings: Settings
    ctx: Context
    records: list[SyntheticRecord] = field(default_factory=list)

    @property
    def hall_id(self) -> str:
        return self.settings.hall_id

    @property
    def device(self) -> Ed25519PrivateKey:
        return FileKeySource(self.settings.keys_dir).device_key()

    @property
    def device_b64(self) -> str:
        return protocol.b64(raw_public(self.device.public_key()))

    def package(self, i: int = 0) -> BuiltPackage:
        return build_package(self.ctx, self.records[i].record_id)

    def ship(self, store: ObjectStore, built: BuiltPackage) -> None:
        """Copy every blob of the package (the box's ciphertext bytes) into the object store."""
        blobs = FileBlobStore(self.settings.blob_dir)
        for ref in built.blob_refs:
            store.put(blob_key(self.hall_id, ref), blobs.get(ref))

    def enroll(self, rx: Receiver) -> dict[str, Any]:
        token = rx.issue_enrollment_token(self.hall_id)
        return rx.enroll(token, self.hall_id, self.settings.hall_name, self.device_b64)

    def headers(self, body: bytes, *, now: float | None = None, path: str = PATH) -> dict[str, str]:
        return protocol.sign_request(self.device, "POST", path, body, now=now)

    def post(self, rx: Receiver, body: bytes, *, now: float | None = None) -> Reply:
        return rx.accept(body, self.headers(body, now=now), "POST", PATH)

    def close(self) -> None:
        self.ctx.close()


def make_hall(
    root: Path, hall_id: str, *, archive_dir: Path | None = None, records: int = 2, seed: int = 1,
    fonds: str = "0001",
) -> Hall:  # fmt: skip
    """A box with ``records`` confirmed records. Without ``archive_dir`` its embedded-default
    local archive (``DATA_DIR/local-archive``) is the archive; with it, the box is pinned to
    that archive's keys before ``initialise`` (so its data keys are sealed to it)."""
    data_dir = root / hall_id
    if archive_dir is not None:
        enc, sig = public_keys(archive_dir)
        keys = FileKeySource(data_dir / "keys")
        keys.pin_archive(enc, sig)
    settings = make_settings(
        data_dir, hall_id=hall_id, hall_name=f"{hall_id} 政务服务大厅", transfer=NOT_LOCAL,
        archival={"fonds": fonds},
    )  # fmt: skip
    ctx = open_context(settings)
    recs = add_records(ctx, records, seed=seed, valid_images=True, image_bytes=3000)
    confirm_records(ctx, recs)
    return Hall(settings, ctx, recs)


def archive_settings(archive_dir: Path, dsn: str | None = None) -> ArchiveSettings:
    if dsn is None:
        return ArchiveSettings.load(archive_dir, {}, archive_id="test-archive")
    return ArchiveSettings.load(
        archive_dir, {}, archive_id="test-archive", catalog="postgresql", catalog_dsn=dsn
    )


def open_receiver(
    archive_dir: Path, dsn: str | None = None, *, clock: Callable[[], float] = time.time
) -> Receiver:
    init_archive(archive_dir)
    return Receiver(archive_settings(archive_dir, dsn), clock=clock)


class Clock:
    """A settable clock for the receiver (token expiry, nonce expiry, stale requests)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def counts(rx: Receiver) -> dict[str, int]:
    return {t: rx.catalog.count(t) for t in ("packages", "records", "rejections", "search_tokens")}


def failed_items(reply: Reply) -> list[str]:
    return [f["item"] for f in reply.body.get("failed", [])]


def tamper_manifest(built: BuiltPackage, device: Ed25519PrivateKey | None, **changes: Any) -> bytes:
    """The package with manifest fields changed; re-signed by ``device`` (or keeping the old,
    now wrong, signature when None)."""
    manifest = {**built.package["manifest"], **changes}
    if device is None:
        package = {**built.package, "manifest": manifest}
    else:
        package = protocol.sign_package(device, manifest)
    return protocol.canonical_json(package)


def body_json(body: bytes) -> dict[str, Any]:
    return dict(json.loads(body))
