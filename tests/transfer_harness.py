"""Helpers of the transfer tests: a box on embedded defaults with its local archive served on a
free port, confirmed sample records, and a switchable TCP proxy that plays a dead link.

The box talks to the archive through ``[transfer] archive_url``; the tests point it at the
archive's real URL or at a :class:`SwitchProxy` in front of it (the fault-injection tests and
benchmarks can put their own proxy there the same way)."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import record_metadata
from appliance.context import Context, open_context
from appliance.fsutil import atomic_write
from appliance.samples.records import add_records, archive_metadata
from appliance.settings import Settings
from sync import local_archive
from sync.archive import ArchiveServer
from tests.conftest import make_settings

FAST_TRANSFER: dict[str, Any] = {
    "retry_base_s": 0.05,
    "retry_max_s": 1.0,
    "probe_interval_s": 0.2,
    "probe_max_s": 1.0,
    "request_timeout_s": 5.0,
}


def with_transfer(settings: Settings, **changes: Any) -> Settings:
    """The same settings with ``[transfer]`` changes, also written to hall.toml (so a ``hall``
    subprocess sees them)."""
    raw = settings.model_dump()
    raw["transfer"] = {**raw["transfer"], **changes}
    new = Settings.model_validate(raw)
    atomic_write(new.config_path, new.to_toml().encode("utf-8"), mode=0o640)
    return new


def make_box(data_dir: Path, **transfer: Any) -> Settings:
    """An initialised data dir on embedded defaults (local archive created, box enrolled)."""
    return make_settings(data_dir, replication={"enabled": False}, transfer={**FAST_TRANSFER, **transfer})


def serve_archive(settings: Settings) -> ArchiveServer:
    """The box's local archive on a free port (the test points archive_url at ``.url``)."""
    return ArchiveServer(local_archive.archive_settings(settings), "127.0.0.1", 0).start()


def add_confirmed(
    ctx: Context, n: int, *, seed: int = 0, drafts: int = 0, image_bytes: int = 256
) -> list[str]:
    """``n`` confirmed records (and ``drafts`` drafts after them); returns the confirmed ids."""
    recs = add_records(ctx, n + drafts, seed=seed, valid_images=True, image_bytes=image_bytes)
    for r in recs[:n]:
        record_metadata.edit(ctx.store, ctx.settings, r.record_id, archive_metadata(r), actor="user:test")
        record_metadata.confirm(ctx.store, ctx.settings, r.record_id, actor="user:test")
    return [r.record_id for r in recs[:n]]


def confirmed_box(settings: Settings, n: int, **kw: Any) -> list[str]:
    ctx = open_context(settings)
    try:
        return add_confirmed(ctx, n, **kw)
    finally:
        ctx.close()


def closed_window_now() -> str:
    """A one-minute transfer window twelve hours from now (so it is closed now)."""
    start = dt.datetime.now() + dt.timedelta(hours=12)
    end = start + dt.timedelta(minutes=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def wait_for(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@dataclass
class SwitchProxy:
    """A TCP proxy in front of ``upstream``. Up: bytes are piped both ways. Down: each
    connection's first request line is recorded and the connection is closed unanswered (what
    a broken link looks like to the box); going down also cuts the open connections."""

    upstream: tuple[str, int]
    up: bool = True
    attempts: list[tuple[float, str]] = field(default_factory=list)  # refused while down
    _sock: socket.socket | None = None
    _open: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> SwitchProxy:
        self._sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, name="switch-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self.set_up(False)

    def set_up(self, up: bool) -> None:
        self.up = up
        if not up:
            with self._lock:
                for s in list(self._open):
                    _close(s)
                self._open.clear()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        if not self.up:
            data = b""
            conn.settimeout(2.0)
            try:
                while b"\r\n" not in data and len(data) < 8192:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            self.attempts.append((time.monotonic(), data.split(b"\r\n", 1)[0].decode("latin-1")))
            _close(conn)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(conn)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((conn, upstream))
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
