"""The audit chain: append inside transactions, signed checkpoints, and verification that names
the first altered / removed / inserted / reordered / truncated entry. Tampering is done as an
attacker holding the file would: drop the triggers, then edit the SQLite tables directly."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import audit
from appliance.audit import GENESIS_HASH, AuditError, ChainBreak, VerifyReport
from appliance.errors import HallError
from tests.conftest import ROOT

APP = "hall-test-01"
N = 200
EVERY = 25  # checkpoints at 25, 50, …, 200
ACTIONS = ["ingest", "record.view", "metadata.edit", "export", "search", "shred", "keys.rotate", "transfer"]
T0 = 1_700_000_000.123456

# --- helpers ------------------------------------------------------------------------------------


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def keys_of(*signers: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {audit.key_id(s.public_key()): s.public_key() for s in signers}


def add(conn: sqlite3.Connection, signer: Ed25519PrivateKey, i: int, *, every: int = EVERY) -> None:
    conn.execute("BEGIN IMMEDIATE")
    audit.append(
        conn,
        actor=f"user:u{i % 3}" if i % 2 else "system",
        action=ACTIONS[i % len(ACTIONS)],
        target=f"rec-{i}" if i % 5 else None,
        detail={"n": i, "pages": i % 7, "note": "ü 档号"},
        sealed=bytes([i % 256]) * 12 if i % 4 == 0 else None,
        at=T0 + i * 0.5,
    )
    audit.maybe_checkpoint(conn, signer, appliance_id=APP, every=every, max_age_s=1e9, at=T0 + i)
    conn.execute("COMMIT")


def verify(conn: sqlite3.Connection, signer: Ed25519PrivateKey, **kw: object) -> VerifyReport:
    return audit.verify(conn, keys_of(signer), appliance_id=APP, **kw)  # type: ignore[arg-type]


def first_break(report: VerifyReport) -> ChainBreak:
    assert not report.ok, "tampering went undetected"
    assert report.breaks
    return report.breaks[0]


def drop_triggers(conn: sqlite3.Connection) -> None:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    assert len(names) == 5
    for name in names:
        conn.execute(f"DROP TRIGGER {name}")


def row(conn: sqlite3.Connection, seq: int) -> list[object]:
    return list(conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone())


def rehash(r: list[object]) -> str:
    return audit.entry_hash(*r[:8])  # type: ignore[arg-type]


def shift(conn: sqlite3.Connection, from_seq: int, by: int) -> None:
    """Renumber seq >= from_seq by ``by`` without tripping the primary key halfway."""
    conn.execute("UPDATE audit_log SET seq = -(seq + ?) WHERE seq >= ?", (by, from_seq))
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq < 0")


@pytest.fixture(scope="session")
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, signer: Ed25519PrivateKey) -> Path:
    path = tmp_path_factory.mktemp("audit") / "template.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(audit.AUDIT_SCHEMA)
        for i in range(1, N + 1):
            add(conn, signer, i)
    return path


@pytest.fixture
def log(template: Path, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A copy of an intact 200-entry log with checkpoints every 25 entries."""
    path = tmp_path / "audit.db"
    shutil.copy(template, path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with closing(connect(tmp_path / "empty.db")) as conn:
        conn.executescript(audit.AUDIT_SCHEMA)
        yield conn


# --- intact logs --------------------------------------------------------------------------------


def test_intact_log_verifies(log: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    report = verify(log, signer)
    assert report == VerifyReport(ok=True, entries=N, checkpoints=N // EVERY, last_seq=N, breaks=[])
    seqs = [r[0] for r in log.execute("SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(1, N + 1))
    assert row(log, 1)[7] == GENESIS_HASH
    assert all(row(log, i)[7] == row(log, i - 1)[8] for i in range(2, N + 1))
    assert verify(log, signer, expected_last_seq=N, expected_head_hash=row(log, N)[8]).ok
    assert verify(log, signer, expected_last_seq=100, expected_head_hash=row(log, 100)[8]).ok


def test_empty_log_verifies(empty: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    assert verify(empty, signer) == VerifyReport(True, 0, 0, 0, [])
    br = first_break(verify(empty, signer, expected_last_seq=3))
    assert (br.seq, br.kind) == (1, "truncated")


def test_verify_works_with_row_factory_and_inside_a_transaction(
    log: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    log.row_factory = sqlite3.Row
    assert verify(log, signer).ok
    log.execute("BEGIN")
    assert verify(log, signer).ok
    assert log.in_transaction  # verify leaves the caller's transaction alone
    log.execute("COMMIT")
    assert [e.seq for e in audit.entries(log, limit=3)] == [1, 2, 3]


def test_append_returns_what_was_stored(empty: sqlite3.Connection) -> None:
    empty.execute("BEGIN IMMEDIATE")
    e1 = audit.append(empty, actor="cli:root", action="keys.rotate", at=T0)
    e2 = audit.append(
        empty,
        actor="user:alice",
        action="metadata.edit",
        target="rec-9",
        detail={"b": 1, "a": [1, 2]},
        sealed=b"\x00ct",
    )
    empty.execute("COMMIT")
    assert (e1.seq, e1.prev_hash, e1.detail, e1.target, e1.sealed) == (1, GENESIS_HASH, {}, None, None)
    assert (e2.seq, e2.prev_hash) == (2, e1.hash)
    stored = row(empty, 2)
    assert stored[5] == '{"a":[1,2],"b":1}'  # canonical JSON: sorted keys, compact
    assert stored[6] == b"\x00ct"
    assert audit.entries(empty, after=1) == [e2]


def test_append_outside_a_transaction_is_refused(empty: sqlite3.Connection) -> None:
    with pytest.raises(AuditError, match="inside the caller's open transaction") as info:
        audit.append(empty, actor="system", action="ingest")
    assert isinstance(info.value, HallError)
    assert info.value.code == "audit_no_transaction"
    with pytest.raises(AuditError, match="transaction"):
        audit.checkpoint(empty, Ed25519PrivateKey.generate(), appliance_id=APP)
    assert empty.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actor": "", "action": "ingest"},
        {"actor": "system", "action": ""},
        {"actor": "system", "action": "ingest", "target": 5},
        {"actor": "system", "action": "ingest", "detail": {"x": object()}},
        {"actor": "system", "action": "ingest", "detail": {"x": float("nan")}},
        {"actor": "system", "action": "ingest", "detail": {1: "x"}},
        {"actor": "system", "action": "ingest", "sealed": "text"},
        {"actor": "system", "action": "ingest", "at": float("inf")},
    ],
)
def test_append_rejects_bad_arguments(empty: sqlite3.Connection, kwargs: dict[str, object]) -> None:
    empty.execute("BEGIN IMMEDIATE")
    with pytest.raises(AuditError):
        audit.append(empty, **kwargs)  # type: ignore[arg-type]
    empty.execute("ROLLBACK")


def test_entry_commits_and_rolls_back_with_the_callers_transaction(empty: sqlite3.Connection) -> None:
    empty.execute("BEGIN IMMEDIATE")
    audit.append(empty, actor="system", action="ingest", target="job-1")
    empty.execute("ROLLBACK")
    empty.execute("BEGIN IMMEDIATE")
    assert audit.append(empty, actor="system", action="ingest", target="job-2").seq == 1
    empty.execute("COMMIT")
    assert [e.target for e in audit.entries(empty)] == ["job-2"]


def test_triggers_make_the_tables_append_only(log: sqlite3.Connection) -> None:
    for sql in [
        "UPDATE audit_log SET actor = 'x' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 200",
        "UPDATE audit_checkpoints SET key_id = 'x'",
        "DELETE FROM audit_checkpoints",
    ]:
        with pytest.raises(sqlite3.IntegrityError, match="audit log is append-only"):
            log.execute(sql)
    h = row(log, 200)[8]
    for seq, prev in [(5, row(log, 4)[8]), (202, h), (201, GENESIS_HASH)]:  # overwrite, gap, wrong link
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            log.execute(
                "INSERT OR REPLACE INTO audit_log VALUES (?, 1.0, 'a', 'b', NULL, '{}', NULL, ?, 'h')",
                (seq, prev),
            )
    assert log.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0] == N
    assert log.execute("SELECT COUNT(*) FROM audit_checkpoints").fetchone()[0] == N // EVERY


# --- the hash encoding --------------------------------------------------------------------------


def test_entry_hash_is_pinned() -> None:
    """The encoding is a wire format (the archive recomputes it): changing it breaks old logs."""
    args = (7, T0, "user:alice", "record.view", "rec-1", '{"a":1}', b"\x01\xff", GENESIS_HASH)
    expected = json.dumps(
        [
            "hall-appliance audit entry v1",
            7,
            1_700_000_000_123_456,
            "user:alice",
            "record.view",
            "rec-1",
            '{"a":1}',
            "01ff",
            GENESIS_HASH,
        ],
        separators=(",", ":"),
    )
    import hashlib

    assert audit.entry_hash(*args) == hashlib.sha256(expected.encode()).hexdigest()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((None, None), ("None", None)),  # NULL target vs the string "None"
        ((None, None), ("", None)),
        ((None, None), (None, b"")),  # no sealed blob vs an empty one
        (("x", None), (None, b"x")),
    ],
)
def test_entry_hash_is_unambiguous(
    a: tuple[str | None, bytes | None], b: tuple[str | None, bytes | None]
) -> None:
    def h(target: str | None, sealed: bytes | None) -> str:
        return audit.entry_hash(1, T0, "system", "ingest", target, "{}", sealed, GENESIS_HASH)

    assert h(*a) != h(*b)
    assert audit.entry_hash(1, T0, "ab", "c", None, "{}", None, GENESIS_HASH) != audit.entry_hash(
        1, T0, "a", "bc", None, "{}", None, GENESIS_HASH
    )
    assert audit.entry_hash(1, T0, "a", "b", None, "{}", None, GENESIS_HASH) != audit.entry_hash(
        1, T0 + 1e-6, "a", "b", None, "{}", None, GENESIS_HASH
    )


@settings(max_examples=200, deadline=None)
@given(at=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False))
def test_time_survives_the_sqlite_round_trip(at: float) -> None:
    """The REAL read back from SQLite hashes the same as the value append() hashed."""
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        conn.executescript(audit.AUDIT_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        entry = audit.append(conn, actor="system", action="ingest", at=at)
        conn.execute("COMMIT")
        stored = row(conn, 1)
        assert stored[1] == entry.at
        assert abs(entry.at - at) <= 5e-7 + abs(at) * 1e-15
        assert rehash(stored) == stored[8] == entry.hash
        # text round trip too (a dump printed with 17 significant digits)
        assert audit.entry_hash(1, float(f"{stored[1]:.17g}"), *stored[2:8]) == entry.hash  # type: ignore[arg-type]


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_signs_the_latest_entry(empty: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    empty.execute("BEGIN IMMEDIATE")
    assert audit.checkpoint(empty, signer, appliance_id=APP) is None  # nothing to sign
    audit.append(empty, actor="system", action="ingest")
    e2 = audit.append(empty, actor="system", action="ingest")
    cp = audit.checkpoint(empty, signer, appliance_id=APP, at=T0)
    assert cp is not None
    assert audit.checkpoint(empty, signer, appliance_id=APP) is None  # already signed
    empty.execute("COMMIT")
    assert (cp.seq, cp.entry_hash, cp.at) == (2, e2.hash, T0)
    kid = audit.key_id(signer.public_key())
    assert cp.key_id == kid and len(kid) == 16 and int(kid, 16) >= 0
    message = b"hall-appliance audit checkpoint v1\n" + APP.encode() + b"\n2\n" + e2.hash.encode()
    assert audit.checkpoint_message(APP, 2, e2.hash) == message
    signer.public_key().verify(cp.signature, message)  # raises if wrong
    with pytest.raises(AuditError):
        audit.checkpoint_message("two\nlines", 2, e2.hash)


def test_maybe_checkpoint_by_count_and_by_age(empty: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    def step(at: float) -> audit.Checkpoint | None:
        empty.execute("BEGIN IMMEDIATE")
        audit.append(empty, actor="system", action="ingest", at=at)
        cp = audit.maybe_checkpoint(empty, signer, appliance_id=APP, every=3, max_age_s=60, at=at)
        empty.execute("COMMIT")
        return cp

    assert [step(T0 + i) is not None for i in range(7)] == [False, False, True, False, False, True, False]
    cp = step(T0 + 5 + 60)  # 60 s after the checkpoint at entry 6
    assert cp is not None and cp.seq == 8
    empty.execute("BEGIN IMMEDIATE")
    assert audit.maybe_checkpoint(empty, signer, appliance_id=APP, at=T0 + 10_000) is None  # nothing new
    empty.execute("COMMIT")
    assert [r[0] for r in empty.execute("SELECT seq FROM audit_checkpoints")] == [3, 6, 8]


def test_rotated_device_keys(empty: sqlite3.Connection) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    for i in range(1, 41):
        add(empty, old if i <= 20 else new, i, every=10)
    assert audit.verify(empty, keys_of(old, new), appliance_id=APP).ok
    br = first_break(audit.verify(empty, keys_of(new), appliance_id=APP))
    assert (br.seq, br.kind) == (10, "unknown_key")
    assert [b.seq for b in audit.verify(empty, keys_of(old), appliance_id=APP).breaks] == [30, 40]
    assert "not a known device key" in br.message or "unknown key" in br.message
    br = first_break(audit.verify(empty, keys_of(old, new), appliance_id="another-box"))
    assert (br.seq, br.kind) == (10, "bad_signature")


# --- browsing -----------------------------------------------------------------------------------


def test_entries_filters_and_pages(log: sqlite3.Connection) -> None:
    page = audit.entries(log, after=10, limit=5)
    assert [e.seq for e in page] == [11, 12, 13, 14, 15]
    assert page[0].detail == {"n": 11, "note": "ü 档号", "pages": 4}
    assert [e.seq for e in audit.entries(log, limit=3, descending=True)] == [200, 199, 198]
    assert [e.seq for e in audit.entries(log, limit=2, descending=True, before=198)] == [197, 196]
    shreds = audit.entries(log, action="shred", limit=1000)
    assert {e.action for e in shreds} == {"shred"} and len(shreds) == N // len(ACTIONS)
    assert [e.seq for e in audit.entries(log, target="rec-7")] == [7]


# --- tampering ----------------------------------------------------------------------------------
POSITIONS = [1, 2, 57, 100, 199, 200]


def tamper(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], object]) -> None:
    drop_triggers(conn)
    fn(conn)


@pytest.mark.parametrize("k", POSITIONS)
def test_edited_detail_is_altered(log: sqlite3.Connection, signer: Ed25519PrivateKey, k: int) -> None:
    tamper(log, lambda c: c.execute("UPDATE audit_log SET detail = '{\"n\":0}' WHERE seq = ?", (k,)))
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (k, "altered")
    assert f"audit entry {k} was altered" in br.message and "central archive" in br.message


@pytest.mark.parametrize("column", ["at", "actor", "action", "target", "sealed", "prev_hash", "hash"])
def test_every_column_is_covered(log: sqlite3.Connection, signer: Ed25519PrivateKey, column: str) -> None:
    value = {"at": 1.5, "sealed": b"x", "prev_hash": "f" * 64, "hash": "e" * 64}.get(column, "forged")
    tamper(log, lambda c: c.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 120", (value,)))
    br = first_break(verify(log, signer))
    assert br.seq == 120 and br.kind == "altered"


@pytest.mark.parametrize("k", POSITIONS)
def test_rewritten_row_with_consistent_hash_is_altered(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, k: int
) -> None:
    def rewrite(c: sqlite3.Connection) -> None:
        r = row(c, k)
        r[2] = "user:mallory"
        c.execute("UPDATE audit_log SET actor = ?, hash = ? WHERE seq = ?", (r[2], rehash(r), k))

    tamper(log, rewrite)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (k, "altered")
    assert f"audit entry {k}" in br.message


@pytest.mark.parametrize("k", POSITIONS)
def test_deleted_row_is_removed(log: sqlite3.Connection, signer: Ed25519PrivateKey, k: int) -> None:
    tamper(log, lambda c: c.execute("DELETE FROM audit_log WHERE seq = ?", (k,)))
    br = first_break(verify(log, signer))
    # the last entry gone is a truncation (the checkpoint at 200 vouches for it)
    assert (br.seq, br.kind) == (k, "truncated" if k == N else "removed")
    assert str(k) in br.message


@pytest.mark.parametrize("k", POSITIONS)
def test_deleted_and_renumbered_is_removed(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, k: int
) -> None:
    def delete(c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM audit_log WHERE seq = ?", (k,))
        shift(c, k + 1, -1)

    tamper(log, delete)
    assert [r[0] for r in log.execute("SELECT seq FROM audit_log ORDER BY seq")] == list(range(1, N))
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (k, "truncated" if k == N else "removed")


def test_several_deleted_and_renumbered(log: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    def delete(c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM audit_log WHERE seq BETWEEN 80 AND 84")
        shift(c, 85, -5)

    tamper(log, delete)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (80, "removed")
    assert "80–84" in br.message


@pytest.mark.parametrize("k", [1, 2, 57, 100, 200])  # forged row takes seq k, the original k moves to k+1
@pytest.mark.parametrize("consistent", [True, False])
def test_forged_row_spliced_in_is_inserted(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, k: int, consistent: bool
) -> None:
    def insert(c: sqlite3.Connection) -> None:
        prev = GENESIS_HASH if k == 1 else row(c, k - 1)[8]
        shift(c, k, +1)
        forged = [k, T0 + k * 0.5, "user:mallory", "record.view", "rec-x", "{}", None, prev, ""]
        forged[8] = rehash(forged) if consistent else "d" * 64
        c.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", forged)

    tamper(log, insert)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (k, "inserted")
    assert f"entry {k}" in br.message


def test_forged_row_with_rehashed_successor_is_inserted(
    log: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    """The attacker also re-hashes the displaced original for its new seq (but cannot fix its link)."""

    def insert(c: sqlite3.Connection) -> None:
        prev = row(c, 49)[8]
        shift(c, 50, +1)
        forged = [50, T0, "user:mallory", "export", None, "{}", None, prev, ""]
        forged[8] = rehash(forged)
        c.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", forged)
        moved = row(c, 51)
        c.execute("UPDATE audit_log SET hash = ? WHERE seq = 51", (rehash(moved),))

    tamper(log, insert)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (50, "inserted")


@pytest.mark.parametrize(("j", "k"), [(1, 2), (1, 200), (50, 51), (100, 150), (199, 200)])
def test_swapped_rows_are_reordered(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, j: int, k: int
) -> None:
    def swap(c: sqlite3.Connection) -> None:
        rj, rk = row(c, j), row(c, k)
        sql = (
            "UPDATE audit_log SET at=?, actor=?, action=?, target=?, detail=?, sealed=?, prev_hash=?, hash=?"
        )
        c.execute(f"{sql} WHERE seq = ?", (*rk[1:], j))
        c.execute(f"{sql} WHERE seq = ?", (*rj[1:], k))

    tamper(log, swap)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (j, "reordered")
    assert f"audit entry {j}" in br.message


def test_swapped_and_rehashed_rows_are_reordered(log: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    def swap(c: sqlite3.Connection) -> None:
        rj, rk = row(c, 30), row(c, 31)
        for seq, r in [(30, rk), (31, rj)]:
            r[0] = seq
            c.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
            c.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*r[:8], rehash(r)))

    tamper(log, swap)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (30, "reordered")


@pytest.mark.parametrize("n_cut", [1, 10, 24, 60])
def test_cut_tail_below_a_checkpoint_is_truncated(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, n_cut: int
) -> None:
    tamper(log, lambda c: c.execute("DELETE FROM audit_log WHERE seq > ?", (N - n_cut,)))
    report = verify(log, signer)
    br = first_break(report)
    assert (br.seq, br.kind) == (N - n_cut + 1, "truncated")
    assert report.last_seq == N - n_cut
    assert f"ends at entry {N - n_cut}" in br.message


def test_tail_cut_with_its_checkpoints_needs_the_archive(
    log: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    def cut(c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM audit_log WHERE seq > 180")
        c.execute("DELETE FROM audit_checkpoints WHERE seq > 180")

    tamper(log, cut)
    assert verify(log, signer).ok  # indistinguishable from a log that is simply shorter …
    br = first_break(verify(log, signer, expected_last_seq=N))  # … unless the archive says otherwise
    assert (br.seq, br.kind) == (181, "truncated")


def test_rewritten_head_without_checkpoint_needs_the_archive(
    empty: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    for i in range(1, 31):
        add(empty, signer, i, every=25)
    head = row(empty, 30)[8]

    def rewrite(c: sqlite3.Connection) -> None:
        r = row(c, 30)
        r[3] = "export"
        c.execute("UPDATE audit_log SET action = ?, hash = ? WHERE seq = 30", (r[3], rehash(r)))

    tamper(empty, rewrite)
    assert verify(empty, signer).ok  # unsigned tail: nothing in the file contradicts it
    br = first_break(verify(empty, signer, expected_last_seq=30, expected_head_hash=head))
    assert (br.seq, br.kind) == (30, "altered")


def test_chain_rewritten_from_an_entry_on_is_caught_by_the_next_checkpoint(
    log: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    def rechain(c: sqlite3.Connection) -> None:
        prev = row(c, 59)[8]
        for seq in range(60, N + 1):
            r = row(c, seq)
            r[7] = prev
            if seq == 60:
                r[2] = "user:mallory"
            prev = rehash(r)
            c.execute(
                "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (r[2], r[7], prev, seq),
            )

    tamper(log, rechain)
    br = first_break(verify(log, signer))
    assert (br.seq, br.kind) == (75, "altered")  # first checkpoint after the rewrite
    assert "after 50" in br.message


@pytest.mark.parametrize("cp_seq", [25, 100, 200])
def test_tampered_checkpoint_signature(
    log: sqlite3.Connection, signer: Ed25519PrivateKey, cp_seq: int
) -> None:
    def flip(c: sqlite3.Connection) -> None:
        sig = bytearray(
            c.execute("SELECT signature FROM audit_checkpoints WHERE seq = ?", (cp_seq,)).fetchone()[0]
        )
        sig[5] ^= 1
        c.execute("UPDATE audit_checkpoints SET signature = ? WHERE seq = ?", (bytes(sig), cp_seq))

    tamper(log, flip)
    report = verify(log, signer)
    assert [(b.seq, b.kind) for b in report.breaks] == [(cp_seq, "bad_signature")]


def test_checkpoint_moved_to_a_forged_row_fails_its_signature(
    log: sqlite3.Connection, signer: Ed25519PrivateKey
) -> None:
    """Rewrite entry 100 and point its checkpoint at the new hash: the signature no longer fits."""

    def rewrite(c: sqlite3.Connection) -> None:
        r = row(c, 100)
        r[2] = "user:mallory"
        new = rehash(r)
        c.execute("UPDATE audit_log SET actor = ?, hash = ? WHERE seq = 100", (r[2], new))
        c.execute("UPDATE audit_log SET prev_hash = ? WHERE seq = 101", (new,))
        c.execute("UPDATE audit_log SET hash = ? WHERE seq = 101", (rehash(row(c, 101)),))
        c.execute("UPDATE audit_checkpoints SET entry_hash = ? WHERE seq = 100", (new,))

    tamper(log, rewrite)
    report = verify(log, signer)
    assert (report.breaks[0].seq, report.breaks[0].kind) == (100, "bad_signature")
    assert not report.ok


def test_checkpoint_by_an_unknown_key(log: sqlite3.Connection, signer: Ed25519PrivateKey) -> None:
    mallory = Ed25519PrivateKey.generate()

    def forge(c: sqlite3.Connection) -> None:
        c.execute("DELETE FROM audit_checkpoints WHERE seq = 150")
        h = str(row(c, 150)[8])
        sig = mallory.sign(audit.checkpoint_message(APP, 150, h))
        c.execute(
            "INSERT INTO audit_checkpoints VALUES (150, ?, ?, ?, ?)",
            (T0, h, audit.key_id(mallory.public_key()), sig),
        )

    tamper(log, forge)
    report = verify(log, signer)
    assert [(b.seq, b.kind) for b in report.breaks] == [(150, "unknown_key")]
    # a forger who claims the real key id fails the signature check instead
    log.execute(
        "UPDATE audit_checkpoints SET key_id = ? WHERE seq = 150", (audit.key_id(signer.public_key()),)
    )
    assert [(b.seq, b.kind) for b in verify(log, signer).breaks] == [(150, "bad_signature")]


# --- concurrency --------------------------------------------------------------------------------


def _writer(path: str, name: str, count: int, key: bytes, start_at: float) -> None:
    signer = Ed25519PrivateKey.from_private_bytes(key)
    with closing(connect(Path(path))) as conn:
        time.sleep(max(0.0, start_at - time.time()))  # both processes append at the same time
        for i in range(count):
            conn.execute("BEGIN IMMEDIATE")
            audit.append(conn, actor=name, action="ingest", target=f"{name}-{i}", detail={"i": i})
            audit.maybe_checkpoint(conn, signer, appliance_id=APP, every=37)
            conn.execute("COMMIT")
            time.sleep(0.001)  # let the other writer in, so the two really interleave


def test_two_processes_append_without_forking_the_chain(tmp_path: Path, signer: Ed25519PrivateKey) -> None:
    path = tmp_path / "shared.db"
    with closing(connect(path)) as conn:
        conn.executescript(audit.AUDIT_SCHEMA)
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = signer.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    # Plain subprocesses (not multiprocessing, whose resource tracker would outlive the test).
    start_at = time.time() + 3.0
    code = (
        "import sys; from tests.test_audit import _writer; "
        "_writer(sys.argv[1], sys.argv[2], 200, bytes.fromhex(sys.argv[3]), float(sys.argv[4]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path), f"worker-{n}", key.hex(), repr(start_at)], cwd=ROOT
        )
        for n in (1, 2)
    ]
    for p in procs:
        assert p.wait(60) == 0
    with closing(connect(path)) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM audit_log ORDER BY seq")]
        assert seqs == list(range(1, 401))
        actors = {r[0]: r[1] for r in conn.execute("SELECT actor, COUNT(*) FROM audit_log GROUP BY actor")}
        assert actors == {"worker-1": 200, "worker-2": 200}
        order = [r[0] for r in conn.execute("SELECT actor FROM audit_log ORDER BY seq")]
        assert sum(a != b for a, b in pairwise(order)) > 10  # they did interleave
        report = verify(conn, signer)
        assert report.ok, report.breaks
        assert report.checkpoints >= 400 // 37
