"""Cross-hall search over the archive's own blind index (``keys/index.key``).

On acceptance the decrypted metadata and OCR text become keyed tokens (:class:`BlindIndex`
over :mod:`appliance.tokenise` terms), stored per record. A query becomes the same terms: a record
is a candidate when it holds every token of every clause (or of one of its alternatives), and
each candidate is confirmed by decrypting its current package and finding the query in the text,
which removes token collisions and phrase-order false hits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from appliance import envelope
from appliance.archival import FIELD_LABELS
from appliance.blindindex import BlindIndex
from appliance.errors import DecryptionFailed
from appliance.tokenise import Clause, find_spans, make_snippet, query_plan
from sync.archive.catalog import Catalog
from sync.archive.checks import Plaintext
from sync.archive.manifest import ManifestInvalid, parse_manifest

# Metadata fields that are searchable text (the rest are codes and numbers).
_TEXT_FIELDS = tuple(FIELD_LABELS)


@dataclass(frozen=True)
class Hit:
    hall_id: str
    record_id: str
    archival_code: str
    title: str | None
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def record_text(metadata: Mapping[str, Any], ocr_texts: list[str]) -> str:
    """The searchable text of a record: its metadata values, then its pages' OCR text."""
    values = [str(metadata[k]) for k in _TEXT_FIELDS if metadata.get(k) not in (None, "")]
    return "\n".join([*values, *ocr_texts])


def tokens_of(index: BlindIndex, plain: Plaintext) -> frozenset[str]:
    doc = index.document(record_text(plain.metadata, plain.ocr_texts))
    return frozenset(tok for column in doc.values() for tok in column.split())


def _candidates(catalog: Catalog, index: BlindIndex, clause: Clause) -> set[tuple[str, str]]:
    found = catalog.records_with_all(index.token(t) for t in clause.terms)
    for alternative in clause.alternatives:
        found |= _candidates(catalog, index, alternative)
    return found


def _decrypt(archive_private: X25519PrivateKey, package_text: str) -> Plaintext | None:
    try:
        m = parse_manifest(json.loads(package_text)["manifest"])
        dek = envelope.open_from_archive(archive_private, m.dek_sealed, appliance=m.hall_id, dek_id=m.dek_id)
        metadata = json.loads(envelope.open_sealed(dek, m.metadata.ct, m.metadata.aad))
        texts = [json.loads(envelope.open_sealed(dek, p.ocr.ct, p.ocr.aad))["text"] for p in m.pages]
    except (ManifestInvalid, DecryptionFailed, ValueError, KeyError, TypeError):
        return None
    return Plaintext(metadata, [t for t in texts if isinstance(t, str)])


def search(
    catalog: Catalog, index: BlindIndex, archive_private: X25519PrivateKey, query: str, *, limit: int = 50
) -> list[Hit]:
    plan = query_plan(query)
    if plan.empty:
        return []
    candidates: set[tuple[str, str]] | None = None
    for clause in plan.clauses:
        found = _candidates(catalog, index, clause)
        candidates = found if candidates is None else candidates & found
        if not candidates:
            return []
    hits: list[Hit] = []
    for hall_id, record_id in sorted(candidates or ()):
        row = catalog.record_package(hall_id, record_id)
        plain = None if row is None else _decrypt(archive_private, row["package"])
        if row is None or plain is None:
            continue
        text = record_text(plain.metadata, plain.ocr_texts)
        spans = find_spans(plan, text)
        if not spans:
            continue
        title = plain.metadata.get("title")
        snippet = make_snippet(text, spans).marked()
        hits.append(
            Hit(hall_id, record_id, row["archival_code"], title if isinstance(title, str) else None, snippet)
        )
        if len(hits) >= limit:
            break
    return hits
