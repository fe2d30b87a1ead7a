"""The recovery kit: Shamir k-of-n over GF(256), share texts with check digits, and the printed
sheets, read back the way a technician would (rasterised PDF → QR decoder)."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.keys import FileKeySource
from appliance.settings import Settings
from provisioning import shamir
from provisioning.kit_sheets import write_sheets
from provisioning.recovery_kit import KitError, SheetShare, combine_shares, make_kit, write_keys
from tests.conftest import make_settings

HALL = str(Path(sys.executable).with_name("hall"))


# --- the field and the scheme -------------------------------------------------------------------
def test_gf256_is_a_field() -> None:
    for a in range(1, 256):
        assert shamir.gf_mul(a, shamir.gf_div(1, a)) == 1  # every element has an inverse
    assert shamir.gf_mul(0x57, 0x83) == 0xC1  # the FIPS-197 worked example
    assert all(shamir.gf_mul(a, 0) == 0 == shamir.gf_mul(0, a) for a in range(256))


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=80), k=st.integers(2, 5), extra=st.integers(0, 3), data=st.data()
)
def test_any_k_shares_restore_and_k_minus_1_do_not(
    secret: bytes, k: int, extra: int, data: st.DataObject
) -> None:
    n = k + extra
    shares = shamir.split(secret, k, n)
    assert len({s.x for s in shares}) == n and all(1 <= s.x <= n for s in shares)
    chosen = data.draw(st.permutations(shares)).copy()[:k]
    assert shamir.combine(chosen) == secret
    assert shamir.combine(shares) == secret  # more than k is fine too
    if k > 2:
        assert shamir.combine(chosen[: k - 1]) != secret or len(secret) < 4  # 2^-32 chance of a tie


def test_fewer_than_k_shares_say_nothing_about_the_secret() -> None:
    """With k = 2 a single share byte is uniform whatever the secret: over many splits of two
    very different secrets, the first share takes every byte value about equally often."""
    counts = {b"\x00": [0] * 256, b"\xff": [0] * 256}
    for secret, hist in counts.items():
        for _ in range(256 * 40):
            hist[shamir.split(secret, 2, 3)[0].y[0]] += 1
    for hist in counts.values():
        assert min(hist) > 10 and max(hist) < 80, (min(hist), max(hist))  # expected 40 each


def test_split_refuses_impossible_thresholds() -> None:
    for k, n in ((1, 3), (4, 3), (2, 256)):
        with pytest.raises(shamir.ShareError):
            shamir.split(b"key", k, n)
    with pytest.raises(shamir.ShareError, match="twice"):
        s = shamir.split(b"key", 2, 3)
        shamir.combine([s[0], s[0]])


# --- the kit ------------------------------------------------------------------------------------
@pytest.fixture
def box(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


def _keys(keys_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(keys_dir)): p.read_bytes() for p in keys_dir.rglob("*.key")}


def test_any_two_of_three_sheets_restore_the_keys_one_does_not(box: Settings, tmp_path: Path) -> None:
    keys = FileKeySource(box.keys_dir)
    kit = make_kit(keys, box.hall_id, 2, 3)
    assert kit.key_names == [f"kek/{keys.kek_ids()[0]}.key", "index.key"]
    original = _keys(box.keys_dir)
    for pair in itertools.permutations(kit.shares, 2):
        out = tmp_path / f"restored-{abs(hash(pair))}"
        write_keys(combine_shares(pair, hall_id=box.hall_id), out)
        assert _keys(out) == original
        assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o400 for p in out.rglob("*.key"))
    for one in kit.shares:
        with pytest.raises(KitError, match="2 of the 3 sheets are needed"):
            combine_shares([one])
    with pytest.raises(KitError, match="2 of the 3"):
        combine_shares([kit.shares[0], kit.shares[0]])  # the same sheet twice is still one share
    for key in original.values():  # no sheet holds a key in the clear
        for share in kit.shares:
            assert key not in SheetShare.decode(share).y and key.hex() not in share


def test_damaged_foreign_and_forged_shares_are_refused(box: Settings, tmp_path: Path) -> None:
    keys = FileKeySource(box.keys_dir)
    kit, other = make_kit(keys, box.hall_id, 2, 3), make_kit(keys, box.hall_id, 2, 3)
    typo = kit.shares[0][:10] + ("A" if kit.shares[0][10] != "A" else "B") + kit.shares[0][11:]
    with pytest.raises(KitError, match="damaged or mistyped"):
        combine_shares([typo, kit.shares[1]])
    with pytest.raises(KitError, match="different recovery kits"):
        combine_shares([kit.shares[0], other.shares[1]])
    with pytest.raises(KitError, match="belong to hall"):
        combine_shares(kit.shares[:2], hall_id="another-hall")
    s = SheetShare.decode(kit.shares[1])
    forged = SheetShare(s.hall_id, s.k, s.n, s.x, s.kit_id, s.fingerprint, bytes(b ^ 1 for b in s.y)).encode()
    with pytest.raises(KitError, match="forged or altered"):
        combine_shares([kit.shares[0], forged])
    # typing help: case, spaces and dashes between the groups do not matter
    spaced = " ".join(kit.shares[0][i : i + 5] for i in range(0, len(kit.shares[0]), 5)).lower()
    assert combine_shares([spaced, kit.shares[2]]) == combine_shares(kit.shares[:2])


def test_restoring_never_overwrites_a_different_key(box: Settings, tmp_path: Path) -> None:
    kit = make_kit(FileKeySource(box.keys_dir), box.hall_id, 2, 2)
    entries = combine_shares(kit.shares)
    write_keys(entries, box.keys_dir)  # the same keys: nothing to do
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "index.key").write_bytes(b"x" * 32)
    with pytest.raises(KitError, match="different key"):
        write_keys(entries, tmp_path / "k")


def test_printed_sheets_scan_back_into_the_keys(box: Settings, tmp_path: Path) -> None:
    """Render the PDFs, rasterise them as a printer/scanner would see them, decode the QR codes
    and restore the keys from any two sheets."""
    kit = make_kit(FileKeySource(box.keys_dir), box.hall_id, 2, 3)
    files = write_sheets(kit, "城关镇政务服务大厅", tmp_path / "sheets")
    assert len(files) == 3 and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    scanned = []
    for f in files:
        pdf = pdfium.PdfDocument(f)
        assert len(pdf) == 1
        w, h = pdf[0].get_size()
        assert abs(w - 595) < 2 and abs(h - 842) < 2  # A4 in points
        image = pdf[0].render(scale=150 / 72).to_pil().convert("L")
        pdf.close()
        codes = zxingcpp.read_barcodes(image)
        assert len(codes) == 1 and codes[0].format == zxingcpp.BarcodeFormat.QRCode
        scanned.append(codes[0].text)
    assert scanned == kit.shares
    out = tmp_path / "restored"
    write_keys(combine_shares(scanned[1:]), out)
    assert _keys(out) == _keys(box.keys_dir)


def _scan(pdf_path: Path) -> str:
    pdf = pdfium.PdfDocument(pdf_path)
    try:
        image = pdf[0].render(scale=150 / 72).to_pil().convert("L")
    finally:
        pdf.close()
    return str(zxingcpp.read_barcodes(image)[0].text)


def test_the_cli_prints_an_audited_kit_and_restores_from_typed_shares(box: Settings, tmp_path: Path) -> None:
    sheets = str(tmp_path / "sheets")
    made = subprocess.run(
        [HALL, "--data-dir", str(box.data_dir), "provision", "kit", "--out", sheets, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    assert (info["k"], info["n"], len(info["files"])) == (2, 3, 3)
    with closing(sqlite3.connect(box.catalog_path)) as db:
        targets = db.execute("SELECT target FROM audit_log WHERE action='keys.recovery_kit'").fetchall()
    assert targets == [(box.hall_id,)]
    inside = subprocess.run(
        [HALL, "--data-dir", str(box.data_dir), "provision", "kit", "--out", str(box.data_dir / "kit")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inside.returncode == 2 and "inside the data dir" in inside.stderr
    shares = [_scan(Path(f)) for f in info["files"]]
    typed = f"not a share\n{shares[2]}\n{shares[0]}\n"  # a wrong line is refused and asked again
    out = tmp_path / "new-keys"
    restored = subprocess.run(
        [HALL, "provision", "restore-keys", "--out", str(out), "--hall-id", box.hall_id],
        input=typed, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "not a recovery-kit share" in restored.stderr
    assert _keys(out) == _keys(box.keys_dir)
