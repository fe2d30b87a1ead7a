"""Running the receiver: :class:`ArchiveServer` (uvicorn in a background thread, for the box's
in-process local archive and for tests), :func:`serve_forever` (``hall archive serve``), and the
archive's set-up: :func:`init_archive`, :func:`public_keys`, and enrollment without HTTP
(:func:`issue_enrollment_token`, :func:`enroll_device`) so ``hall init`` can enroll the box with its
embedded local archive by a direct call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from appliance.errors import ConfigError
from appliance.fsutil import atomic_write
from sync.archive import keys as archive_keys
from sync.archive.app import create_app
from sync.archive.backends import open_catalog, open_object_store
from sync.archive.errors import ArchiveError
from sync.archive.receiver import Receiver
from sync.archive.settings import ArchiveSettings

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class ServerStartFailed(ArchiveError):
    code = "archive_server_start"


class _QuietServer(uvicorn.Server):
    """No signal capture (the caller decides how the server is told to stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(settings: ArchiveSettings, host: str, port: int, receiver: Receiver | None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings, receiver=receiver),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # search queries are in URLs: never logged
        timeout_graceful_shutdown=3,
        lifespan="on",
    )


class ArchiveServer:
    """The receiver on ``host:port`` (127.0.0.1 by default; port 0 picks a free one) in a
    background thread: ``start()``, ``url``, ``stop()`` (also as a context manager)."""

    def __init__(
        self,
        settings: ArchiveSettings,
        host: str | None = None,
        port: int | None = None,
        *,
        receiver: Receiver | None = None,
    ) -> None:
        self.settings = settings
        self.receiver = receiver  # None: the app opens its own (tests give one with another clock)
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None or not self._server.started:
            raise ServerStartFailed("the archive server is not running")
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def start(self) -> ArchiveServer:
        if self._thread is not None:
            return self
        server = _QuietServer(_config(self.settings, self.host, self.port, self.receiver))
        thread = threading.Thread(target=server.run, name="archive-receiver", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServerStartFailed(
                    f"the archive receiver did not start on {self.host}:{self.port} (port in use?)"
                )
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                if server is not None:
                    server.force_exit = True
                thread.join(STOP_TIMEOUT_S)
        self._server, self._thread = None, None

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(settings: ArchiveSettings, host: str | None = None, port: int | None = None) -> None:
    """Serve in this (main) thread until SIGTERM or SIGINT; then exit cleanly."""
    host, port = host or settings.host, settings.port if port is None else port
    receiver = Receiver(settings)  # fail early, with a clear message, if the archive is not ready
    try:
        server = _QuietServer(_config(settings, host, port, receiver))

        def _stop(signum: int, frame: FrameType | None) -> None:
            server.should_exit = True

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot bind
            pass
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if not server.started:
            raise ServerStartFailed(f"the archive receiver could not listen on {host}:{port} (port in use?)")
    finally:
        receiver.close()


# --- set-up -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitResult:
    settings: ArchiveSettings
    staff_token: str | None  # shown once; None when the archive already had one
    created_keys: list[str] = field(default_factory=list)
    wrote_settings: bool = False


def init_archive(archive_dir: Path, archive_id: str | None = None) -> InitResult:
    """Create (or complete) an archive: folder (0700), ``archive.toml`` if absent, the keys that
    are missing (existing keys are never replaced), the catalog, the object folder, and a staff
    token if there is none. Safe to run again."""
    archive_dir = archive_dir.expanduser().resolve()
    archive_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(archive_dir, 0o700)
    settings = ArchiveSettings.load(archive_dir, archive_id=archive_id)
    if settings.config_path.exists() and archive_id is not None:
        on_file = ArchiveSettings.load(archive_dir).archive_id
        if on_file != archive_id:
            raise ConfigError(
                f"{settings.config_path} names this archive {on_file!r}, not {archive_id!r}: "
                "leave out --archive-id, or edit the file"
            )
    wrote = False
    if not settings.config_path.exists():
        atomic_write(settings.config_path, settings.to_toml().encode("utf-8"), mode=0o640)
        wrote = True
    created = archive_keys.create_missing(settings.keys_dir)
    archive_keys.load(settings.keys_dir)  # existing keys must load (owner, mode, format)
    catalog = open_catalog(settings)
    try:
        open_object_store(settings)
        token = None
        if not catalog.has_staff_token():
            token = secrets.token_urlsafe(32)
            catalog.add_staff_token(hashlib.sha256(token.encode()).hexdigest(), time.time())
    finally:
        catalog.close()
    return InitResult(settings, token, created, wrote)


def public_keys(archive_dir: Path) -> tuple[X25519PublicKey, Ed25519PublicKey]:
    """The archive's encryption and receipt-signing public keys (what a box pins)."""
    return archive_keys.public_keys(archive_dir.expanduser().resolve() / "keys")


def issue_enrollment_token(settings: ArchiveSettings, hall_id: str, ttl_s: int | None = None) -> str:
    with Receiver(settings) as rx:
        return rx.issue_enrollment_token(hall_id, ttl_s)


def enroll_device(
    settings: ArchiveSettings, token: str, hall_id: str, hall_name: str, device_public_key: str
) -> dict[str, Any]:
    """``POST /api/v1/enroll`` without HTTP: the same checks, the same answer body.
    ``device_public_key`` is the base64 of the raw Ed25519 public key."""
    with Receiver(settings) as rx:
        return rx.enroll(token, hall_id, hall_name, device_public_key)
