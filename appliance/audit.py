"""Append-only, hash-chained audit log with Ed25519-signed checkpoints.

Every operation appends one ``audit_log`` row inside the caller's transaction, so the entry
commits atomically with the change it records. Entry ``n`` stores ``prev_hash`` = hash of entry
``n-1`` (:data:`GENESIS_HASH` for entry 1) and ``hash`` = :func:`entry_hash` of its own fields.
Triggers refuse UPDATE/DELETE (and out-of-sequence INSERTs) to stop application bugs; someone
holding the file can drop them, which is what the chain and the signed checkpoints detect.

Hash input (v1): SHA-256 over the UTF-8 bytes of the compact, ASCII-only JSON array
``["hall-appliance audit entry v1", seq, at_us, actor, action, target, detail, sealed, prev]``
where ``at_us`` is the time in integer microseconds (``at`` is stored rounded to microseconds, so
the REAL read back from SQLite gives the same integer), ``target`` is a string or null,
``detail`` is the stored canonical-JSON *text*, and ``sealed`` is lower-case hex or null.

Checkpoint signature message (v1): ``b"hall-appliance audit checkpoint v1\\n" + appliance_id +
b"\\n" + decimal seq + b"\\n" + entry hash hex`` (see :func:`checkpoint_message`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.errors import HallError

GENESIS_HASH = "0" * 64
_ENTRY_TAG = "hall-appliance audit entry v1"
_CHECKPOINT_TAG = b"hall-appliance audit checkpoint v1\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_APPEND_ONLY = "audit log is append-only"

AUDIT_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit_log (
    seq        INTEGER PRIMARY KEY,      -- 1, 2, 3 … no gaps
    at         REAL NOT NULL,            -- unix time, rounded to microseconds
    actor      TEXT NOT NULL,            -- 'system', 'worker-1', 'user:alice', 'cli:root'
    action     TEXT NOT NULL,            -- 'ingest', 'record.view', 'metadata.edit', 'search', …
    target     TEXT,                     -- record id / job id / NULL
    detail     TEXT NOT NULL,            -- canonical JSON, never personal data in plaintext
    sealed     BLOB,                     -- optional ciphertext of personal detail (opaque here)
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq        INTEGER PRIMARY KEY,      -- the audit_log seq this checkpoint covers up to
    at         REAL NOT NULL,
    entry_hash TEXT NOT NULL,            -- hash of audit_log entry `seq`
    key_id     TEXT NOT NULL,            -- fingerprint of the signing public key
    signature  BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_in_sequence BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), '{GENESIS_HASH}')
BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}: entries are appended in sequence, linked to the last'); END;
""" + "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table}\n"
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END;\n"
    for table in ("audit_log", "audit_checkpoints")
    for op in ("update", "delete")
)


class AuditError(HallError):
    """The audit log was used wrongly (outside a transaction, bad arguments) or cannot be read."""

    code = "audit"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    sealed: bytes | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: float
    entry_hash: str
    key_id: str
    signature: bytes


BreakKind = Literal[
    "altered", "removed", "inserted", "reordered", "truncated", "bad_signature", "unknown_key"
]


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    kind: BreakKind
    message: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    last_seq: int
    breaks: list[ChainBreak] = field(default_factory=list)


def _micros(at: float) -> int:
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"audit time must be a finite number, got {at!r}")
    return round(at * 1_000_000)


def entry_hash(
    seq: int,
    at: float,
    actor: str,
    action: str,
    target: str | None,
    detail_json: str,
    sealed: bytes | None,
    prev_hash: str,
) -> str:
    """SHA-256 hex of the v1 canonical encoding of one entry (see the module docstring)."""
    doc = [_ENTRY_TAG, seq, _micros(at), actor, action, target, detail_json, None, prev_hash]
    if sealed is not None:
        doc[7] = bytes(sealed).hex()
    data = json.dumps(doc, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(data.encode("ascii")).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex chars of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def checkpoint_message(appliance_id: str, seq: int, entry_hash: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    if not appliance_id or "\n" in appliance_id:
        raise AuditError(f"appliance id {appliance_id!r} must be non-empty and on one line")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise AuditError(f"checkpoint seq must be a positive integer, got {seq!r}")
    if not isinstance(entry_hash, str) or not _HEX64.fullmatch(entry_hash):
        raise AuditError(f"checkpoint entry hash must be 64 lower-case hex digits, got {entry_hash!r}")
    return b"%s%s\n%d\n%s" % (_CHECKPOINT_TAG, appliance_id.encode(), seq, entry_hash.encode())


def _require_transaction(conn: sqlite3.Connection, what: str) -> None:
    if not conn.in_transaction:
        raise AuditError(
            f"audit {what} must run inside the caller's open transaction (BEGIN IMMEDIATE … COMMIT) "
            "so it commits together with the change it records",
            code="audit_no_transaction",
        )


def _canonical_detail(detail: Mapping[str, Any] | None) -> str:
    if detail is None:
        return "{}"
    if not all(isinstance(k, str) for k in detail):
        raise AuditError("audit detail keys must be strings")
    try:
        return json.dumps(
            dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise AuditError(f"audit detail must be plain JSON (str, number, bool, null, list, dict): {e}") from e


def _head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
    sealed: bytes | None = None,
    at: float | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (use ``BEGIN IMMEDIATE`` so the read of
    the head and the insert are serialised with other writers)."""
    _require_transaction(conn, "append")
    for name, value in (("actor", actor), ("action", action)):
        if not isinstance(value, str) or not value:
            raise AuditError(f"audit {name} must be a non-empty string, got {value!r}")
    if target is not None and not isinstance(target, str):
        raise AuditError(f"audit target must be a string or None, got {target!r}")
    if sealed is not None and not isinstance(sealed, bytes):
        raise AuditError("audit sealed detail must be bytes or None")
    try:
        at_s = _micros(time.time() if at is None else at) / 1_000_000
    except ValueError as e:
        raise AuditError(str(e)) from e
    detail_json = _canonical_detail(detail)
    last_seq, prev = _head(conn)
    seq = last_seq + 1
    digest = entry_hash(seq, at_s, actor, action, target, detail_json, sealed, prev)
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, target, detail, sealed, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, at_s, actor, action, target, detail_json, sealed, prev, digest),
    )
    return AuditEntry(seq, at_s, actor, action, target, json.loads(detail_json), sealed, prev, digest)


def _last_checkpoint(conn: sqlite3.Connection) -> tuple[int, float] | None:
    row = conn.execute("SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), float(row[1]))


def checkpoint(
    conn: sqlite3.Connection, signer: Ed25519PrivateKey, *, appliance_id: str, at: float | None = None
) -> Checkpoint | None:
    """Sign the latest entry (inside the caller's transaction); None if it is already signed."""
    _require_transaction(conn, "checkpoint")
    seq, head = _head(conn)
    last = _last_checkpoint(conn)
    if seq == 0 or (last is not None and last[0] >= seq):
        return None
    signature = signer.sign(checkpoint_message(appliance_id, seq, head))
    cp = Checkpoint(seq, time.time() if at is None else at, head, key_id(signer.public_key()), signature)
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, at, entry_hash, key_id, signature) VALUES (?, ?, ?, ?, ?)",
        (cp.seq, cp.at, cp.entry_hash, cp.key_id, cp.signature),
    )
    return cp


def maybe_checkpoint(
    conn: sqlite3.Connection,
    signer: Ed25519PrivateKey,
    *,
    appliance_id: str,
    every: int = 100,
    max_age_s: float = 3600,
    at: float | None = None,
) -> Checkpoint | None:
    """Checkpoint when ≥ ``every`` entries are unsigned, or some are and ≥ ``max_age_s`` have
    passed since the last checkpoint (since entry 1 when there is none yet)."""
    _require_transaction(conn, "checkpoint")
    now = time.time() if at is None else at
    seq, _ = _head(conn)
    last = _last_checkpoint(conn)
    if last is None:
        first = conn.execute("SELECT at FROM audit_log ORDER BY seq LIMIT 1").fetchone()
        last = (0, now if first is None else float(first[0]))
    if seq <= last[0] or (seq - last[0] < every and now - last[1] < max_age_s):
        return None
    return checkpoint(conn, signer, appliance_id=appliance_id, at=now)


_COLUMNS = "seq, at, actor, action, target, detail, sealed, prev_hash, hash"


def entries(
    conn: sqlite3.Connection,
    *,
    after: int = 0,
    limit: int = 100,
    action: str | None = None,
    target: str | None = None,
    descending: bool = False,
    before: int | None = None,
) -> list[AuditEntry]:
    """Browse entries with ``after < seq < before``, optionally filtered, oldest or newest first."""
    where, args = ["seq > ?"], list[Any]([after])
    for column, value in (("action", action), ("target", target)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if before is not None:
        where.append("seq < ?")
        args.append(before)
    sql = f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq"
    rows = conn.execute(f"{sql} {'DESC' if descending else 'ASC'} LIMIT ?", (*args, limit)).fetchall()
    out = []
    for r in rows:
        try:
            detail = json.loads(r[5])
        except (TypeError, ValueError) as e:
            raise AuditError(f"audit entry {r[0]} has unreadable detail; run the audit verification") from e
        out.append(AuditEntry(r[0], r[1], r[2], r[3], r[4], detail, r[6], r[7], r[8]))
    return out


# --- verification -------------------------------------------------------------------------------
_UNTRUSTED = "the log from {seq} on cannot be trusted — compare with the copy held by the central archive"


def _brk(seq: int, kind: BreakKind, what: str) -> ChainBreak:
    return ChainBreak(seq, kind, f"{what}; {_UNTRUSTED.format(seq=seq)}")


def _span(first: int, last: int) -> str:
    return f"entry {first} was" if first >= last else f"entries {first}–{last} were"


def _own_hash(row: Sequence[Any], seq: int) -> str | None:
    try:
        return entry_hash(seq, row[1], row[2], row[3], row[4], row[5], row[6], row[7])
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


def _original_seq(row: Sequence[Any], upper: int) -> int | None:
    """The seq under which this row's fields hash to its stored hash (it was renumbered or moved),
    searched outwards from its current seq; None if none does (its content was edited)."""
    seq = int(row[0])
    for delta in range(1, upper + 1):
        for cand in (seq - delta, seq + delta):
            if 1 <= cand <= upper and _own_hash(row, cand) == row[8]:
                return cand
    return None


def _classify(rows: list[Sequence[Any]], i: int, prev: str, upper: int) -> ChainBreak:
    """Name the first break, at rows[i] (whose seq is the expected one, prev the trusted hash)."""
    r, e = rows[i], int(rows[i][0])
    pos = {row[8]: j for j, row in reversed(list(enumerate(rows)))}
    pos[GENESIS_HASH] = -1
    j = pos.get(r[7])
    back = 0 if j is None or j < 0 else int(rows[j][0])  # seq of the row r links to
    # the entry that belongs at e (linked to the trusted prev) or r's predecessor sits further down:
    moved = (j is not None and j > i) or any(row[7] == prev for row in rows[i + 1 :])
    consistent = _own_hash(r, e) == r[8]
    orig = None if consistent else _original_seq(r, upper)
    if not consistent and orig is None:
        if i + 1 < len(rows) and rows[i + 1][7] == prev:
            return _brk(e, "inserted", f"audit entry {e} was inserted (entry {e + 1} links past it)")
        return _brk(
            e,
            "altered",
            f"audit entry {e} was altered after it was written (stored hash does not match its content)",
        )
    if moved and (consistent or (orig or 0) > e):
        return _brk(e, "reordered", f"audit entry {e} is out of order (entries were moved or swapped)")
    if consistent and j is None:
        if i == 0:
            return _brk(1, "altered", "audit entry 1 does not link to the start of the log")
        return _brk(e - 1, "altered", f"audit entry {e - 1} was rewritten (entry {e} links to its original)")
    if orig is not None and orig > e:
        return _brk(e, "removed", f"audit {_span(e, orig - 1)} removed and later entries renumbered")
    if j is not None and j < i:
        why = f"the chain goes from entry {back} straight to entry {e}"
        return _brk(back + 1, "inserted", f"audit {_span(back + 1, e - 1)} inserted ({why})")
    first = orig or e
    return _brk(
        first, "inserted", f"audit {_span(first, e - 1)} inserted (entry {e} is the original {first})"
    )


def verify(
    conn: sqlite3.Connection,
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    appliance_id: str,
    expected_last_seq: int | None = None,
    expected_head_hash: str | None = None,
) -> VerifyReport:
    """Recompute the chain and the checkpoint signatures; report what broke, earliest first.

    Checkpoints: each is verified with ``public_keys[key_id]`` (``unknown_key`` if absent,
    ``bad_signature`` if it does not verify); all of them are reported. Only good ones serve as
    anchors below.

    Chain: rows are walked in seq order while each has the next seq, a hash matching its own
    fields and ``prev_hash`` equal to the previous row's hash. The first row failing that is
    diagnosed, and only that one chain break is reported (later findings would be noise):

    - seq jumps over ``n`` → *removed* ``n``; a seq repeated → *inserted*.
    - "moved" below means: ``prev_hash`` names a later row, or a later row links to the trusted
      previous entry (the entry that belongs at ``n`` sits further down the table).
    - hash matches the content (at seq ``n``) but the link is wrong: moved → *reordered* ``n``;
      ``prev_hash`` unknown → *altered* ``n-1`` (the previous row was rewritten consistently: this
      one still points at the original); ``prev_hash`` names an earlier row ``m`` → *inserted*
      ``m+1`` (rows ``m+1..n-1`` were spliced in).
    - hash matches no seq → *altered* ``n`` (content edited), or *inserted* ``n`` if the next row
      links past it; hash matches a higher seq ``o`` (the row was renumbered or moved down the
      seq order) → *reordered* ``n`` if moved, else *removed* ``n`` (entries ``n..o-1`` deleted,
      later rows renumbered); a lower seq → *inserted* (from the row after the one it links to).
    - a good checkpoint whose entry_hash differs from the (chain-valid) row at its seq → *altered*
      at that seq (rows since the previous checkpoint may have been rewritten too).
    - the last row is below a good checkpoint or ``expected_last_seq`` → *truncated* at the first
      missing seq; ``expected_head_hash`` (hash of entry ``expected_last_seq``, or of the last
      entry) differs → *altered*.

    Not detectable without an outside reference (the archive's ``expected_*``): rows appended by
    someone holding the file after the last checkpoint, or the tail cut together with its
    checkpoints.
    """
    owns = not conn.in_transaction
    if owns:
        conn.execute("BEGIN")  # one snapshot of both tables
    try:
        rows: list[Sequence[Any]] = conn.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq").fetchall()
        cps: list[Sequence[Any]] = conn.execute(
            "SELECT seq, entry_hash, key_id, signature FROM audit_checkpoints ORDER BY seq"
        ).fetchall()
    finally:
        if owns:
            conn.execute("COMMIT")
    breaks, anchors = _check_signatures(cps, public_keys, appliance_id)
    seqs = [int(r[0]) for r in rows if isinstance(r[0], int)]
    chain, hashes, last = _walk(rows, max([len(rows), *seqs, *anchors]) + 1)
    good = 0
    for seq, digest in anchors.items():
        if seq in hashes and hashes[seq] != digest:
            what = f"audit entry {seq} does not match its signed checkpoint (entries after {good} may be too)"
            chain.append(_brk(seq, "altered", what))
            break
        good = seq if seq in hashes else good
    if not chain:
        signed = max([*anchors, expected_last_seq or 0])
        if signed > last:
            what = f"the audit log ends at entry {last} but entries up to {signed} were recorded"
            chain.append(_brk(last + 1, "truncated", what))
        head = last if expected_last_seq is None else expected_last_seq
        if expected_head_hash is not None and head in hashes and hashes[head] != expected_head_hash:
            chain.append(_brk(head, "altered", f"audit entry {head} does not match the archive's copy"))
    breaks = sorted([*breaks, *sorted(chain, key=lambda b: b.seq)[:1]], key=lambda b: b.seq)
    return VerifyReport(not breaks, len(rows), len(cps), max(seqs, default=0), breaks)


def _check_signatures(
    cps: list[Sequence[Any]], public_keys: Mapping[str, Ed25519PublicKey], appliance_id: str
) -> tuple[list[ChainBreak], dict[int, str]]:
    """Breaks for checkpoints whose signature fails, and the good ones as {seq: entry_hash}."""
    breaks: list[ChainBreak] = []
    anchors: dict[int, str] = {}
    for seq, digest, kid, sig in cps:
        key = public_keys.get(kid)
        if key is None:
            what = f"checkpoint at audit entry {seq} is signed by unknown key {kid} (a rotated device key"
            breaks.append(_brk(seq, "unknown_key", f"{what} must be passed too; otherwise it is forged)"))
            continue
        try:
            key.verify(sig, checkpoint_message(appliance_id, seq, digest))
        except (InvalidSignature, AuditError, TypeError):
            what = f"checkpoint at audit entry {seq} has an invalid signature (altered or forged)"
            breaks.append(_brk(seq, "bad_signature", what))
        else:
            anchors[seq] = digest
    return breaks, anchors


def _walk(rows: list[Sequence[Any]], upper: int) -> tuple[list[ChainBreak], dict[int, str], int]:
    """Follow the chain in seq order up to the first break: ([break] or [], {seq: hash}, last seq)."""
    hashes: dict[int, str] = {}
    prev, last = GENESIS_HASH, 0
    for i, row in enumerate(rows):
        seq = row[0]
        if not isinstance(seq, int) or seq <= last:
            return [_brk(last + 1, "inserted", f"an extra audit entry follows entry {last}")], hashes, last
        if seq > last + 1:
            what = f"audit entry {last + 1} was removed (the log jumps from entry {last} to {seq})"
            return [_brk(last + 1, "removed", what)], hashes, last
        if _own_hash(row, seq) != row[8] or row[7] != prev:
            return [_classify(rows, i, prev, upper)], hashes, last
        prev, last = row[8], seq
        hashes[seq] = prev
    return [], hashes, last
