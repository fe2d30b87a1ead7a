"""Encrypted-store benchmark.

1. **Search latency** over N synthetic records (default 100,000) written straight into an
   encrypted store (form text from the sample generator as OCR text, no images, no OCR): p50/p95
   per query kind — applicant name, ID number, phone, address phrase, 档号, a word on every form,
   one character, a phrase found nowhere — through :func:`appliance.search.search` (candidates,
   decryption, confirmation, snippet, audit entry). The records are generated once and kept
   under ``--cache`` (delete it to regenerate).
2. **Ingest cost of encryption + indexing per page**, measured in the same run: the record
   store with encryption and the blind index vs the same store without them (page blobs of the
   size a real page produces, the same rows in plaintext, no index), and that difference as a
   share of the per-page pipeline time (real clean-up + OCR of generated pages).

Usage: .venv/bin/python benchmarks/store_bench.py [--records 100000] [--cache DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from appliance import record_metadata
from appliance.catalog import transaction
from appliance.context import initialise, open_context
from appliance.samples.records import add_records
from appliance.search import search
from appliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class DiscardBlobStore:
    """Page images are not written for the synthetic records: search never reads them, and
    400,000 fsync'd files would only measure the disk."""

    def put(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def get(self, ref: str) -> bytes:
        raise KeyError(ref)

    def exists(self, ref: str) -> bool:
        return False


def _settings(data: Path, sync: str = "FULL") -> Settings:
    return Settings.model_validate({"data_dir": data, "store": {"synchronous": sync}})


def build(data: Path, count: int) -> list[dict[str, str]]:
    """Generate the store (NORMAL sync while loading; searching reopens it with FULL)."""
    truth_path = data / "bench-truth.json"
    if truth_path.exists():
        return list(json.loads(truth_path.read_text(encoding="utf-8")))
    shutil.rmtree(data, ignore_errors=True)
    settings = _settings(data, "NORMAL")
    initialise(settings)
    app = open_context(settings)
    app.store.blobs = DiscardBlobStore()
    t0 = time.monotonic()

    def progress(n: int) -> None:
        if n % 10_000 < 500:
            rate = n / (time.monotonic() - t0)
            print(f"  {n} records ({rate:.0f}/s)", flush=True)

    recs = add_records(app, count, seed=2026, batch=500, progress=progress)
    truth = []
    rng = random.Random(5)
    for r in rng.sample(recs, min(300, len(recs))):
        c = r.content
        meta = {
            "title": c.title,
            "date": c.apply_date.isoformat(),
            "matter": c.matter,
            "applicant": c.person.name,
        }
        record_metadata.edit(app.store, settings, r.record_id, meta, actor="bench")
        code = record_metadata.confirm(app.store, settings, r.record_id, actor="bench")
        truth.append(
            {
                "record_id": r.record_id,
                "name": c.person.name,
                "id_number": c.person.id_number,
                "phone": c.person.phone,
                "address": c.person.address,
                "code": code,
            }
        )
    app.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    app.close()
    truth_path.write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    print(f"  built {count} records in {time.monotonic() - t0:.0f} s", flush=True)
    return truth


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def bench_search(data: Path, truth: list[dict[str, str]], rounds: int) -> dict[str, Any]:
    app = open_context(_settings(data))
    rng = random.Random(9)
    kinds: dict[str, list[str]] = {
        "name": [t["name"] for t in truth],
        "id_number": [t["id_number"] for t in truth],
        "phone": [t["phone"] for t in truth],
        "address_phrase": [t["address"][3:8] for t in truth],
        "archival_code": [t["code"] for t in truth],
        "common_word": ["申请表", "公民身份号码", "承诺"],
        "one_char": ["迁", "婚", "林"],
        "no_match": ["量子纠缠实验室", "不存在的短语"],
    }
    for q in ("申请表", truth[0]["name"]):  # warm the page cache once
        search(app.store, q, actor="bench")
    out: dict[str, Any] = {}
    every: list[float] = []
    for kind, pool in kinds.items():
        times, hits = [], []
        for _ in range(rounds):
            q = rng.choice(pool)
            t0 = time.perf_counter()
            res = search(app.store, q, actor="bench")
            times.append((time.perf_counter() - t0) * 1000)
            hits.append(len(res))
        every += times
        out[kind] = {
            "p50_ms": round(_pct(times, 0.5), 2),
            "p95_ms": round(_pct(times, 0.95), 2),
            "mean_hits": round(statistics.mean(hits), 1),
        }
        print(
            f"  {kind:15} p50 {out[kind]['p50_ms']:7.2f} ms  p95 {out[kind]['p95_ms']:7.2f} ms  "
            f"hits {out[kind]['mean_hits']}",
            flush=True,
        )
    out["all"] = {
        "p50_ms": round(_pct(every, 0.5), 2),
        "p95_ms": round(_pct(every, 0.95), 2),
        "n": len(every),
    }
    app.close()
    return out


def _real_page_sizes(tmp: Path) -> tuple[dict[str, int], float, list[str]]:
    """Sizes of the blobs one real page produces, the pipeline's time per page, its OCR lines."""
    from appliance.jobqueue import Job
    from appliance.ocr import load_engine
    from appliance.pipeline import Pipeline
    from appliance.samples import generate_documents

    settings = _settings(tmp / "pipe")
    initialise(settings)
    app = open_context(settings)
    docs = generate_documents(tmp / "gen", 4, seed=77, formats=("jpeg",), include_blank=False)
    pipe = Pipeline(settings, app.queue, app.store, app.spool, load_engine(settings.ocr))
    pages = 0
    t0 = time.perf_counter()
    for d in docs:
        taken = app.spool.take(tmp / "gen" / d.filename, counter="bench", root=None, move=False)
        job = app.queue.claim_id(taken.job_id, "bench")
        assert isinstance(job, Job)
        outcome = pipe.process(job)
        pages += outcome.pages
    per_page = (time.perf_counter() - t0) / max(pages, 1)
    rid = app.store.record_ids()[0]
    rec = app.store.get(rid, actor="bench")
    sizes = {
        k: len(app.store.page_blob(rid, 0, k, actor="bench")) for k in ("cleaned", "thumbnail", "bilevel")
    }
    sizes["master"] = rec["size"] // max(rec["page_count"], 1)
    lines = [ln["text"] for ln in rec["pages"][0]["lines"]]
    app.close()
    return sizes, per_page, lines


def bench_ingest_cost(tmp: Path, pages: int) -> dict[str, Any]:
    from appliance.blobstore import FileBlobStore
    from appliance.catalog import connect
    from appliance.jobqueue import Job, NewJob
    from appliance.samples import records as synth

    sizes, pipeline_s, lines = _real_page_sizes(tmp)
    text = "\n".join(lines)
    # With encryption + blind index: the real store path (synthetic pages of the real sizes).

    settings = _settings(tmp / "enc")
    initialise(settings)
    app = open_context(settings)
    rng = random.Random(1)
    blobs = {k: rng.randbytes(v) for k, v in sizes.items()}
    t0 = time.perf_counter()
    for _ in range(pages):
        synth_page = synth._page(0, lines, blobs["cleaned"])
        synth_page.thumbnail, synth_page.bilevel = blobs["thumbnail"], blobs["bilevel"]
        job_id = os.urandom(16).hex()
        with transaction(app.conn):
            app.queue.insert(
                NewJob(job_id, "b", "scan.jpg", b"scan.jpg", "cli", os.urandom(32).hex(), 1, None, 0.0)
            )
            app.conn.execute("UPDATE jobs SET state='processing', worker='b' WHERE id=?", (job_id,))
            job = Job.from_row(app.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())
        writer = app.store.begin(job, "jpeg", blobs["master"] + os.urandom(8))
        writer.add_page(synth_page)
        writer.commit()
    enc_s = (time.perf_counter() - t0) / pages
    app.close()
    # Without: the same blobs (content-addressed, fsync'd) and rows in plaintext, no index, no audit.
    conn = connect(tmp / "plain.db", settings.store)
    conn.executescript("""CREATE TABLE jobs(id TEXT PRIMARY KEY, name TEXT, fp TEXT, state TEXT);
        CREATE TABLE records(id TEXT PRIMARY KEY, job_id TEXT, fp TEXT UNIQUE, master TEXT, meta TEXT);
        CREATE TABLE pages(record_id TEXT, idx INT, cleaned TEXT, thumb TEXT, bilevel TEXT, text TEXT,
                           lines TEXT);""")
    plain = FileBlobStore(tmp / "plain-blobs")
    t0 = time.perf_counter()
    for _ in range(pages):
        job_id = os.urandom(16).hex()
        with transaction(conn):
            conn.execute(
                "INSERT INTO jobs VALUES (?,?,?,?)", (job_id, "scan.jpg", os.urandom(32).hex(), "processing")
            )
        refs = [plain.put(blobs[k] + os.urandom(8)) for k in ("master", "cleaned", "thumbnail", "bilevel")]
        ocr = json.dumps(
            [{"text": t, "box": [[0, 0]] * 4, "confidence": 0.9} for t in lines], ensure_ascii=False
        )
        with transaction(conn):
            rid = os.urandom(16).hex()
            conn.execute(
                "INSERT INTO records VALUES (?,?,?,?,?)", (rid, job_id, os.urandom(32).hex(), refs[0], "{}")
            )
            conn.execute(
                "INSERT INTO pages VALUES (?,?,?,?,?,?,?)", (rid, 0, refs[1], refs[2], refs[3], text, ocr)
            )
            conn.execute("UPDATE jobs SET state='stored' WHERE id=?", (job_id,))
    plain_s = (time.perf_counter() - t0) / pages
    conn.close()
    added = enc_s - plain_s
    out = {
        "page_blob_bytes": sizes,
        "store_with_encryption_and_index_ms": round(enc_s * 1000, 2),
        "store_without_ms": round(plain_s * 1000, 2),
        "ratio_with_vs_without": round(enc_s / plain_s, 2),
        "added_ms_per_page": round(added * 1000, 2),
        "pipeline_ms_per_page": round(pipeline_s * 1000, 1),
        "added_share_of_pipeline": round(added / pipeline_s, 4),
    }
    print(
        f"  store per page: {out['store_with_encryption_and_index_ms']} ms with encryption + index, "
        f"{out['store_without_ms']} ms without (x{out['ratio_with_vs_without']}); added "
        f"{out['added_ms_per_page']} ms = {100 * out['added_share_of_pipeline']:.2f}% of the "
        f"{out['pipeline_ms_per_page']} ms pipeline time per page",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=40, help="Queries per query kind.")
    ap.add_argument("--pages", type=int, default=40, help="Pages stored for the ingest-cost comparison.")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "store")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    data = args.cache / f"records-{args.records}"
    print(f"search over {args.records} encrypted records ({data})", flush=True)
    truth = build(data, args.records)
    db = data / "catalog.db"
    print(f"  catalog {db.stat().st_size / 1e6:.0f} MB", flush=True)
    result: dict[str, Any] = {"records": args.records, "catalog_mb": round(db.stat().st_size / 1e6)}
    result["search"] = bench_search(data, truth, args.rounds)
    print("ingest cost of encryption + indexing", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result["ingest"] = bench_ingest_cost(Path(tmp), args.pages)
    print(json.dumps(result, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
