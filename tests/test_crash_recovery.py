"""kill -9 of the whole service at random moments during a 50-file batch, then restart: every
file ends as exactly one record, quarantine entry or duplicate, and the catalog is intact."""

from __future__ import annotations

import io
import os
import random
import time
from pathlib import Path

from appliance.context import open_context
from tests.badfiles import BAD_INPUTS, page_image
from tests.conftest import make_settings
from tests.serve_harness import ServeProcess, wait_until_done


def _batch(seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    files: list[tuple[str, bytes]] = []
    for i in range(42):
        img = page_image(f"record {i} {rng.randrange(10**6)}", size=(900, 700))
        buf = io.BytesIO()
        fmt = rng.choice(["JPEG", "PNG"])
        img.save(buf, fmt)
        files.append((f"scan-{i:02d}.{'jpg' if fmt == 'JPEG' else 'png'}", buf.getvalue()))
    for i in range(5):  # rescans of the same paper: byte-identical duplicates
        files.append((f"rescan-{i}.bin", files[i][1]))
    for name, make, _ in BAD_INPUTS[:3]:  # a few bad files (regular files only)
        p = Path(f"/tmp/_hall_crash_{os.getpid()}_{name}")
        make(p)
        files.append((f"bad-{name}", p.read_bytes()))
        p.unlink()
    assert len(files) == 50
    rng.shuffle(files)
    return files


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    settings = make_settings(tmp_path / "data")
    inbox = settings.drop_path(settings.drop_folders[0])
    files = _batch(11)
    env = {"HALL_INTAKE__SETTLE_SECONDS": "0.3", "HALL_PIPELINE__WORKERS": "2"}
    serve = ServeProcess(settings.data_dir, tmp_path / "serve.log", env)
    pending = list(files)
    kills = 0
    try:
        serve.start()
        while pending or kills < 5:
            for name, data in pending[:12]:
                (inbox / name).write_bytes(data)
            pending = pending[12:]
            time.sleep(rng.uniform(0.3, 3.0))
            if kills < 5:
                serve.kill9()
                kills += 1
                serve.start()
        wait_until_done(settings.data_dir, len(files), timeout=600, serve=serve)
    finally:
        assert serve.stop() == 0, serve.log()

    ctx = open_context(settings)
    conn = ctx.conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    jobs = conn.execute("SELECT * FROM jobs").fetchall()
    job_names = {j["id"]: ctx.queue.name(j["id"]).display for j in jobs}
    assert sorted(job_names.values()) == sorted(n for n, _ in files), "every file is exactly one job"
    assert {j["state"] for j in jobs} <= {"stored", "quarantined", "duplicate"}

    def fingerprint(data: bytes) -> str:
        h = ctx.store.index.fingerprint()
        h.update(data)
        return h.hexdigest()

    by_name = {n: fingerprint(d) for n, d in files}
    records = {r["id"]: r for r in conn.execute("SELECT * FROM records")}
    distinct_good = {by_name[n] for n, _ in files if not n.startswith("bad-")}
    assert {r["fingerprint"] for r in records.values()} == distinct_good, "one record per distinct good file"
    for j in jobs:
        name = job_names[j["id"]]
        assert j["fingerprint"] == by_name[name]
        if j["state"] == "stored":
            assert records[j["record_id"]]["fingerprint"] == j["fingerprint"]
            assert ctx.store.master(j["record_id"], actor="test") == dict(files)[name]
        elif j["state"] == "duplicate":
            assert records[j["duplicate_of"]]["fingerprint"] == j["fingerprint"]
        else:
            assert name.startswith("bad-")
            assert ctx.store.quarantined_bytes(j["id"]) == dict(files)[name]
    pages = conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
    assert pages == sum(r["page_count"] for r in records.values())
    ctx.close()
    assert os.listdir(inbox) == []
    assert list(settings.spool_dir.iterdir()) == []
    print(f"{kills} kills; {len(records)} records, {len(jobs)} jobs")
