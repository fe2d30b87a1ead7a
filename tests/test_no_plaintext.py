"""Nothing personal at rest in plaintext: a known name, ID number, address and phone number are
planted in generated scans (and in a file name, and in a broken file that gets quarantined);
after real OCR, metadata editing, confirmation and searches, none of them appears — in UTF-8,
UTF-16 or GBK — in the raw bytes of the catalog, its WAL, the blob store, the quarantine, the
spool or anything logged. And search still finds the record by each of them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

from appliance.samples import generate_documents
from tests.conftest import ROOT, make_settings

HALL = str(ROOT / ".venv" / "bin" / "hall")
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "gbk")
MIN_NEEDLE_BYTES = 6  # shorter byte strings turn up in megabytes of ciphertext by chance


def _run(data: Path, *args: str, logs: list[bytes]) -> str:
    out = subprocess.run([HALL, "-v", "--data-dir", str(data), *args], capture_output=True, timeout=600)
    logs.append(out.stderr)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode()


def _needles(values: dict[str, str]) -> Iterator[tuple[str, str, bytes]]:
    for what, value in values.items():
        for enc in ENCODINGS:
            raw = value.encode(enc)
            if len(raw) >= MIN_NEEDLE_BYTES:
                yield what, enc, raw


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_planted_personal_data_is_nowhere_in_plaintext_and_still_searchable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", store={"wal_autocheckpoint": 0})
    data = settings.data_dir
    [doc] = generate_documents(tmp_path / "gen", 1, seed=4242, formats=("jpeg",), include_blank=False,
                               include_upside_down=False)  # fmt: skip
    f = doc.fields
    planted = {"name": f["name"], "id_number": f["id_number"], "address": f["address"], "phone": f["phone"]}
    # The file name is personal too (clerks name scans after the citizen).
    scan = tmp_path / f"{f['name']}-{f['id_number']}.jpg"
    (tmp_path / "gen" / doc.filename).rename(scan)
    broken = tmp_path / f"{f['name']}-损坏.jpg"  # a truncated JPEG full of personal text: quarantined
    broken.write_bytes(b"\xff\xd8\xff\xe0" + "".join(planted.values()).encode("utf-8") * 3)

    # Keep a connection open so the WAL survives the CLI processes (wal_autocheckpoint=0: every
    # frame written stays in it) and can be inspected.
    keeper = sqlite3.connect(settings.catalog_path)
    keeper.execute("SELECT COUNT(*) FROM meta").fetchone()  # opens the WAL: it is not deleted on close
    logs: list[bytes] = []
    try:
        results = [
            json.loads(x)
            for x in _run(data, "ingest", "--json", str(scan), str(broken), logs=logs).splitlines()
        ]
        assert [r["status"] for r in results] == ["stored", "quarantined"]
        rid = results[0]["record_id"]
        shown = json.loads(_run(data, "show", "--json", rid, logs=logs))
        text = "\n".join(p["text"] for p in shown["pages"])
        for what, value in planted.items():
            assert value in text.replace(" ", ""), (
                f"OCR did not read the planted {what}; the test would prove nothing"
            )
        _run(data, "record", "edit", rid, "--accept-suggestions", "--set", f"申请人={f['name']}", logs=logs)
        _run(data, "record", "confirm", rid, logs=logs)
        for query in (f["name"], f["id_number"], f["address"][3:9], f["phone"]):
            hits = json.loads(_run(data, "search", "--json", query, logs=logs))
            assert [h["record_id"] for h in hits] == [rid], f"search by {query!r} must find the record"
        _run(data, "status", logs=logs)

        wal = settings.catalog_path.with_name("catalog.db-wal")
        assert wal.exists() and wal.stat().st_size > 0, "the WAL must be inspected while it holds data"
        places = list(_files(settings.catalog_path, wal, settings.blob_dir, settings.quarantine_dir,
                             settings.spool_dir, settings.log_dir, settings.scratch_dir))  # fmt: skip
        assert any(p.parent == settings.quarantine_dir for p in places), "the broken file is kept"
        contents = {str(p): p.read_bytes() for p in places}
        contents["(stderr of every hall command)"] = b"\n".join(logs)
        leaks = [
            f"{what} ({enc}) in {where}"
            for where, blob in contents.items()
            for what, enc, needle in _needles(planted | {"file name": scan.stem})
            if needle in blob
        ]
        assert leaks == []
        assert sum(len(b) for b in contents.values()) > 100_000, "the scan really went in (images, index)"
    finally:
        keeper.close()
