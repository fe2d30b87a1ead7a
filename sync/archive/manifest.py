"""Reading a received manifest (``hall-transfer/1``, ``docs/transfer.md``) into typed values.

:func:`parse_manifest` checks shape and types only (every number an integer, binary as base64,
the AAD of every ciphertext complete); what the values mean is checked by :mod:`sync.archive.checks`.
:class:`ManifestInvalid` names the JSON path of the first problem.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.envelope import Aad
from appliance.errors import HallError
from sync.protocol import MANIFEST_FORMAT

PAGE_BLOB_KINDS = ("cleaned", "bilevel", "thumbnail")
TOP_KEYS = frozenset(
    {
        "format", "hall_id", "record_id", "record_version", "archival_code", "counter", "created_at",
        "confirmed_at", "confirmed_by", "dek", "metadata", "master", "page_count", "pages", "events",
        "audit_checkpoint", "fixity",
    }
)  # fmt: skip
PAGE_KEYS = frozenset(
    {"idx", "width", "height", "channels", "dpi", "line_count", "ocr_engine", "blobs", "ocr"}
)


class ManifestInvalid(HallError):
    code = "manifest_invalid"


@dataclass(frozen=True)
class Sealed:
    """A ciphertext carried in the manifest (metadata, OCR)."""

    ct: bytes
    aad: Aad


@dataclass(frozen=True)
class BlobRef:
    """A ciphertext in the object store, by content address."""

    label: str  # "master", "page 2 cleaned"
    ref: str
    size: int
    aad: Aad


@dataclass(frozen=True)
class Page:
    idx: int
    width: int
    height: int
    line_count: int
    blobs: dict[str, BlobRef]
    ocr: Sealed


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    entry_hash: str
    key_id: str
    signature: str


@dataclass(frozen=True)
class Manifest:
    hall_id: str
    record_id: str
    record_version: int
    archival_code: str
    confirmed_at: float
    dek_id: str
    dek_archive_key_id: str
    dek_sealed: bytes
    metadata: Sealed
    master: BlobRef
    master_format: str
    page_count: int
    pages: list[Page]
    event_types: list[str]
    checkpoint: Checkpoint | None
    fixity_algorithm: str
    fixity_bytes: int
    fixity_count: int

    def blobs(self) -> list[BlobRef]:
        """Every blob the record references: the master, then each page's copies."""
        return [self.master, *(p.blobs[k] for p in self.pages for k in PAGE_BLOB_KINDS)]


def _get(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ManifestInvalid(f"{where}.{key} is missing")
    return obj[key]


def _str(obj: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    v = _get(obj, key, where)
    if not isinstance(v, str) or (not empty and not v):
        raise ManifestInvalid(f"{where}.{key} must be a non-empty string")
    return v


def _int(obj: Mapping[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    v = _get(obj, key, where)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ManifestInvalid(f"{where}.{key} must be an integer >= {minimum}")
    return v


def _obj(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    v = _get(obj, key, where)
    if not isinstance(v, Mapping):
        raise ManifestInvalid(f"{where}.{key} must be an object")
    return v


def _b64(obj: Mapping[str, Any], key: str, where: str) -> bytes:
    v = _str(obj, key, where)
    try:
        return base64.b64decode(v.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ManifestInvalid(f"{where}.{key} is not valid base64") from None


def parse_time(text: str, where: str) -> float:
    """An ISO-8601 UTC time (``2026-11-21T14:03:07.123456Z``) as unix seconds."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ManifestInvalid(f"{where} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        raise ManifestInvalid(f"{where} has no time zone (expected UTC, ending in Z)")
    return when.timestamp()


def _aad(hall_id: str, obj: Mapping[str, Any], where: str) -> Aad:
    a = _obj(obj, "aad", where)
    w = f"{where}.aad"
    return Aad(hall_id, _str(a, "owner", w), _int(a, "version", w), _str(a, "name", w), _str(a, "key_id", w))


def _blob(hall_id: str, obj: Mapping[str, Any], key: str, where: str, label: str) -> BlobRef:
    b = _obj(obj, key, where)
    w = f"{where}.{key}"
    return BlobRef(label, _str(b, "ref", w), _int(b, "size", w), _aad(hall_id, b, w))


def _sealed(hall_id: str, obj: Mapping[str, Any], key: str, where: str) -> Sealed:
    s = _obj(obj, key, where)
    return Sealed(_b64(s, "ct", f"{where}.{key}"), _aad(hall_id, s, f"{where}.{key}"))


def _page(hall_id: str, p: Any, where: str) -> Page:
    if not isinstance(p, Mapping):
        raise ManifestInvalid(f"{where} must be an object")
    idx = _int(p, "idx", where)
    blobs_obj = _obj(p, "blobs", where)
    blobs = {k: _blob(hall_id, blobs_obj, k, f"{where}.blobs", f"page {idx} {k}") for k in PAGE_BLOB_KINDS}
    return Page(
        idx, _int(p, "width", where, minimum=1), _int(p, "height", where, minimum=1),
        _int(p, "line_count", where), blobs, _sealed(hall_id, p, "ocr", where),
    )  # fmt: skip


def _checkpoint(m: Mapping[str, Any]) -> Checkpoint | None:
    c = _get(m, "audit_checkpoint", "$")
    if c is None:
        return None
    if not isinstance(c, Mapping):
        raise ManifestInvalid("$.audit_checkpoint must be an object or null")
    w = "$.audit_checkpoint"
    return Checkpoint(
        _int(c, "seq", w, minimum=1), _str(c, "entry_hash", w), _str(c, "key_id", w), _str(c, "signature", w)
    )


def parse_manifest(m: Any) -> Manifest:
    if not isinstance(m, Mapping):
        raise ManifestInvalid("$ (the manifest) must be an object")
    if m.get("format") != MANIFEST_FORMAT:
        raise ManifestInvalid(f"$.format is {m.get('format')!r}, not {MANIFEST_FORMAT!r}")
    hall_id = _str(m, "hall_id", "$")
    dek = _obj(m, "dek", "$")
    pages_raw = _get(m, "pages", "$")
    if not isinstance(pages_raw, list):
        raise ManifestInvalid("$.pages must be a list")
    events = _get(m, "events", "$")
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise ManifestInvalid("$.events must be a list of objects")
    fixity = _obj(m, "fixity", "$")
    master = _obj(m, "master", "$")
    return Manifest(
        hall_id=hall_id,
        record_id=_str(m, "record_id", "$"),
        record_version=_int(m, "record_version", "$", minimum=1),
        archival_code=_str(m, "archival_code", "$"),
        confirmed_at=parse_time(_str(m, "confirmed_at", "$"), "$.confirmed_at"),
        dek_id=_str(dek, "id", "$.dek"),
        dek_archive_key_id=_str(dek, "archive_key_id", "$.dek"),
        dek_sealed=_b64(dek, "sealed", "$.dek"),
        metadata=_sealed(hall_id, m, "metadata", "$"),
        master=_blob(hall_id, m, "master", "$", "master"),
        master_format=_str(master, "format", "$.master"),
        page_count=_int(m, "page_count", "$"),
        pages=[_page(hall_id, p, f"$.pages[{i}]") for i, p in enumerate(pages_raw)],
        event_types=[str(e.get("type")) for e in events],
        checkpoint=_checkpoint(m),
        fixity_algorithm=_str(fixity, "algorithm", "$.fixity"),
        fixity_bytes=_int(fixity, "blob_bytes", "$.fixity"),
        fixity_count=_int(fixity, "blob_count", "$.fixity"),
    )
