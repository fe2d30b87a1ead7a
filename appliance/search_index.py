"""Keeping the blind index in the catalog: the contentless FTS5 table ``search_fts`` (HMAC tokens
of page text and of the searchable metadata), its rowid map ``search_docs``, and the exact-match
table ``exact_index`` (ID number, phone, applicant name, 档号).

FTS5 here is contentless (the tokens are not stored twice). SQLite 3.40 removes a row from a
contentless table only when given the same tokens again, so removal recomputes them from the
decrypted text — which is why shredding removes index rows *before* destroying the key.
All functions run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Literal

from appliance.blindindex import BlindIndex

ExactKind = Literal["id_number", "phone", "name", "archival_code"]
EXACT_FIELDS: dict[str, ExactKind] = {
    "id_number": "id_number",
    "phone": "phone",
    "applicant": "name",
    "archival_code": "archival_code",
}
# Metadata fields whose words are also searchable as text.
TEXT_FIELDS = (
    "title",
    "applicant",
    "matter",
    "doc_type",
    "creator",
    "remarks",
    "archival_code",
    "id_number",
    "phone",
)


def add(conn: sqlite3.Connection, index: BlindIndex, record_id: str, part: str, text: str) -> None:
    doc = index.document(text)
    cur = conn.execute("INSERT INTO search_docs(record_id, part) VALUES (?,?)", (record_id, part))
    conn.execute(
        "INSERT INTO search_fts(rowid, seq, uni, whole) VALUES (?,?,?,?)",
        (cur.lastrowid, doc["seq"], doc["uni"], doc["whole"]),
    )


def remove(conn: sqlite3.Connection, index: BlindIndex, record_id: str, part: str, text: str) -> None:
    row = conn.execute(
        "SELECT rowid FROM search_docs WHERE record_id=? AND part=?", (record_id, part)
    ).fetchone()
    if row is None:
        return
    doc = index.document(text)
    conn.execute(
        "INSERT INTO search_fts(search_fts, rowid, seq, uni, whole) VALUES ('delete',?,?,?,?)",
        (row[0], doc["seq"], doc["uni"], doc["whole"]),
    )
    conn.execute("DELETE FROM search_docs WHERE rowid=?", (row[0],))


def metadata_text(meta: Mapping[str, object]) -> str:
    return "\n".join(str(meta[k]) for k in TEXT_FIELDS if meta.get(k))


def set_exact(
    conn: sqlite3.Connection, index: BlindIndex, record_id: str, meta: Mapping[str, object]
) -> None:
    conn.execute("DELETE FROM exact_index WHERE record_id=?", (record_id,))
    for field, kind in EXACT_FIELDS.items():
        value = meta.get(field)
        if not value:
            continue
        try:
            token = index.exact(kind, str(value))
        except ValueError:
            continue
        conn.execute(
            "INSERT OR IGNORE INTO exact_index(kind, token, record_id) VALUES (?,?,?)",
            (kind, token, record_id),
        )


def replace_metadata(
    conn: sqlite3.Connection,
    index: BlindIndex,
    record_id: str,
    old: Mapping[str, object] | None,
    new: Mapping[str, object],
) -> None:
    if old:
        remove(conn, index, record_id, "meta", metadata_text(old))
    text = metadata_text(new)
    if text:
        add(conn, index, record_id, "meta", text)
    set_exact(conn, index, record_id, new)


def drop_record(
    conn: sqlite3.Connection, index: BlindIndex, record_id: str, texts: Mapping[str, str]
) -> None:
    """Remove every index row of a record; ``texts`` maps part → the decrypted text it indexed."""
    for part, text in texts.items():
        remove(conn, index, record_id, part, text)
    conn.execute("DELETE FROM exact_index WHERE record_id=?", (record_id,))
    # Parts whose text could not be supplied: their FTS tokens stay orphaned (they map to no
    # record any more); `hall reindex` rebuilds the table from scratch.
    conn.execute("DELETE FROM search_docs WHERE record_id=?", (record_id,))


def clear(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO search_fts(search_fts) VALUES ('delete-all')")
    conn.execute("DELETE FROM search_docs")
    conn.execute("DELETE FROM exact_index")
