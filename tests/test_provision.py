"""``hall provision init`` by answer file against a real receiver on loopback: settings, keys,
catalog, TLS certificate, enrollment with the archive's keys checked; re-running changes nothing;
a changed answer changes only that; wrong archive keys and a hall id change are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from appliance.keys import FileKeySource, raw_public
from appliance.settings import Settings
from provisioning.doctor import run as doctor
from sync import protocol
from sync.archive import ArchiveServer, ArchiveSettings, init_archive, issue_enrollment_token, public_keys

HALL = str(Path(sys.executable).with_name("hall"))
HALL_ID = "hall-3301-01"


@dataclass
class Archive:
    dir: Path
    settings: ArchiveSettings
    server: ArchiveServer

    def token(self) -> str:
        return issue_enrollment_token(self.settings, HALL_ID)

    def key_ids(self) -> list[str]:
        return sorted(protocol.key_id(k) for k in public_keys(self.dir))


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    d = tmp_path / "archive"
    init_archive(d, "central")
    settings = ArchiveSettings.load(d, {})
    server = ArchiveServer(settings, "127.0.0.1", 0).start()
    try:
        yield Archive(d, settings, server)
    finally:
        server.stop()


def _toml(v: object) -> str:
    return json.dumps(v, ensure_ascii=False)


def _answers(
    path: Path,
    tmp: Path,
    archive: Archive,
    *,
    hall_name: str = "城关镇政务服务大厅",
    key_ids: list[str] | None = None,
) -> Path:
    lines = [
        f"hall_id = {_toml(HALL_ID)}",
        f"hall_name = {_toml(hall_name)}",
        "[[drop_folders]]", 'counter = "1号窗口"', f"path = {_toml(str(tmp / 'drop/c1'))}",
        "[[drop_folders]]", 'counter = "2号窗口"', f"path = {_toml(str(tmp / 'drop/c2'))}",
        "[archival]", 'fonds = "3301"', 'department = "ZWFW"',
        "[replication]", 'target = "file"', f"file_path = {_toml(str(tmp / 'replica'))}",
        "[transfer]", f"archive_url = {_toml(archive.server.url)}",
        "[provision]", f"enrollment_token = {_toml(archive.token())}",
        f"archive_key_ids = {_toml(key_ids if key_ids is not None else archive.key_ids())}",
        'tls_names = ["hall-box.lan", "127.0.0.1"]',
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _provision(data_dir: Path, answers: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HALL, "--data-dir", str(data_dir), "provision", "init", "--answers", str(answers), *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_provision_by_answer_file_enrolls_and_rerunning_changes_nothing(
    archive: Archive, tmp_path: Path
) -> None:
    data = tmp_path / "box"
    answers = _answers(tmp_path / "answers.toml", tmp_path, archive)
    dry = _provision(data, answers, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    steps = json.loads(dry.stdout)["steps"]
    assert any(s.startswith("set hall_id = 'hall-3301-01'") for s in steps), steps
    assert any("create the keys" in s for s in steps) and any(
        s.startswith("enroll with the archive") for s in steps
    )
    assert not (data / "catalog.db").exists(), "a dry run wrote something"

    done = _provision(data, answers, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    settings = Settings.load(data)
    assert (settings.hall_id, settings.hall_name, settings.archival.fonds) == (
        HALL_ID,
        "城关镇政务服务大厅",
        "3301",
    )
    assert [f.counter for f in settings.drop_folders] == ["1号窗口", "2号窗口"]
    assert settings.transfer.archive_url == archive.server.url
    assert not settings.local_archive_dir.exists(), "a box of a real archive holds no local archive"
    keys = FileKeySource(settings.keys_dir)
    assert (
        sorted([protocol.key_id(keys.archive_key()), protocol.key_id(keys.archive_signing_key())])
        == archive.key_ids()
    )
    assert raw_public(keys.archive_key()) == raw_public(public_keys(archive.dir)[0])
    cert = x509.load_pem_x509_certificate((data / "tls/ui.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["hall-box.lan", "127.0.0.1"]
    assert result["tls_fingerprint"] and (data / "tls/ui.key").stat().st_mode & 0o777 == 0o400
    checks = {o.name: o for o in doctor(settings, only=["keys", "drop_folders", "archive"])}
    assert all(o.passed for o in checks.values()), checks
    assert HALL_ID in checks["archive"].measured and "central" in checks["archive"].measured

    again = _provision(data, answers)  # the token in the file is used up: nothing needs it
    assert again.returncode == 0 and "nothing to change" in again.stdout, (again.stdout, again.stderr)
    renamed = _answers(tmp_path / "answers2.toml", tmp_path, archive, hall_name="城关镇便民服务中心")
    dry = json.loads(_provision(data, renamed, "--dry-run", "--json").stdout)
    assert dry["steps"] == ["set hall_name = '城关镇便民服务中心' (was '城关镇政务服务大厅')"]
    assert _provision(data, renamed).returncode == 0
    assert tomllib.loads((data / "hall.toml").read_text())["hall_name"] == "城关镇便民服务中心"


def test_an_archive_answering_other_keys_is_refused(archive: Archive, tmp_path: Path) -> None:
    answers = _answers(tmp_path / "a.toml", tmp_path, archive, key_ids=["0" * 16, "1" * 16])
    done = _provision(tmp_path / "box", answers)
    assert done.returncode == 2 and "do not use this box" in done.stderr, done.stderr


def test_a_hall_id_cannot_change_under_records(archive: Archive, tmp_path: Path) -> None:
    data = tmp_path / "box"
    assert _provision(data, _answers(tmp_path / "a.toml", tmp_path, archive)).returncode == 0
    other = tmp_path / "b.toml"
    other.write_text((tmp_path / "a.toml").read_text().replace(HALL_ID, "hall-9999"))
    done = _provision(data, other)
    assert done.returncode == 2 and "cannot change" in done.stderr


def test_without_a_token_an_unenrolled_box_says_what_is_missing(archive: Archive, tmp_path: Path) -> None:
    answers = _answers(tmp_path / "a.toml", tmp_path, archive)
    answers.write_text("\n".join(x for x in answers.read_text().splitlines() if "enrollment_token" not in x))
    done = _provision(tmp_path / "box", answers)
    assert done.returncode == 2 and "enrollment_token" in done.stderr


def test_the_technician_can_answer_at_the_prompt(tmp_path: Path) -> None:
    """No answer file: the questions come one by one (Chinese first); embedded defaults here."""
    drop = str(tmp_path / "drop")
    lines = ["hall-3301-02", "东城政务服务大厅", "3302", "DCZW", "1号窗口, 2号窗口", drop, "local"]
    lines.append("hall-box.lan")
    answers = "\n".join(lines) + "\n"
    done = subprocess.run(
        [HALL, "--data-dir", str(tmp_path / "box"), "provision", "init"],
        input=answers, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "大厅编号 hall id" in done.stdout and "staff UI certificate SHA-256" in done.stdout
    settings = Settings.load(tmp_path / "box")
    assert (settings.hall_id, settings.archival.fonds, settings.archival.department) == (
        "hall-3301-02",
        "3302",
        "DCZW",
    )
    assert [str(settings.drop_path(f)) for f in settings.drop_folders] == [
        str(tmp_path / "drop/c1"),
        str(tmp_path / "drop/c2"),
    ]
    assert settings.tls_cert_path is not None and settings.tls_cert_path.exists()
