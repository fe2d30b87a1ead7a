"""The checks of ``hall doctor``, one function each. A check returns what it measured and raises
:class:`CheckFailed` with what it measured and what the technician should do; anything else it
raises is reported as a failure with the error's message."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from appliance.errors import HallError
from appliance.keys import FileKeySource
from appliance.settings import Settings

# The built-in test page: these lines, drawn with the box's CJK font and turned by TEST_SKEW_DEG.
TEST_LINES = ("政务服务大厅设备自检", "申请人张三身份证号码", "档号管理与电子归档", "不动产登记申请表")
TEST_SKEW_DEG = 3.0
SKEW_TOLERANCE_DEG = 0.3
MAX_CER = 0.1
MIN_FREE_BYTES = 2 * 1024**3
MIN_FREE_INODES = 50_000
MAX_CLOCK_SKEW_S = 60.0


class CheckFailed(HallError):
    """A doctor check did not pass: ``measured`` is what it saw, the message what to do."""

    code = "check_failed"

    def __init__(self, measured: str, fix: str) -> None:
        super().__init__(fix)
        self.measured = measured
        self.fix = fix


@dataclass(frozen=True)
class TestPage:
    grey: np.ndarray
    text: str
    skew_deg: float


def test_page() -> TestPage:
    from appliance.samples.fonts import load_font

    page = Image.new("L", (1240, 1754), 255)
    d = ImageDraw.Draw(page)
    font = load_font("sans", 56)
    for i, line in enumerate(TEST_LINES):
        d.text((140, 260 + i * 140), line, font=font, fill=0)
    turned = page.rotate(TEST_SKEW_DEG, resample=Image.Resampling.BICUBIC, fillcolor=255)
    return TestPage(np.asarray(turned, dtype=np.uint8).copy(), "".join(TEST_LINES), TEST_SKEW_DEG)


def cer(truth: str, read: str) -> float:
    """Character error rate: edit distance over the length of the truth (spaces ignored)."""
    a, b = truth.replace(" ", ""), read.replace(" ", "")
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1] / max(1, len(a))


# --- image kernels and OCR --------------------------------------------------------------------
def native(settings: Settings) -> str:
    from appliance import imaging

    page = test_page()
    t0 = time.perf_counter()
    cleaned = imaging.clean_page(page.grey, dpi=150)
    ms = (time.perf_counter() - t0) * 1000
    got = abs(cleaned.report.deskew_deg)
    blank = cleaned.report.blank
    measured = f"skew {got:.2f}° on a page turned {page.skew_deg:.1f}°, blank={blank}, {ms:.0f} ms"
    if abs(got - page.skew_deg) > SKEW_TOLERANCE_DEG or blank:
        raise CheckFailed(
            measured,
            "the native image module gives wrong results: reinstall the appliance package "
            "(the wheel may be for another CPU); do not take scans until this passes",
        )
    return measured


def ocr(settings: Settings) -> str:
    from appliance import imaging
    from appliance.ocr import load_engine

    page = test_page()
    t0 = time.perf_counter()
    engine = load_engine(settings.ocr)
    loaded = time.perf_counter() - t0
    cleaned = imaging.clean_page(page.grey, dpi=150)
    result = engine.read(cleaned.ocr_input)
    text = "".join(line.text for line in result.lines)
    rate = cer(page.text, text)
    measured = f"{engine.name}: models loaded in {loaded:.1f} s, CER {rate:.1%} on the test page"
    if rate > MAX_CER:
        raise CheckFailed(
            measured + f" (read {text[:40]!r})",
            "OCR does not read the built-in test page: check [ocr] in hall.toml and that the "
            "model files in the installed package are intact (reinstall it)",
        )
    return measured


# --- the box's disk -----------------------------------------------------------------------------
def drop_folders(settings: Settings) -> str:
    problems, ok = [], []
    for name in settings.drop_folders:
        path = settings.drop_path(name)
        if not path.is_dir():
            problems.append(f"{path} missing")
            continue
        probe = path / f".hall-doctor-{secrets.token_hex(4)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"probe")
            os.fsync(fd)
            os.close(fd)
            probe.unlink()
        except OSError as e:
            problems.append(f"{path} not writable ({e.strerror})")
            continue
        ok.append(str(path))
    measured = f"{len(ok)} of {len(settings.drop_folders)} drop folders writable" + (
        f"; {'; '.join(problems)}" if problems else ""
    )
    if problems:
        raise CheckFailed(
            measured,
            "create the missing drop folders or fix their owner and mode (the service user must "
            "write there): `hall init` creates them; check the Samba share for network scanners",
        )
    return measured


def disk(settings: Settings) -> str:
    st = os.statvfs(settings.data_dir)
    free = st.f_bavail * st.f_frsize
    inodes = st.f_favail
    catalog = settings.catalog_path.stat().st_size if settings.catalog_path.exists() else 0
    need = max(MIN_FREE_BYTES, int(1.5 * catalog))
    measured = f"{free / 1024**3:.1f} GiB free (need {need / 1024**3:.1f}), {inodes} inodes free"
    if free < need or (st.f_files and inodes < MIN_FREE_INODES):
        raise CheckFailed(
            measured,
            f"free space on {settings.data_dir}: at least {need / 1024**3:.1f} GiB and "
            f"{MIN_FREE_INODES} inodes (Litestream stages a snapshot of 1.5× the catalog)",
        )
    return measured


def keys(settings: Settings) -> str:
    status = FileKeySource(settings.keys_dir).status()
    bad = [s for s in status if not s.ok]
    measured = f"{len(status) - len(bad)} of {len(status)} key files present with the right mode"
    if bad:
        raise CheckFailed(
            measured + ": " + "; ".join(f"{s.name}: {s.problem}" for s in bad),
            "fix each key file as its line says (restore a missing one from the recovery kit: "
            "`hall provision restore-keys`)",
        )
    return measured


# --- replication --------------------------------------------------------------------------------
def replica(settings: Settings) -> str:
    from sync.replica import ReplicaError, verify

    if not settings.replication.enabled:
        raise CheckFailed(
            "replication is off", "turn [replication] on: a box without a replica cannot be replaced"
        )
    try:
        report = verify(settings, timeout_s=60)
    except ReplicaError as e:
        raise CheckFailed(
            str(e),
            "no restorable replica: `hall serve` replicates from its first minute; check the replica "
            "target ([replication] in hall.toml: the disk is mounted, or the S3 endpoint, bucket and "
            "credentials are right) and run the check again with the service running",
        ) from None
    rows = sum(t.live.rows for t in report.tables if t.live)
    measured = f"{report.target}: {len(report.tables)} tables, {rows} rows compared" + (
        "" if report.synced else " (Litestream not running: compared with the last replicated state)"
    )
    if not report.ok:
        bad = [t.table for t in report.tables if not t.ok]
        raise CheckFailed(
            measured + f"; differs in {', '.join(bad[:5]) or 'every table (no replica?)'}",
            "the replica is not a restorable copy of the catalog: check the replica target "
            "([replication] in hall.toml, credentials, network) and that `hall serve` runs",
        )
    return measured


# --- the archive --------------------------------------------------------------------------------
@contextlib.contextmanager
def archive_served(settings: Settings) -> Iterator[None]:
    """On embedded defaults, serve the local archive for the check unless ``hall serve`` does."""
    from sync.link import LinkDown
    from sync.transfer import archive_client

    if settings.transfer.archive_url != "local":
        yield
        return
    client = archive_client(settings)
    try:
        client.health()
        running = True
    except LinkDown:
        running = False
    finally:
        client.close()
    if running:
        yield
        return
    from sync import local_archive

    server = local_archive.start_server(settings)
    try:
        yield
    finally:
        server.stop()


def archive(settings: Settings) -> str:
    from sync.link import EnrollmentProblem, LinkDown
    from sync.transfer import archive_client

    url = settings.archive_base_url
    with archive_served(settings):
        client = archive_client(settings)
        try:
            try:
                health = client.health()
            except LinkDown as e:
                raise CheckFailed(
                    f"{url}: {e}",
                    "the archive cannot be reached: check the network, the firewall (outbound to the "
                    "archive) and [transfer] archive_url; records wait safely in the outbox meanwhile",
                ) from None
            skew = time.time() - float(health.get("time", 0))
            if abs(skew) > MAX_CLOCK_SKEW_S:
                raise CheckFailed(
                    f"the box clock is {skew:+.0f} s off the archive's",
                    "set the clock (enable NTP: timedatectl set-ntp true); signed requests outside "
                    "±300 s are refused and dates on records would be wrong",
                )
            device = FileKeySource(settings.keys_dir).device_key()
            try:
                me = client.signed_call(device, "/api/v1/device")
            except EnrollmentProblem as e:
                raise CheckFailed(
                    f"{url} answers, but: {e}",
                    "the box is not enrolled (or its key was revoked): ask the archive for an "
                    "enrollment token and run `hall enroll --archive URL --token T`",
                ) from None
        finally:
            client.close()
    if me.get("hall_id") != settings.hall_id:
        raise CheckFailed(
            f"the archive knows this key as hall {me.get('hall_id')!r}",
            f"this box is {settings.hall_id!r}: enroll it under its own hall id",
        )
    return (
        f"{url} ({me.get('archive_id')}): enrolled as {me.get('hall_id')} key {me.get('device_key_id')}, "
        f"clock {skew:+.1f} s"
    )


def transfer(settings: Settings) -> str:
    """A test record, made in a scratch data dir with this box's device key and archive pins (the
    real catalog is not touched), shipped and sent to the archive's self-test endpoint: every
    四性 check runs, the archive signs a receipt, stores nothing and deletes the test objects."""
    import shutil as _shutil

    from appliance.context import initialise, open_context
    from appliance.samples.records import add_records, confirm_records
    from sync import protocol
    from sync.link import EnrollmentProblem, LinkDown
    from sync.objectstore import blob_key
    from sync.package import build_package
    from sync.transfer import archive_client, object_store

    keys = FileKeySource(settings.keys_dir)
    scratch = settings.scratch_dir / f"doctor-{secrets.token_hex(4)}"
    raw = settings.model_dump()
    raw.update(data_dir=scratch, drop_folders=[{"counter": "doctor", "path": "inbox"}])
    raw["keys"] = {**raw["keys"], "dir": scratch / "keys"}
    raw["replication"] = {**raw["replication"], "enabled": False}
    test = Settings.model_validate(raw)
    try:
        (scratch / "keys").mkdir(parents=True, mode=0o700)
        for src, mode in (
            (keys.device_path, 0o400),
            (keys.archive_path, 0o444),
            (keys.archive_signing_path, 0o444),
        ):
            dest = scratch / "keys" / src.name
            dest.write_bytes(src.read_bytes())
            dest.chmod(mode)
        initialise(test)
        app = open_context(test)
        try:
            rec = add_records(app, 1, seed=secrets.randbits(16), valid_images=True, image_bytes=2000)
            confirm_records(app, rec, actor="system:doctor")
            built = build_package(app, rec[0].record_id)
            store = object_store(settings)
            try:
                for ref in built.blob_refs:
                    store.put(blob_key(settings.hall_id, ref), app.store.blobs.get(ref))
            finally:
                close = getattr(store, "close", None)
                if callable(close):
                    close()
        finally:
            app.close()
        with archive_served(settings):
            client = archive_client(settings)
            try:
                receipt = client.signed_call(keys.device_key(), "/api/v1/selftest", built.body)
            except (LinkDown, EnrollmentProblem) as e:
                raise CheckFailed(
                    str(e), "the archive refused the test record: run the archive check first"
                ) from None
            finally:
                client.close()
    finally:
        _shutil.rmtree(scratch, ignore_errors=True)
    body = protocol.verify_receipt(keys.archive_signing_key(), receipt)
    measured = (
        f"test record {body['archival_code']} ({len(built.blob_refs)} files): "
        f"receipt {body['receipt_id'][:8]}… {body['status']}, signature verified"
    )
    if body["status"] != "selftest-passed" or body["record_id"] != rec[0].record_id:
        failed = ", ".join(f"{f['property']}/{f['item']}" for f in body.get("failed", []))
        raise CheckFailed(
            measured + (f"; failed: {failed}" if failed else ""),
            "the archive's 四性检测 fails this box's packages: send the failed items to the archive staff",
        )
    return measured
