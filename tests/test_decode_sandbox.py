"""decode_sandboxed: each file in a disposable child with resource limits; the parent survives
whatever the child does, gets typed errors back, and leaks neither processes nor descriptors."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from appliance.decoding import decode_file, decode_sandboxed, sandbox, shutdown_sandbox
from appliance.errors import (
    CorruptFile,
    DecodeError,
    DecoderCrashed,
    EncryptedDocument,
    LimitExceeded,
    UnsupportedFormat,
)
from appliance.settings import DecodeLimits
from tests.test_decoding import encrypted_pdf

LIMITS = DecodeLimits()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def big_rgb_png(path: Path, width: int, height: int) -> Path:
    """A valid RGB PNG of ``width``×``height`` that is tiny on disk (made row by row). Every row
    uses the Paeth filter, the most expensive one to undo, so decoding costs real CPU time."""
    comp = zlib.compressobj(9)
    row = b"\x04" + bytes(range(256)) * (width * 3 // 256) + b"\x00" * (width * 3 % 256)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def big_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """110 megapixels (330 MB of RGB once decoded; 2-3 s of CPU), under the pixel limit."""
    return big_rgb_png(tmp_path_factory.mktemp("big") / "big.png", 10_000, 11_000)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


def small_jpeg(tmp_path: Path, name: str = "small.jpg") -> Path:
    im = Image.new("RGB", (320, 240), (250, 250, 250))
    for x in range(0, 320, 40):
        im.paste((20, 20, 20), (x, 100, x + 20, 140))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return path


def zygote() -> psutil.Process:
    from appliance.decoding import sandbox

    current = sandbox._current
    assert current is not None and current.alive(), "no live zygote"
    [z] = [
        c
        for c in psutil.Process().children()
        if c.pid == current.proc.pid and c.status() != psutil.STATUS_ZOMBIE
    ]
    return z


def decoder_child(timeout: float = 10.0) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [c for z in psutil.Process().children() for c in z.children()]
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise AssertionError("no decoder child appeared")


def test_pages_match_the_in_process_decode(tmp_path: Path, scratch: Path) -> None:
    path = small_jpeg(tmp_path)
    [page] = decode_sandboxed(path, LIMITS, scratch)
    [direct] = decode_file(path, LIMITS, tmp_path)
    assert page.path.parent == scratch and page.path.exists()
    assert (page.width, page.height, page.channels, page.source) == (320, 240, 3, "jpeg")
    assert np.array_equal(page.load(), direct.load())
    assert sorted(p.name for p in scratch.iterdir()) == [page.path.name]  # no result file left


def test_per_file_overhead_is_small(
    tmp_path: Path, scratch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = small_jpeg(tmp_path)
    decode_sandboxed(path, LIMITS, scratch)[0].path.unlink()  # the zygote starts once per process
    runs = 30
    t0 = time.perf_counter()
    for _ in range(runs):
        decode_file(path, LIMITS, tmp_path)[0].path.unlink()
    in_process = (time.perf_counter() - t0) / runs
    t0 = time.perf_counter()
    for _ in range(runs):
        decode_sandboxed(path, LIMITS, scratch)[0].path.unlink()
    sandboxed = (time.perf_counter() - t0) / runs
    with capsys.disabled():
        print(f"\nsmall JPEG: in-process {in_process * 1000:.1f} ms, sandboxed {sandboxed * 1000:.1f} ms")
    # a fresh interpreter importing numpy + Pillow + pypdfium2 costs ~0.5 s; a warm fork does not
    assert sandboxed - in_process < 0.1


@pytest.mark.parametrize(
    ("name", "data", "error", "code"),
    [
        ("empty.jpg", b"", UnsupportedFormat, "unsupported_format"),
        ("gif.jpg", b"GIF89a" + bytes(40), UnsupportedFormat, "unsupported_format"),
        ("cut.png", None, CorruptFile, "truncated"),
        ("locked.pdf", None, EncryptedDocument, "encrypted_document"),
    ],
)
def test_typed_errors_come_back_unchanged(
    tmp_path: Path, scratch: Path, name: str, data: bytes | None, error: type[DecodeError], code: str
) -> None:
    if name == "cut.png":
        buf = io.BytesIO()
        Image.effect_noise((200, 200), 60).save(buf, "PNG")
        data = buf.getvalue()[:3000]
    if name == "locked.pdf":
        data = encrypted_pdf()
    assert data is not None
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(error) as direct:
        decode_file(path, LIMITS, tmp_path)
    with pytest.raises(error) as boxed:
        decode_sandboxed(path, LIMITS, scratch)
    assert type(boxed.value) is type(direct.value)
    assert (
        (boxed.value.code, str(boxed.value))
        == (direct.value.code, str(direct.value))
        == (
            code,
            str(direct.value),
        )
    )
    assert list(scratch.iterdir()) == []


def test_page_cap_in_the_child(scratch: Path) -> None:
    g4 = Path(__file__).resolve().parents[1].parent / "shared/corpus/problem_files/pillow__g4-multi.tiff"
    with pytest.raises(LimitExceeded) as e:
        decode_sandboxed(g4, LIMITS.model_copy(update={"max_pages": 2}), scratch)
    assert e.value.code == "too_many_pages"
    assert list(scratch.iterdir()) == []


def test_file_size_is_checked_before_starting_a_child(
    tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: object) -> None:
        raise AssertionError("a child was started")

    monkeypatch.setattr(sandbox, "_run", must_not_run)
    with pytest.raises(LimitExceeded) as e:
        decode_sandboxed(small_jpeg(tmp_path), LIMITS.model_copy(update={"max_file_bytes": 100}), scratch)
    assert e.value.code == "file_too_large"
    link = tmp_path / "link.jpg"
    link.symlink_to(small_jpeg(tmp_path, "target.jpg"))
    with pytest.raises(DecodeError) as e2:
        decode_sandboxed(link, LIMITS, scratch)
    assert e2.value.code == "not_regular_file"


def test_out_of_memory_child_and_the_parent_goes_on(big_png: Path, tmp_path: Path, scratch: Path) -> None:
    with pytest.raises(DecoderCrashed) as e:
        decode_sandboxed(big_png, LIMITS.model_copy(update={"memory_mb": 256}), scratch)
    assert e.value.code == "decoder_out_of_memory" and "256 MB" in str(e.value)
    assert list(scratch.iterdir()) == []
    assert len(decode_sandboxed(small_jpeg(tmp_path), LIMITS, scratch)) == 1


@pytest.mark.parametrize("side", [12_000, 40_000])  # 144 Mpx (warning zone) and 1.6 Gpx
def test_declared_pixel_bomb_is_refused_before_allocation(tmp_path: Path, scratch: Path, side: int) -> None:
    # 3 bytes per pixel would be 432 MB / 4.8 GB: an allocation would die under 256 MB
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + idat + chunk(b"IEND", b""))
    with pytest.raises(LimitExceeded) as e:
        decode_sandboxed(path, LIMITS.model_copy(update={"memory_mb": 256}), scratch)
    assert e.value.code == "too_many_pixels"


def test_wall_clock_timeout_kills_the_child(big_png: Path, scratch: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(DecoderCrashed) as e:
        decode_sandboxed(big_png, LIMITS.model_copy(update={"timeout_seconds": 0.3}), scratch)
    assert time.monotonic() - t0 < 3
    assert e.value.code == "decoder_timeout" and "0.3 s" in str(e.value)
    assert list(scratch.iterdir()) == []
    assert not [c for z in psutil.Process().children() for c in z.children()]


def test_cpu_limit(big_png: Path, scratch: Path) -> None:
    with pytest.raises(DecoderCrashed) as e:
        decode_sandboxed(big_png, LIMITS.model_copy(update={"cpu_seconds": 1}), scratch)
    assert e.value.code == "decoder_cpu_limit" and "1 s" in str(e.value)
    assert list(scratch.iterdir()) == []


def decode_in_background(
    path: Path, limits: DecodeLimits, scratch: Path
) -> tuple[threading.Thread, dict[str, BaseException]]:
    """Start a sandboxed decode in a thread; the error it ends with lands in result["error"]."""
    result: dict[str, BaseException] = {}

    def run() -> None:
        try:
            decode_sandboxed(path, limits, scratch)
        except BaseException as e:
            result["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    return worker, result


def test_child_limits_and_sigkill(big_png: Path, scratch: Path) -> None:
    limits = LIMITS.model_copy(update={"memory_mb": 2048, "cpu_seconds": 50, "timeout_seconds": 60})
    worker, result = decode_in_background(big_png, limits, scratch)
    child = decoder_child()
    try:
        deadline = time.monotonic() + 10
        while child.rlimit(psutil.RLIMIT_CORE) != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.005)  # the child sets its limits right after the fork (RLIMIT_CORE last)
        assert os.getpgid(child.pid) == child.pid  # its own process group
        assert child.rlimit(psutil.RLIMIT_AS) == (2048 << 20, 2048 << 20)
        assert child.rlimit(psutil.RLIMIT_CPU) == (50, 51)
        assert child.rlimit(psutil.RLIMIT_FSIZE)[0] == LIMITS.max_pixels * 3 + (1 << 20)
        assert child.rlimit(psutil.RLIMIT_NOFILE)[0] <= 64
        assert child.rlimit(psutil.RLIMIT_CORE) == (0, 0)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        worker.join(30)
    error = result["error"]
    assert isinstance(error, DecoderCrashed) and error.code == "decoder_killed"
    assert list(scratch.iterdir()) == []


def test_a_dead_zygote_is_replaced(tmp_path: Path, scratch: Path, big_png: Path) -> None:
    decode_sandboxed(small_jpeg(tmp_path), LIMITS, scratch)[0].path.unlink()
    first = zygote()
    first.kill()
    first.wait(5)
    [page] = decode_sandboxed(small_jpeg(tmp_path), LIMITS, scratch)  # a new zygote
    page.path.unlink()
    assert zygote().pid != first.pid
    # the zygote dying in the middle of a decode: the decode fails, its child dies with it
    worker, result = decode_in_background(big_png, LIMITS, scratch)
    child = decoder_child()
    zygote().kill()
    worker.join(30)
    assert isinstance(result["error"], DecoderCrashed) and result["error"].code == "decoder_killed"
    psutil.wait_procs([child], timeout=5)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert list(scratch.iterdir()) == []


def test_no_process_or_descriptor_leaks(tmp_path: Path, scratch: Path) -> None:
    good = small_jpeg(tmp_path)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:500])
    decode_sandboxed(good, LIMITS, scratch)[0].path.unlink()
    me = psutil.Process()
    z = zygote()
    fds, zygote_fds = me.num_fds(), z.num_fds()
    for i in range(40):
        if i % 2:
            with pytest.raises(CorruptFile):
                decode_sandboxed(bad, LIMITS, scratch)
        else:
            decode_sandboxed(good, LIMITS, scratch)[0].path.unlink()
    assert me.num_fds() == fds
    assert [c.pid for c in me.children(recursive=True)] == [z.pid]  # no decoder children, no zombies
    assert z.num_fds() == zygote_fds
    assert list(scratch.iterdir()) == []


def test_the_zygote_is_a_fresh_interpreter_not_a_fork_of_the_caller(tmp_path: Path, scratch: Path) -> None:
    shutdown_sandbox()
    ballast = np.ones(400 << 20, np.uint8)  # the caller holds 400 MB (an OCR model, say)
    decode_sandboxed(small_jpeg(tmp_path), LIMITS, scratch)[0].path.unlink()
    z = zygote()
    assert z.memory_info().rss < 200 << 20
    assert "zygote_main" in " ".join(z.cmdline())
    del ballast


def test_forged_child_results_are_rejected(tmp_path: Path) -> None:
    """A compromised child controls its result file and page files; the parent trusts neither."""
    token = "t0ken"
    page = {"index": 0, "width": 4, "height": 2, "channels": 1, "dpi": None, "source": "png"}
    page["orientation_applied"] = 0
    cases = {
        "wrong shape": ({"ok": True, "pages": [page]}, np.zeros((3, 4), np.uint8)),
        "pickle": ({"ok": True, "pages": [page]}, np.array([[None] * 4] * 2, dtype=object)),
        "odd class": ({"ok": False, "error": "SystemExit", "code": "x", "message": "m"}, None),
        "odd code": ({"ok": False, "error": "CorruptFile", "code": "Bad Code!", "message": "m"}, None),
        "odd source": ({"ok": True, "pages": [{**page, "source": "../../etc"}]}, np.zeros((2, 4), np.uint8)),
    }
    for name, (result, pixels) in cases.items():
        for f in tmp_path.iterdir():
            f.unlink()
        (tmp_path / f"{token}.result.json").write_text(json.dumps(result))
        if pixels is not None:
            np.save(tmp_path / f"{token}.p0000.npy", pixels, allow_pickle=True)
        with pytest.raises(DecoderCrashed):
            sandbox._outcome({"status": "exited", "value": 0}, LIMITS, tmp_path, token)
        assert list(tmp_path.iterdir()) == [], name
    # and an honest one passes, with the message cleaned of control characters
    (tmp_path / f"{token}.result.json").write_text(
        json.dumps({"ok": False, "error": "CorruptFile", "code": "truncated", "message": "cut\x1b[2J short"})
    )
    with pytest.raises(CorruptFile) as e:
        sandbox._outcome({"status": "exited", "value": 0}, LIMITS, tmp_path, token)
    assert str(e.value) == "cut [2J short" and e.value.code == "truncated"
