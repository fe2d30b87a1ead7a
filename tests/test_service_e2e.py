"""End to end through the real service: files dropped into the watched folder become records,
OCR is accurate on realistic generated forms, bad input is quarantined and never stops the flow."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from appliance.context import open_context
from appliance.samples import generate_documents
from tests.badfiles import BAD_INPUTS, GOOD_INPUTS, decompression_bomb
from tests.conftest import make_settings
from tests.ocr_metrics import cer, edits
from tests.serve_harness import HALL, ServeProcess, wait_until_done

SERVE_ENV = {"HALL_INTAKE__SETTLE_SECONDS": "0.5", "HALL_PIPELINE__WORKERS": "2"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("generated")
    docs = generate_documents(out, 8, seed=20261121, dpi=200)
    return out, docs


def test_dropped_scans_become_records_with_cer_under_3_percent(tmp_path: Path, generated) -> None:  # type: ignore[no-untyped-def]
    src, docs = generated
    settings = make_settings(tmp_path / "data")
    inbox = settings.drop_path(settings.drop_folders[0])
    serve = ServeProcess(settings.data_dir, tmp_path / "serve.log", SERVE_ENV)
    serve.start()
    try:
        for doc in docs:
            data = (src / doc.filename).read_bytes()
            tmp = inbox / f".{doc.filename}.part"  # scanners write under a temporary name ...
            tmp.write_bytes(data)
            tmp.rename(inbox / doc.filename)  # ... and rename when done
        states = wait_until_done(settings.data_dir, len(docs), timeout=600, serve=serve)
    finally:
        assert serve.stop() == 0, serve.log()
    assert states == {"stored": len(docs)}, serve.log()
    assert os.listdir(inbox) == [], "the drop folder ends up empty"
    assert [p.name for p in settings.spool_dir.iterdir()] == []

    ctx = open_context(settings)
    recs = [ctx.store.get(rid, actor="test") for rid in ctx.store.record_ids()]
    by_name = {rec["original_name"]: rec for rec in recs}
    ctx.close()
    pairs: list[tuple[str, str]] = []
    report = []
    for doc in docs:
        rec = by_name[doc.filename]
        assert rec["page_count"] == len(doc.pages)
        assert rec["landed_at"] <= rec["received_at"] <= rec["stored_at"]
        for page, truth in zip(rec["pages"], doc.pages, strict=True):
            hyp = "\n".join(line["text"] for line in page["lines"])
            pairs.append((hyp, truth.text))
            e, n = edits(hyp, truth.text)
            report.append((doc.filename, page["index"], e, n, page["orientation"], truth.upside_down))
            if truth.upside_down:
                assert page["orientation"] == 180, "an upside-down page is turned upright"
            if truth.blank:
                assert page["lines"] == []
            for line in page["lines"]:
                assert len(line["box"]) == 4 and 0.0 <= line["confidence"] <= 1.0
    overall = cer(pairs)
    print("CER per page:", json.dumps(report, ensure_ascii=False))
    print(f"overall CER {overall:.4f} over {sum(n for *_, n, _o, _u in report)} characters")
    assert overall <= 0.03


def test_bad_input_is_quarantined_with_reasons_and_good_files_keep_flowing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    inbox = settings.drop_path(settings.drop_folders[0])
    serve = ServeProcess(settings.data_dir, tmp_path / "serve.log", SERVE_ENV)
    serve.start()
    try:
        for name, make, _code in BAD_INPUTS:
            make(inbox / name)
        decompression_bomb(inbox / "bomb.gif")
        for name, data in GOOD_INPUTS:
            raw = os.fsencode(name) if isinstance(name, str) else name
            with open(os.path.join(os.fsencode(inbox), raw), "wb") as f:
                f.write(data)
        expected = len(BAD_INPUTS) + 1 + len(GOOD_INPUTS)
        wait_until_done(settings.data_dir, expected, timeout=300, serve=serve)
    finally:
        assert serve.stop() == 0, serve.log()
    assert os.listdir(inbox) == []

    out = subprocess.run(
        [HALL, "--data-dir", str(settings.data_dir), "status", "--json"], capture_output=True, check=True
    )
    st = json.loads(out.stdout)
    assert st["stored"] == len(GOOD_INPUTS)
    assert st["quarantined"] == len(BAD_INPUTS) + 1
    assert st["pending"] == 0
    ctx = open_context(settings)
    rows = ctx.queue.conn.execute(
        "SELECT j.id, q.reason_code, q.reason, q.path FROM quarantine q JOIN jobs j ON j.id = q.job_id"
    ).fetchall()
    got = {ctx.queue.name(r["id"]).display: r for r in rows}
    ctx.close()
    for name, _make, code in BAD_INPUTS:
        assert got[name]["reason_code"] == code, (name, dict(got[name]))
        assert got[name]["reason"], name
        kept = Path(got[name]["path"])
        assert kept.exists() or kept.is_symlink(), f"{name}: the bytes are kept in quarantine"
    assert got["bomb.gif"]["reason_code"] in ("unsupported_format", "too_many_pixels")
    assert "png-named.jpg" not in got
