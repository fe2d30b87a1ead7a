"""firmware_scripts/: the box's hardening, checked with the real tools — shellcheck, Debian's
systemd-analyze, nft -c, Samba's testparm, openssl (through hall-update) — and the appliance's
side of it (systemd credentials, sd_notify readiness and watchdog)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.context import open_context
from appliance.keys import install_from_credentials
from appliance.settings import Settings
from tests.conftest import make_settings
from tests.serve_harness import ServeProcess

FW = Path(__file__).resolve().parents[1] / "firmware_scripts"
SCRIPTS = ("install.sh", "hall-update", "hall-drop-shares")
UNITS = ("hall.service", "hall-archive.service", "hall-firewall.service")
SANDBOX = {
    "User": "hall",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ReadWritePaths": "/var/lib/hall /srv/hall-drop",
    "MemoryMax": "2G",
    "Restart": "on-failure",
    "WatchdogSec": "60",
    "Type": "notify",
    "LoadCredential": "keys:/etc/hall/keys",
}


def _run(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


# --- shell and units ----------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_passes_shellcheck(script: str) -> None:
    done = _run("shellcheck", "--severity=style", str(FW / script))
    assert done.returncode == 0 and not done.stdout, done.stdout
    assert os.access(FW / script, os.X_OK)


def _unit(name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (FW / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, value)
    return out


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    """The units as installed, except that /opt/hall/current points at a stub release in a tmp
    folder (systemd-analyze insists that ExecStart= binaries exist). Unknown keys only warn, so
    the test fails on any output at all, not just on the exit status."""
    release = tmp_path / "opt/hall/current/bin"
    release.mkdir(parents=True)
    (release / "hall").write_text("#!/bin/sh\nexit 0\n")
    (release / "hall").chmod(0o755)
    text = (
        (FW / "systemd" / unit).read_text().replace("/opt/hall/current", str(tmp_path / "opt/hall/current"))
    )
    (tmp_path / unit).write_text(text)
    done = _run("systemd-analyze", "verify", "--man=no", str(tmp_path / unit))
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr
    bogus = tmp_path / "bogus.service"
    bogus.write_text(text.replace("[Service]", "[Service]\nProtectSystm=strict"))
    assert (
        "Unknown key" in _run("systemd-analyze", "verify", "--man=no", str(bogus)).stderr
    )  # the check sees typos


def test_the_appliance_unit_is_sandboxed() -> None:
    unit = _unit("hall.service")
    for key, want in SANDBOX.items():
        assert unit.get(key) == want, (key, unit.get(key))
    assert "/var/lib/hall" in unit["ExecStart"] and unit["ExecStartPre"].endswith(
        "keys from-credentials --to /run/hall/keys"
    )
    assert unit["Environment"] == "HALL_KEYS__DIR=/run/hall/keys"


# --- install.sh ---------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, tuple[str, int, int, str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        kind = "d" if p.is_dir() else "f"
        digest = "" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(p.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, digest)
    return out


EXPECTED_MODES = {
    "etc/hall": 0o750,
    "etc/hall/keys": 0o700,
    "etc/hall/nftables.nft": 0o640,
    "etc/hall/site.nft": 0o640,
    "etc/hall/hall.env": 0o640,
    "etc/hall/update.pub": 0o644,
    "etc/systemd/system/hall.service": 0o644,
    "usr/lib/sysusers.d/hall.conf": 0o644,
    "usr/lib/tmpfiles.d/hall.conf": 0o644,
    "usr/local/sbin/hall-update": 0o755,
    "usr/local/sbin/hall-drop-shares": 0o755,
    "var/lib/hall": 0o700,
    "srv/hall-drop": 0o750,
    "opt/hall/releases": 0o755,
}


def _install(dest: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    return _run(str(FW / "install.sh"), env={**os.environ, "DESTDIR": str(dest), "UPDATE_PUBKEY": str(pub)})


def test_install_twice_gives_the_same_tree_and_keeps_site_files(tmp_path: Path) -> None:
    pub = tmp_path / "update.pub"
    pub.write_bytes(_keypair()[1])
    dest = tmp_path / "root"
    assert _install(dest, pub).returncode == 0
    first = _tree(dest)
    for path, mode in EXPECTED_MODES.items():
        assert path in first and first[path][1] == mode, (path, oct(first.get(path, ("", 0))[1]))
    assert all(uid == os.geteuid() for _, _, uid, _ in first.values())
    assert _install(dest, pub).returncode == 0
    assert _tree(dest) == first
    site = dest / "etc/hall/site.nft"
    site.write_text(site.read_text().replace("10.20.1.0/24", "192.168.7.0/24"))
    os.chmod(dest / "etc/hall", 0o755)  # drift
    assert _install(dest, pub).returncode == 0
    assert "192.168.7.0/24" in site.read_text(), "a site file was overwritten"
    assert stat.S_IMODE((dest / "etc/hall").stat().st_mode) == 0o750, "a drifted mode is put back"


# --- nftables -----------------------------------------------------------------------------------
def test_the_ruleset_passes_nft_check_and_a_broken_site_file_does_not(tmp_path: Path) -> None:
    shutil.copy(FW / "nftables/hall.nft", tmp_path / "nftables.nft")
    shutil.copy(FW / "nftables/site.example.nft", tmp_path / "site.nft")
    ok = _run("nft", "-c", "-I", str(tmp_path), "-f", str(tmp_path / "nftables.nft"))
    assert ok.returncode == 0, ok.stderr
    site = (tmp_path / "site.nft").read_text()
    (tmp_path / "site.nft").write_text("\n".join(x for x in site.splitlines() if "SCANNER_NET" not in x))
    bad = _run("nft", "-c", "-I", str(tmp_path), "-f", str(tmp_path / "nftables.nft"))
    assert bad.returncode != 0 and "SCANNER_NET" in bad.stderr
    rules = (FW / "nftables/hall.nft").read_text()
    for chain in ("input", "forward", "output"):
        assert f"hook {chain} priority filter; policy drop;" in rules


# --- Samba --------------------------------------------------------------------------------------
def test_drop_shares_pass_testparm_with_no_guest_access(tmp_path: Path) -> None:
    made = _run(
        str(FW / "hall-drop-shares"), "--scanner-net", "10.20.2.0/26", "--interface", "eth0", "c1", "c2"
    )
    assert made.returncode == 0, made.stderr
    conf = tmp_path / "smb.conf"
    conf.write_text(made.stdout)
    parsed = _run("testparm", "-s", str(conf))
    assert parsed.returncode == 0 and "Loaded services file OK" in parsed.stderr, parsed.stderr
    sections = {part.split("]")[0]: part for part in parsed.stdout.split("\n[")[1:]}
    assert list(sections) == ["global", "scan-c1", "scan-c2"]
    shares = [sections["scan-c1"], sections["scan-c2"]]
    for s, c in zip(shares, ("c1", "c2"), strict=True):
        assert (
            f"valid users = scan-{c}" in s and f"path = /srv/hall-drop/{c}" in s and "force user = hall" in s
        )
        assert "guest ok = Yes" not in s
    assert "map to guest = never" in made.stdout and "restrict anonymous = 2" in sections["global"]
    assert "hosts allow = 10.20.2.0/26 127.0.0.1" in parsed.stdout
    for bad in (["--scanner-net", "10.20.2.0/26", "C1;rm"], ["--scanner-net", "everyone", "c1"], ["c1"]):
        assert _run(str(FW / "hall-drop-shares"), *bad).returncode == 2


# --- signed updates -----------------------------------------------------------------------------
def _keypair() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem


def _bundle(path: Path, key: Ed25519PrivateKey, version: str, doctor_rc: int = 0, evil: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            "bin/hall": f'#!/bin/sh\n[ "$3" = doctor ] && exit {doctor_rc}\nexit 0\n'.encode(),
            "VERSION": version.encode(),
        }
        if evil:
            files["../escape"] = b"x"
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    bundle = path / f"hall-{version}.tar.gz"
    bundle.write_bytes(buf.getvalue())
    manifest = f"hall-update/1\nversion {version}\nsha256 {hashlib.sha256(bundle.read_bytes()).hexdigest()}\n"
    Path(f"{bundle}.manifest").write_text(manifest)
    Path(f"{bundle}.manifest.sig").write_bytes(key.sign(manifest.encode()))
    return bundle


def _update(root: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    return _run(str(FW / "hall-update"), "--root", str(root), "--no-restart", str(bundle))


def _current(root: Path) -> str | None:
    link = root / "opt/hall/current"
    return os.readlink(link) if link.is_symlink() else None


def test_updates_install_only_when_signed_and_roll_back_when_doctor_fails(tmp_path: Path) -> None:
    key, pem = _keypair()
    root = tmp_path / "root"
    (root / "etc/hall").mkdir(parents=True)
    (root / "etc/hall/update.pub").write_bytes(pem)
    first = _update(root, _bundle(tmp_path, key, "1.0.0"))
    assert first.returncode == 0, first.stderr
    assert _current(root) == "releases/1.0.0"

    flipped = _bundle(tmp_path, key, "1.1.0")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    refused = _update(root, flipped)
    assert refused.returncode == 1 and "SHA-256" in refused.stderr and _current(root) == "releases/1.0.0"

    forged = _bundle(tmp_path, Ed25519PrivateKey.generate(), "1.2.0")  # signed by another key
    refused = _update(root, forged)
    assert refused.returncode == 1 and "signature does not verify" in refused.stderr
    altered = _bundle(tmp_path, key, "1.3.0")
    Path(f"{altered}.manifest").write_text(Path(f"{altered}.manifest").read_text().replace("1.3.0", "9.9.9"))
    assert "signature does not verify" in _update(root, altered).stderr
    assert "parent paths" in _update(root, _bundle(tmp_path, key, "1.4.0", evil=True)).stderr
    assert sorted(p.name for p in (root / "opt/hall/releases").iterdir()) == ["1.0.0"], (
        "nothing refused was unpacked"
    )

    broken = _update(root, _bundle(tmp_path, key, "2.0.0", doctor_rc=1))
    assert broken.returncode == 1 and "rolling back to releases/1.0.0" in broken.stderr
    assert _current(root) == "releases/1.0.0" and not (root / "opt/hall/releases/2.0.0").exists()

    good = _update(root, _bundle(tmp_path, key, "2.1.0"))
    assert good.returncode == 0 and _current(root) == "releases/2.1.0"
    again = _update(root, _bundle(tmp_path, key, "2.2.0"))
    assert again.returncode == 0
    assert sorted(p.name for p in (root / "opt/hall/releases").iterdir()) == [
        "2.1.0",
        "2.2.0",
    ]  # running + previous


# --- the appliance under systemd ----------------------------------------------------------------
def test_keys_handed_over_as_credentials_open_the_catalog(tmp_path: Path) -> None:
    box = make_settings(tmp_path / "d")
    cred = tmp_path / "credentials"
    cred.mkdir()
    for p in box.keys_dir.rglob("*"):
        if p.is_file():
            (cred / f"keys_{p.name}").write_bytes(p.read_bytes())
    (cred / "other_secret").write_bytes(b"not a key")
    run = tmp_path / "run/keys"
    written = install_from_credentials(cred, run)
    assert sorted(Path(w).relative_to(run).as_posix() for w in written) == sorted(
        p.relative_to(box.keys_dir).as_posix() for p in box.keys_dir.rglob("*") if p.is_file()
    )
    raw = box.model_dump()
    raw["keys"] = {**raw["keys"], "dir": run}
    ctx = open_context(Settings.model_validate(raw))
    ctx.close()
    assert stat.S_IMODE((run / "index.key").stat().st_mode) == 0o400


def test_hall_serve_tells_systemd_it_is_ready_and_feeds_the_watchdog(tmp_path: Path) -> None:
    box = make_settings(tmp_path / "d", replication={"enabled": False}, transfer={"enabled": False})
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(1.0)
    serve = ServeProcess(
        box.data_dir, tmp_path / "serve.log", {"NOTIFY_SOCKET": addr, "HALL_PIPELINE__WORKERS": "1"}
    )
    messages: list[str] = []
    serve.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(m.startswith("WATCHDOG=1") for m in messages):
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
        assert messages and messages[0].startswith("READY=1"), messages
        assert any(m == "WATCHDOG=1" for m in messages), messages
    finally:
        status = serve.stop()
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except (TimeoutError, OSError):
                break
        sock.close()
    assert status == 0 and "STOPPING=1" in messages, (status, messages[-3:])
