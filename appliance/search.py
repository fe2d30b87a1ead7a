"""Search over encrypted records: blind-index candidates, confirmed by decryption.

1. Exact blind indexes (ID number, phone, applicant name, 档号) and the FTS5 blind index give
   candidate records, best first.
2. Each candidate is decrypted and the query is located in its text (``tokenise.find_spans``):
   truncated tokens can collide, and a phrase of bigram tokens can match across a gap, so only
   confirmed hits are returned. The snippet with highlights is built from the decrypted text.
3. The search itself goes into the audit chain; the query is sealed (it is often an ID number).

Used by ``hall search`` and by the web API.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from appliance import record_reader, search_index
from appliance.catalog import transaction
from appliance.errors import RecordShredded
from appliance.tokenise import find_spans, make_snippet, normalise

if TYPE_CHECKING:
    from appliance.records import RecordStore

_ID = re.compile(r"^\d{17}[\dxX]$")
_PHONE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_NAME = re.compile(r"^[\u4e00-\u9fff·]{2,5}$")
_CODE = re.compile(r"^[0-9A-Za-z]{1,8}-[A-Za-z]{1,4}[·•・･.]\d{4}-")
_CANDIDATES = 200
_RANKED_MAX = 2000


@dataclass(frozen=True)
class SearchFilters:
    status: str | None = None  # draft / confirmed / transferred
    created_from: float | None = None
    created_to: float | None = None
    retention: str | None = None
    matter: str | None = None


@dataclass
class Hit:
    record_id: str
    archival_code: str | None
    title: str | None
    status: str
    created_at: float
    score: float
    matched: list[str]  # 'id_number', 'phone', 'name', 'archival_code', 'text'
    snippet: str
    highlights: list[tuple[int, int]]
    page: int | None = None  # page index of the snippet (None: metadata)
    line: int | None = None  # OCR line index on that page
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["highlights"] = [list(h) for h in self.highlights]
        return d


def _exact_kinds(query: str) -> list[str]:
    q = re.sub(r"[\s-]", "", normalise(query))
    kinds = []
    if _ID.match(q):
        kinds.append("id_number")
    if _PHONE.match(q):
        kinds.append("phone")
    if _NAME.match(q.replace(" ", "")):
        kinds.append("name")
    if _CODE.match(query.strip().upper()):
        kinds.append("archival_code")
    return kinds


def _candidates(store: RecordStore, query: str) -> dict[str, tuple[float, set[str]]]:
    conn, index = store.conn, store.index
    found: dict[str, tuple[float, set[str]]] = {}
    for kind in _exact_kinds(query):
        try:
            token = index.exact(kind, query)  # type: ignore[arg-type]
        except ValueError:
            continue
        for (rid,) in conn.execute(
            "SELECT record_id FROM exact_index WHERE kind=? AND token=?", (kind, token)
        ):
            score, why = found.get(rid, (0.0, set()))
            found[rid] = (score - 100.0, why | {kind})
    expr = index.match_expression(query)
    if expr:
        for rid, rank in _text_candidates(conn, expr):
            score, why = found.get(rid, (0.0, set()))
            found[rid] = (min(score, score + rank), why | {"text"})
    return found


def _text_candidates(conn: sqlite3.Connection, expr: str) -> list[tuple[str, float]]:
    """FTS candidates. BM25 ranking must score every match, which is slow for a broad query
    (a word on every form); so the newest matches are fetched first (cheap: FTS5 walks its
    doclists backwards and stops), and only when the query is selective (at most
    ``_RANKED_MAX`` matches) are they ranked by BM25 instead. Broad queries list newest first."""
    newest = conn.execute(
        "SELECT rowid FROM search_fts WHERE search_fts MATCH ? ORDER BY rowid DESC LIMIT ?",
        (expr, _RANKED_MAX + 1),
    ).fetchall()
    if len(newest) <= _RANKED_MAX:
        rows = conn.execute(
            "SELECT d.record_id, m.rank FROM (SELECT rowid, rank FROM search_fts WHERE search_fts MATCH ?"
            " ORDER BY rank LIMIT ?) m JOIN search_docs d ON d.rowid = m.rowid",
            (expr, _CANDIDATES),
        ).fetchall()
        return [(str(rid), float(rank)) for rid, rank in rows]
    ids = [r[0] for r in newest[:_CANDIDATES]]
    marks = ",".join("?" * len(ids))
    by_rowid = dict(
        conn.execute(f"SELECT rowid, record_id FROM search_docs WHERE rowid IN ({marks})", ids).fetchall()
    )
    # Tiny decreasing scores keep the newest first.
    return [(str(by_rowid[r]), -1e-9 * (len(ids) - i)) for i, r in enumerate(ids) if r in by_rowid]


def _confirm(store: RecordStore, rid: str, query: str, why: set[str], filters: SearchFilters) -> Hit | None:
    rec = store.conn.execute("SELECT * FROM records WHERE id=?", (rid,)).fetchone()
    if rec is None or rec["status"] == "shredded":
        return None
    if filters.status and rec["status"] != filters.status:
        return None
    if filters.created_from and rec["created_at"] < filters.created_from:
        return None
    if filters.created_to and rec["created_at"] > filters.created_to:
        return None
    try:
        meta = record_reader.metadata(store, rec)
    except RecordShredded:
        return None
    if filters.retention and meta.get("retention") != filters.retention:
        return None
    if filters.matter and filters.matter not in str(meta.get("matter", "")):
        return None
    parts: list[tuple[int | None, str]] = []  # (page index or None for metadata, text)
    meta_text = search_index.metadata_text(meta)
    if meta_text:
        parts.append((None, meta_text))
    for p in store.conn.execute("SELECT idx, ocr_ct FROM pages WHERE record_id=? ORDER BY idx", (rid,)):
        parts.append((p["idx"], str(record_reader.page_ocr(store, rec, p)["text"])))

    def hit(matched: set[str], snippet: str, highlights: list[tuple[int, int]], page: int | None,
            line: int | None) -> Hit:  # fmt: skip
        return Hit(rid, meta.get("archival_code"), meta.get("title"), rec["status"], rec["created_at"], 0.0,
                   sorted(matched), snippet, highlights, page, line)  # fmt: skip

    for page, text in parts:
        spans = find_spans(query, text)
        if spans:
            snip = make_snippet(text, spans)
            # Page text is the OCR lines joined by newlines: the line index is the newlines before.
            line_no = text.count("\n", 0, spans[0][0]) if page is not None else None
            return hit(why, snip.text, list(snip.highlights), page, line_no)
    exact = why - {"text"}
    if exact:  # matched an exact field whose text form differs (e.g. phone written with spaces)
        summary = " · ".join(str(meta[k]) for k in ("title", "applicant") if meta.get(k))
        return hit(exact, summary, [], None, None)
    return None


def search(
    store: RecordStore,
    query: str,
    *,
    actor: str,
    limit: int = 20,
    filters: SearchFilters | None = None,
) -> list[Hit]:
    """Ranked, confirmed hits (an empty list when nothing matches). Audited."""
    return search_audited(store, query, actor=actor, limit=limit, filters=filters)[0]


def search_audited(
    store: RecordStore,
    query: str,
    *,
    actor: str,
    limit: int = 20,
    filters: SearchFilters | None = None,
) -> tuple[list[Hit], int]:
    """:func:`search`, also returning the sequence number of its audit entry (the search id a
    later record view refers to, for the retrieval-success figure)."""
    filters = filters or SearchFilters()
    t0 = time.perf_counter()
    hits: list[Hit] = []
    if query.strip():
        ranked = sorted(_candidates(store, query).items(), key=lambda kv: (kv[1][0], -len(kv[1][1])))
        for rid, (score, why) in ranked:
            hit = _confirm(store, rid, query, why, filters)
            if hit is not None:
                hit.score = float(f"{-score:.4g}")
                hits.append(hit)
                if len(hits) >= limit:
                    break
    with transaction(store.conn):
        entry = store.audit.record(
            store.conn,
            actor,
            "search",
            None,
            {"hits": len(hits), "ms": round((time.perf_counter() - t0) * 1000, 1)},
            sensitive={"query": query},
        )
    return hits, entry.seq


def reindex(store: RecordStore, *, actor: str) -> int:
    """Rebuild the whole blind index from the decrypted records (after a key change, a
    suspected inconsistency, or an upgrade of the tokeniser). Returns records indexed."""
    conn = store.conn
    count = 0
    with transaction(conn):
        search_index.clear(conn)
        for (rid,) in conn.execute("SELECT id FROM records WHERE status != 'shredded'").fetchall():
            rec = conn.execute("SELECT * FROM records WHERE id=?", (rid,)).fetchone()
            for part, text in record_reader.texts(store, rid).items():
                search_index.add(conn, store.index, rid, part, text)
            meta = record_reader.metadata(store, rec)
            if meta:
                search_index.replace_metadata(conn, store.index, rid, None, meta)
            count += 1
        store.audit.record(conn, actor, "index.rebuild", None, {"records": count})
    return count
