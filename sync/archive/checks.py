"""四性检测 (DA/T 70): the receiver's checks of every package, exactly the items of
``docs/transfer.md``. Every item is run (a failure never stops the others; an item that cannot
run because something it needs failed is reported failed, saying why), and each result is
``{item, passed, detail}``. Details name fields and blobs, never personal values.

Blobs are fetched from the object store one at a time, hashed, sized, decrypted and decoded, so
memory stays at one blob. An object whose content does not hash to its key is deleted from the
store (no valid package can refer to it). An object store that cannot be reached or refuses the archive's
credentials raises its :class:`~sync.objectstore.ObjectStoreError` instead of failing an item:
that is the archive's problem, and the box retries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image

from appliance import envelope
from appliance.archival import (
    REQUIRED_FOR_CONFIRMATION,
    ArchivalCodeError,
    RecordMetadata,
    format_archival_code,
    parse_archival_code,
    validate,
)
from appliance.decoding.formats import sniff_format
from appliance.errors import DecodeError, DecryptionFailed
from sync.archive.catalog import Device
from sync.archive.manifest import PAGE_KEYS, TOP_KEYS, BlobRef, Manifest, ManifestInvalid, parse_manifest
from sync.objectstore import ObjectNotFound, ObjectStore, blob_key
from sync.protocol import ProtocolError, key_id, verify_package

ITEMS: dict[str, tuple[str, ...]] = {
    "authenticity": (
        "package_signature", "archival_code_format", "archival_code_unique", "metadata_valid", "fixity",
    ),
    "integrity": (
        "page_count", "mandatory_metadata", "process_history", "blobs_present", "blob_hash", "blob_size",
    ),
    "usability": ("manifest_parses", "dek_opens", "decrypts", "formats_open", "ocr_text_present"),
    "security": ("device_enrolled", "request_authenticated", "sealed_to_archive", "no_plaintext"),
}  # fmt: skip
PROPERTY_OF = {item: prop for prop, items in ITEMS.items() for item in items}
REQUIRED_EVENTS = ("ingestion", "storage", "archival code assignment")
MANDATORY = (*REQUIRED_FOR_CONFIRMATION, "archival_code")
FULL_DECODE_MAX_PIXELS = 50_000_000  # larger pages: header and structure only (verify)
_MAX_LISTED = 5
_REF = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CheckItem:
    property: str
    item: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Plaintext:
    """What the archive decrypted (kept in memory only, for the search index)."""

    metadata: dict[str, Any]
    ocr_texts: list[str]


@dataclass(frozen=True)
class CheckOutcome:
    items: list[CheckItem]
    manifest: Manifest | None
    plaintext: Plaintext | None

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    def failed(self) -> list[dict[str, Any]]:
        return [
            {"property": i.property, "item": i.item, "detail": i.detail} for i in self.items if not i.passed
        ]

    def with_failure(self, item: str, detail: str) -> CheckOutcome:
        """The same outcome with ``item`` failed (a conflict found while storing)."""
        items = [CheckItem(i.property, i.item, False, detail) if i.item == item else i for i in self.items]
        return CheckOutcome(items, self.manifest, self.plaintext)

    def failed_items(self) -> list[str]:
        return [i.item for i in self.items if not i.passed]

    def checks(self) -> dict[str, Any]:
        """The receipt's ``checks`` object."""
        out: dict[str, Any] = {}
        for prop in ITEMS:
            items = [
                {"item": i.item, "passed": i.passed, "detail": i.detail}
                for i in self.items
                if i.property == prop
            ]
            out[prop] = {"passed": all(i["passed"] for i in items), "items": items}
        return out


@dataclass(frozen=True)
class CheckInput:
    package: Mapping[str, Any]
    device: Device
    request_detail: str  # how the request was authenticated (it was, or we would not be here)
    archive_private: X25519PrivateKey
    store: ObjectStore
    code_holder: Callable[[str], tuple[str, str] | None]
    now: float


@dataclass
class _Run:
    """Results so far; an item reported twice keeps its first failure."""

    results: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def set(self, item: str, passed: bool, detail: str) -> None:
        if item not in PROPERTY_OF:
            raise ValueError(f"unknown check item {item}")
        if item not in self.results or (self.results[item][0] and not passed):
            self.results[item] = (passed, detail)

    def problems(self, item: str, problems: list[str], ok: str) -> None:
        if problems:
            more = f" (+{len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
            self.set(item, False, "; ".join(problems[:_MAX_LISTED]) + more)
        else:
            self.set(item, True, ok)

    def skip(self, items: tuple[str, ...], why: str) -> None:
        """Fail the items not judged yet: they could not run."""
        for item in items:
            if item not in self.results:
                self.set(item, False, f"not checked: {why}")

    def outcome(self, manifest: Manifest | None, plaintext: Plaintext | None) -> CheckOutcome:
        items = [
            CheckItem(prop, item, *self.results.get(item, (False, "not checked")))
            for prop, names in ITEMS.items()
            for item in names
        ]
        return CheckOutcome(items, manifest, plaintext)


def run_checks(c: CheckInput) -> CheckOutcome:
    run = _Run()
    raw = c.package.get("manifest")
    raw = raw if isinstance(raw, Mapping) else {}
    d = c.device
    if d.revoked_at is not None:
        run.set("device_enrolled", False, f"device key {d.key_id} is revoked")
    elif raw.get("hall_id") != d.hall_id:
        why = f"device key {d.key_id} is enrolled for hall {d.hall_id}, not {raw.get('hall_id')!r}"
        run.set("device_enrolled", False, why)
    else:
        run.set("device_enrolled", True, f"device key {d.key_id} enrolled for hall {d.hall_id}")
    run.set("request_authenticated", True, c.request_detail)
    try:
        verify_package(c.device.public_key, c.package)
        run.set("package_signature", True, f"Ed25519 signature of device key {c.device.key_id} verifies")
    except ProtocolError as e:
        run.set("package_signature", False, str(e))
    try:
        m = parse_manifest(raw)
    except ManifestInvalid as e:
        run.set("manifest_parses", False, str(e))
        run.skip(tuple(PROPERTY_OF), "the manifest does not parse")
        return run.outcome(None, None)
    run.set("manifest_parses", True, "hall-transfer/1 manifest with every required field")
    _no_plaintext(run, raw, m)
    _fixity(run, m)
    _archival_code(run, m, c.code_holder)
    _process_history(run, m)
    dek = _open_dek(run, m, c.archive_private)
    plaintext = None
    if dek is None:
        run.skip(("decrypts", "formats_open", "ocr_text_present", "metadata_valid", "mandatory_metadata"),
                 "the data key does not open")  # fmt: skip
        run.problems(
            "page_count", _page_problems(m, None), f"{m.page_count} pages listed and numbered in order"
        )
    else:
        metadata = _metadata(run, m, dek, c.now)
        ocr = _ocr(run, m, dek)
        plaintext = Plaintext(metadata or {}, ocr) if metadata is not None else None
        run.problems(
            "page_count", _page_problems(m, metadata), f"{m.page_count} pages = metadata 页数, in order"
        )
    _blobs(run, m, dek, c.store)
    run.set("decrypts", True, "metadata, OCR text and every blob decrypt and authenticate")
    return run.outcome(m, plaintext)


# --- security -----------------------------------------------------------------------------
def _no_plaintext(run: _Run, raw: Mapping[str, Any], m: Manifest) -> None:
    problems = [f"unexpected manifest field {k!r}" for k in sorted(set(raw) - TOP_KEYS)]
    for i, page in enumerate(raw.get("pages", [])):
        problems += [f"unexpected field {k!r} on page {i + 1}" for k in sorted(set(page) - PAGE_KEYS)]
        ocr = page.get("ocr", {})
        if set(ocr) != {"ct", "aad"}:
            problems.append(f"page {i + 1} OCR must carry only ct and aad")
    if set(raw.get("metadata", {})) != {"ct", "aad"}:
        problems.append("metadata must carry only ct and aad")
    sealed = [("metadata", m.metadata.ct), *((f"page {p.idx} OCR", p.ocr.ct) for p in m.pages)]
    problems += [f"{what} is not envelope ciphertext" for what, ct in sealed if not _is_ciphertext(ct)]
    run.problems("no_plaintext", problems, "metadata and OCR text are ciphertext; nothing else is carried")


def _is_ciphertext(data: bytes) -> bool:
    return len(data) >= envelope.OVERHEAD and data.startswith(b"HA" + bytes([envelope.FORMAT_VERSION]))


def _open_dek(run: _Run, m: Manifest, archive_private: X25519PrivateKey) -> bytes | None:
    ours = key_id(archive_private.public_key())
    if m.dek_archive_key_id == ours:
        run.set("sealed_to_archive", True, f"data key sealed to archive key {ours}")
    else:
        run.set(
            "sealed_to_archive",
            False,
            f"data key sealed to key {m.dek_archive_key_id}, not to this archive's {ours}",
        )
    try:
        dek = envelope.open_from_archive(archive_private, m.dek_sealed, appliance=m.hall_id, dek_id=m.dek_id)
    except DecryptionFailed as e:
        run.set("dek_opens", False, str(e))
        return None
    run.set("dek_opens", True, f"data key {m.dek_id} opens with the archive key")
    return dek


# --- authenticity -------------------------------------------------------------------------
def _fixity(run: _Run, m: Manifest) -> None:
    """Declared count and bytes are over the distinct blobs (a blob listed twice is stored once)."""
    unique = {b.ref: b.size for b in m.blobs()}
    problems = []
    if m.fixity_algorithm != "sha-256":
        problems.append(f"fixity algorithm {m.fixity_algorithm!r} is not sha-256")
    if m.fixity_count != len(unique):
        problems.append(f"declared blob_count {m.fixity_count}, the page list has {len(unique)}")
    total = sum(unique.values())
    if m.fixity_bytes != total:
        problems.append(f"declared blob_bytes {m.fixity_bytes}, the page list sums to {total}")
    run.problems("fixity", problems, f"{len(unique)} blobs, {total} bytes, as declared")


def _archival_code(run: _Run, m: Manifest, holder_of: Callable[[str], tuple[str, str] | None]) -> None:
    try:
        canonical = format_archival_code(parse_archival_code(m.archival_code))
    except ArchivalCodeError as e:
        run.set("archival_code_format", False, e.message_en)
    else:
        if canonical == m.archival_code:
            run.set("archival_code_format", True, "档号 follows DA/T 22")
        else:
            run.set("archival_code_format", False, f"档号 is not in canonical form (expected {canonical})")
    holder = holder_of(m.archival_code)
    if holder is None or holder == (m.hall_id, m.record_id):
        run.set("archival_code_unique", True, "no other record of any hall holds this 档号")
    else:
        run.set("archival_code_unique", False, f"档号 already held by record {holder[1]} of hall {holder[0]}")


def _metadata(run: _Run, m: Manifest, dek: bytes, now: float) -> dict[str, Any] | None:
    """Decrypt and judge the metadata; returns it (None if it does not decrypt or parse)."""
    problems = _aad_problems(m, m.metadata.aad, "metadata", m.record_version)
    try:
        data = json.loads(envelope.open_sealed(dek, m.metadata.ct, m.metadata.aad))
    except (DecryptionFailed, ValueError) as e:
        run.set(
            "decrypts", False, f"metadata: {e}" if isinstance(e, DecryptionFailed) else "metadata is not JSON"
        )
        run.skip(("metadata_valid", "mandatory_metadata"), "the metadata does not decrypt")
        return None
    if problems:
        run.set("decrypts", False, "; ".join(problems))
    if not isinstance(data, dict):
        run.skip(("metadata_valid", "mandatory_metadata"), "the metadata is not a JSON object")
        return None
    try:
        meta = RecordMetadata.from_dict(data)
    except (ValueError, TypeError) as e:
        run.set("metadata_valid", False, str(e))
        run.skip(("mandatory_metadata",), "the metadata has unknown fields")
        return data
    # "today" as far east as any time zone reaches, so a record dated today anywhere is not "future"
    today = (dt.datetime.fromtimestamp(now, dt.UTC) + dt.timedelta(hours=14)).date()
    found = validate(meta, for_confirmation=True, today=today)
    invalid = [f"{p.field}: {p.message_en}" for p in found if p.code != "required"]
    if data.get("archival_code") not in (None, m.archival_code):
        invalid.append("archival_code: differs from the manifest's 档号")
    run.problems("metadata_valid", invalid, "types, lengths, ranges and formats valid")
    missing = [f for f in MANDATORY if data.get(f) in (None, "")]
    run.problems("mandatory_metadata", [f"{f} missing" for f in missing], "DA/T 46 core elements present")
    return data


def _ocr(run: _Run, m: Manifest, dek: bytes) -> list[str]:
    texts: list[str] = []
    problems: list[str] = []
    for p in m.pages:
        aad_problems = _aad_problems(m, p.ocr.aad, f"page/{p.idx}/ocr", None)
        if aad_problems:
            run.set("decrypts", False, "; ".join(aad_problems))
        try:
            doc = json.loads(envelope.open_sealed(dek, p.ocr.ct, p.ocr.aad))
        except DecryptionFailed as e:
            run.set("decrypts", False, f"page {p.idx} OCR: {e}")
            problems.append(f"page {p.idx}: OCR does not decrypt")
            continue
        except ValueError:
            problems.append(f"page {p.idx}: OCR is not JSON")
            continue
        text = doc.get("text") if isinstance(doc, dict) else None
        if not isinstance(text, str):
            problems.append(f"page {p.idx}: OCR has no text")
        elif not text.strip() and p.line_count != 0:
            problems.append(f"page {p.idx}: OCR text is empty but {p.line_count} lines are declared")
        else:
            texts.append(text)
    run.problems("ocr_text_present", problems, f"OCR text of {len(m.pages)} pages present")
    return texts


# --- integrity ----------------------------------------------------------------------------
def _page_problems(m: Manifest, metadata: Mapping[str, Any] | None) -> list[str]:
    problems = []
    if len(m.pages) != m.page_count:
        problems.append(f"{len(m.pages)} pages listed, page_count says {m.page_count}")
    if metadata is None:
        problems.append("metadata 页数 not compared: the metadata does not decrypt")
    elif metadata.get("pages") != m.page_count:
        problems.append(f"metadata 页数 is {metadata.get('pages')!r}, page_count is {m.page_count}")
    idx = [p.idx for p in m.pages]
    if idx and idx != list(range(idx[0], idx[0] + len(idx))):
        problems.append("pages are not numbered consecutively (missing, duplicate or out-of-order page)")
    if m.page_count == 0:
        problems.append("a record without pages")
    return problems


def _process_history(run: _Run, m: Manifest) -> None:
    missing = [t for t in REQUIRED_EVENTS if t not in m.event_types]
    run.problems(
        "process_history", [f"no {t!r} event" for t in missing], "ingestion, storage and 档号 events present"
    )


def _aad_problems(m: Manifest, aad: envelope.Aad, name: str, version: int | None) -> list[str]:
    problems = []
    if aad.name != name:
        problems.append(f"{name} is bound to {aad.name!r} (ciphertext moved from another slot?)")
    if aad.key_id != m.dek_id:
        problems.append(f"{name} is bound to data key {aad.key_id}, not {m.dek_id}")
    if version is not None and aad.version != version:
        problems.append(f"{name} is version {aad.version}, the manifest says {version}")
    return problems


def _blobs(run: _Run, m: Manifest, dek: bytes | None, store: ObjectStore) -> None:
    missing: list[str] = []
    bad_hash: list[str] = []
    bad_size: list[str] = []
    undecryptable: list[str] = []
    unreadable: list[str] = []
    for blob in m.blobs():
        if not _REF.fullmatch(blob.ref):
            missing.append(f"{blob.label}: reference is not a SHA-256 hex digest")
            continue
        key = blob_key(m.hall_id, blob.ref)
        try:
            data = store.get(key)
        except ObjectNotFound:  # any other store error is the archive's problem: raised, not judged
            missing.append(f"{blob.label}: {blob.ref[:12]}… not in the object store")
            continue
        if hashlib.sha256(data).hexdigest() != blob.ref:
            store.delete(key)  # no valid package can refer to it
            bad_hash.append(f"{blob.label}: content does not hash to {blob.ref[:12]}… (object deleted)")
            continue
        if len(data) != blob.size:
            bad_size.append(f"{blob.label}: {len(data)} bytes, declared {blob.size}")
        if dek is None:
            continue
        plain = _decrypt_blob(m, blob, data, dek, undecryptable)
        if plain is not None and (problem := _format_problem(m, blob, plain)) is not None:
            unreadable.append(f"{blob.label}: {problem}")
    n = len(m.blobs())
    run.problems("blobs_present", missing, f"all {n} blobs in the object store")
    run.problems("blob_hash", bad_hash, f"all {n} blobs hash to their reference")
    run.problems("blob_size", bad_size, f"all {n} blobs have their declared size")
    if dek is not None:
        if undecryptable:
            run.problems("decrypts", undecryptable, "")
        if missing or bad_hash:
            run.set("formats_open", False, "not checked: blobs missing or altered")
        run.problems(
            "formats_open", unreadable, f"master is {m.master_format}; every page copy decodes as an image"
        )


def _decrypt_blob(m: Manifest, blob: BlobRef, data: bytes, dek: bytes, problems: list[str]) -> bytes | None:
    name = "master" if blob.label == "master" else "page/{}/{}".format(*blob.label.split()[1:])
    aad_problems = _aad_problems(m, blob.aad, name, None)
    if aad_problems:
        problems.extend(aad_problems)
        return None
    try:
        return envelope.open_sealed(dek, data, blob.aad)
    except DecryptionFailed as e:
        problems.append(f"{blob.label}: {e}")
        return None


def _format_problem(m: Manifest, blob: BlobRef, plain: bytes) -> str | None:
    try:
        kind = sniff_format(plain[:1024])
    except DecodeError:
        return "not a JPEG, PNG, TIFF or PDF file"
    if blob.label == "master":
        return None if kind == m.master_format else f"is {kind}, the manifest says {m.master_format}"
    if kind == "pdf":
        return "a page copy must be an image, found PDF"
    return _image_problem(plain)


def _image_problem(data: bytes) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "TIFF")) as im:
                if im.width * im.height <= FULL_DECODE_MAX_PIXELS:
                    im.load()
                else:
                    im.verify()
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        return f"does not decode as an image ({type(e).__name__})"
    return None
