"""档号 numbering (``record_metadata.confirm``): each (全宗-门类·年度-保管期限-机构) sequence counts
0001, 0002, … in confirmation order, with no gap and no duplicate — also when a confirmation is
refused, and across several worker processes killed with SIGKILL at random moments."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance import audit, record_metadata
from appliance.context import Context
from appliance.errors import ConfigError
from appliance.record_metadata import MetadataRejected, RecordStateError
from appliance.samples.records import SyntheticRecord, add_records
from appliance.search import search
from appliance.settings import Settings
from tests.conftest import make_settings
from tests.store_workers import count_rows, kill9, opened, python, valid_metadata

ACTOR = "t"


def expected_code(settings: Settings, year: int, retention: str, item: int) -> str:
    """全宗号-门类代码·年度-保管期限-机构代码-件号, written out here rather than borrowed from the
    code under test."""
    a = settings.archival
    return f"{a.fonds}-{a.category}·{year}-{retention}-{a.department}-{item:04d}"


def sequences(app: Context) -> dict[str, int]:
    return {r[0]: r[1] for r in app.conn.execute("SELECT prefix, last_item FROM code_sequences")}


def confirm_count(app: Context) -> int:
    return len(audit.entries(app.conn, action="record.confirm", limit=100_000))


@pytest.fixture
def numbered(tmp_path: Path) -> Iterator[tuple[Context, list[SyntheticRecord]]]:
    settings = make_settings(tmp_path / "data", archival={"fonds": "0042", "department": "BGS"})
    with opened(settings) as app:
        yield app, add_records(app, 12, seed=41, batch=12)


def _edit(app: Context, rec: SyntheticRecord, **overrides: Any) -> None:
    record_metadata.edit(
        app.store, app.settings, rec.record_id, valid_metadata(rec, **overrides), actor=ACTOR
    )


def test_items_count_up_in_confirmation_order_per_year_and_retention(
    numbered: tuple[Context, list[SyntheticRecord]],
) -> None:
    app, recs = numbered
    settings = app.settings
    first = recs[:5]
    for i, rec in enumerate(first):
        _edit(app, rec, date=f"2024-0{i + 1}-1{i}")
    order = [first[i] for i in (3, 0, 4, 2, 1)]  # not the order they were stored or edited in
    codes = [record_metadata.confirm(app.store, settings, r.record_id, actor=ACTOR) for r in order]
    assert codes == [expected_code(settings, 2024, "D30", n) for n in range(1, 6)]
    assert codes[0] == "0042-WS·2024-D30-BGS-0001"
    for rec, code in zip(order, codes, strict=True):
        row = app.conn.execute("SELECT * FROM records WHERE id=?", (rec.record_id,)).fetchone()
        assert row["status"] == "confirmed" and row["confirmed_by"] == ACTOR
        assert (row["code_prefix"], f"{row['code_prefix']}-{row['code_item']:04d}") == (code[:-5], code)
        assert app.store.get(rec.record_id, actor=ACTOR)["metadata"]["archival_code"] == code
        assert [h.record_id for h in search(app.store, code, actor=ACTOR)] == [rec.record_id]

    # another year and another retention are sequences of their own; 2024/D30 goes on at 0006
    _edit(app, recs[5], date="2023-12-31")
    _edit(app, recs[6], date="2024-06-01", retention="D10")
    _edit(app, recs[7], date="2024-07-01")
    assert record_metadata.confirm(app.store, settings, recs[5].record_id, actor=ACTOR) == expected_code(
        settings, 2023, "D30", 1
    )
    assert record_metadata.confirm(app.store, settings, recs[6].record_id, actor=ACTOR) == expected_code(
        settings, 2024, "D10", 1
    )
    assert record_metadata.confirm(app.store, settings, recs[7].record_id, actor=ACTOR) == expected_code(
        settings, 2024, "D30", 6
    )
    assert sequences(app) == {
        "0042-WS·2024-D30-BGS": 6,
        "0042-WS·2023-D30-BGS": 1,
        "0042-WS·2024-D10-BGS": 1,
    }

    # confirming again is refused and uses up nothing
    before = (sequences(app), confirm_count(app))
    version = app.conn.execute(
        "SELECT meta_version FROM records WHERE id=?", (order[0].record_id,)
    ).fetchone()[0]
    with pytest.raises(RecordStateError, match="already confirmed"):
        record_metadata.confirm(app.store, settings, order[0].record_id, actor=ACTOR)
    assert (sequences(app), confirm_count(app)) == before
    row = app.conn.execute("SELECT * FROM records WHERE id=?", (order[0].record_id,)).fetchone()
    assert (row["meta_version"], row["code_item"]) == (version, 1)
    _edit(app, recs[8], date="2024-08-01")
    assert record_metadata.confirm(app.store, settings, recs[8].record_id, actor=ACTOR) == expected_code(
        settings, 2024, "D30", 7
    ), "the next record gets the next number: nothing was consumed"


def test_a_refused_confirmation_consumes_no_number(numbered: tuple[Context, list[SyntheticRecord]]) -> None:
    app, recs = numbered
    settings = app.settings
    _edit(app, recs[0], date="2024-03-01")
    assert record_metadata.confirm(app.store, settings, recs[0].record_id, actor=ACTOR).endswith("-0001")
    no_title = valid_metadata(recs[1], date="2024-03-02")
    del no_title["title"]
    record_metadata.edit(app.store, settings, recs[1].record_id, no_title, actor=ACTOR)  # fine for a draft
    before = (sequences(app), confirm_count(app))
    for rec, missing in ((recs[1], {"title"}), (recs[2], {"title", "date", "matter", "applicant"})):
        with pytest.raises(MetadataRejected) as e:
            record_metadata.confirm(app.store, settings, rec.record_id, actor=ACTOR)
        assert {p.field for p in e.value.problems} == missing
        row = app.conn.execute("SELECT * FROM records WHERE id=?", (rec.record_id,)).fetchone()
        assert (row["status"], row["code_prefix"], row["code_item"], row["code_token"]) == (
            "draft",
            None,
            None,
            None,
        )
        assert (sequences(app), confirm_count(app)) == before
    # a date in the future is refused at confirmation too
    _edit(app, recs[3], date="2024-03-03")
    with pytest.raises(MetadataRejected):
        record_metadata.confirm(
            app.store, settings, recs[3].record_id, actor=ACTOR, today=dt.date(2024, 3, 2)
        )
    assert (sequences(app), confirm_count(app)) == before
    record_metadata.edit(
        app.store, settings, recs[1].record_id, {"title": recs[1].content.title}, actor=ACTOR
    )
    assert record_metadata.confirm(app.store, settings, recs[1].record_id, actor=ACTOR) == expected_code(
        settings, 2024, "D30", 2
    )


def test_a_lower_case_fonds_in_the_settings_is_refused_or_numbered_in_upper_case(tmp_path: Path) -> None:
    """The settings accept ``fonds = "ab12"`` ([0-9A-Za-z]{1,8}); the 档号 rules want upper case.
    Either the setting is refused when loaded, or confirmation works and writes AB12."""
    try:
        settings = make_settings(tmp_path / "data", archival={"fonds": "ab12"})
    except (ValidationError, ConfigError):
        return
    with opened(settings) as app:
        rec = add_records(app, 1, seed=3)[0]
        _edit(app, rec, date="2024-05-05")
        code = record_metadata.confirm(app.store, settings, rec.record_id, actor=ACTOR)
    assert code == f"AB12-WS·2024-D30-{settings.archival.department}-0001"


# --- several workers, killed at random ------------------------------------------------------------
def test_concurrent_workers_killed_at_random_number_without_gaps_or_duplicates(tmp_path: Path) -> None:
    rng = random.Random(2026)
    settings = make_settings(tmp_path / "data", archival={"fonds": "0042", "department": "BGS"})
    retentions = ["D30", "D10", "Y"]
    with opened(settings) as app:
        recs = add_records(app, 120, seed=77, batch=60)
        for rec in recs:  # two years (2023/2024) x three retentions: up to six sequences
            _edit(app, rec, retention=rng.choice(retentions))
    code = "import sys; from tests.store_workers import confirm_worker as w; w(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), 0.02)"  # noqa: E501
    settings_json = settings.model_dump_json()
    workers: list[subprocess.Popen[bytes] | None] = [None, None, None]
    self_kills_left = 4
    schedule: list[str] = []
    t0 = time.monotonic()

    def start(slot: int) -> None:
        nonlocal self_kills_left
        chance = 0.04 if self_kills_left > 0 else 0.0
        workers[slot] = python(code, settings_json, str(rng.randrange(1 << 30)), str(chance))

    def drafts() -> int:
        return count_rows(settings.catalog_path, "SELECT COUNT(*) FROM records WHERE status='draft'")

    def confirmed_by(pid: int) -> int:
        return count_rows(
            settings.catalog_path, "SELECT COUNT(*) FROM records WHERE confirmed_by=?", f"worker:{pid}"
        )

    try:
        for slot in range(3):
            start(slot)
        external_kills = 0
        next_kill = time.monotonic() + rng.uniform(0.0, 0.2)
        while True:
            left = drafts()
            assert time.monotonic() - t0 < 45, ("the workers did not finish", left, schedule)
            for slot, proc in enumerate(workers):
                assert proc is not None
                status = proc.poll()
                if status is None:
                    continue
                if status == 0 and left == 0:
                    continue
                assert status in (0, -signal.SIGKILL), f"worker {proc.pid} failed with {status}"
                if status == -signal.SIGKILL:
                    self_kills_left -= 1
                    schedule.append(f"{time.monotonic() - t0:6.3f}s worker {slot} pid {proc.pid} killed "
                                    f"itself before a COMMIT ({left} drafts left)")  # fmt: skip
                start(slot)
            if left == 0 and all(p is not None and p.poll() == 0 for p in workers):
                break
            if left > 0 and external_kills < 8 and time.monotonic() >= next_kill:
                busy = [slot for slot, p in enumerate(workers) if p is not None and p.poll() is None
                        and confirmed_by(p.pid) > 0]  # fmt: skip
                if busy:  # kill a worker that is in its confirm loop, not one still starting up
                    slot = rng.choice(busy)
                    proc = workers[slot]
                    assert proc is not None
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                    external_kills += 1
                    done = confirmed_by(proc.pid)
                    schedule.append(f"{time.monotonic() - t0:6.3f}s kill -9 worker {slot} pid {proc.pid}"
                                    f" after {done} confirmations ({left} drafts left)")  # fmt: skip
                    start(slot)
                    next_kill = time.monotonic() + rng.uniform(0.05, 0.4)
            time.sleep(0.01)
    finally:
        for proc in workers:
            if proc is not None:
                kill9(proc)
        print("\n".join(schedule))
    assert external_kills >= 3, ("too few kills landed while the workers were busy", schedule)

    with opened(settings) as app:
        conn = app.conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT * FROM records").fetchall()
        assert {r["status"] for r in rows} == {"confirmed"} and len(rows) == 120
        by_prefix: dict[str, list[int]] = defaultdict(list)
        for r in rows:
            by_prefix[r["code_prefix"]].append(r["code_item"])
        seqs = sequences(app)
        assert set(seqs) == set(by_prefix)
        for prefix, items in by_prefix.items():
            assert sorted(items) == list(range(1, len(items) + 1)), (prefix, sorted(items))
            assert seqs[prefix] == len(items), prefix
        truth = {rec.record_id: rec for rec in recs}
        for r in rows:
            meta = record_metadata.current(app.store, settings, r["id"])
            code = f"{r['code_prefix']}-{r['code_item']:04d}"
            year = dt.date.fromisoformat(meta["date"]).year
            assert meta["date"] == truth[r["id"]].content.apply_date.isoformat()
            assert code == expected_code(settings, year, meta["retention"], r["code_item"])
            assert meta["archival_code"] == code
            assert r["code_token"] == app.store.index.exact("archival_code", code)
            assert conn.execute(
                "SELECT 1 FROM exact_index WHERE kind='archival_code' AND token=? AND record_id=?",
                (r["code_token"], r["id"]),
            ).fetchone()
        confirms = audit.entries(conn, action="record.confirm", limit=1000)
        assert sorted(e.target or "" for e in confirms) == sorted(truth), "one audit entry per confirmation"
        codes = {r["id"]: f"{r['code_prefix']}-{r['code_item']:04d}" for r in rows}
        assert all(e.detail == {"archival_code": codes[e.target or ""]} for e in confirms)
        events = conn.execute("SELECT detail FROM events WHERE type='archival code assignment'").fetchall()
        assert sorted(json.loads(e[0])["archival_code"] for e in events) == sorted(codes.values())
        public = app.keyring.keys.device_key().public_key()
        report = audit.verify(conn, {audit.key_id(public): public}, appliance_id=settings.hall_id)
        assert report.ok, report.breaks
