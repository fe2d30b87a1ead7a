"""``hall serve``: the drop-folder watcher and intake previews in this process, OCR workers as
child processes, a supervisor that restarts dead workers and returns their jobs to the queue, and
(``run_with_api``) the counter API and staff UI served by uvicorn in the main thread."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from appliance.context import Context, open_context
from appliance.errors import HallError
from appliance.sdnotify import notify
from appliance.settings import Settings
from appliance.watcher import Candidate, DropWatcher
from appliance.worker import run_worker
from sync.litestream import LitestreamSupervisor
from sync.transfer import Transferer

if TYPE_CHECKING:
    from sync.archive import ArchiveServer

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its signal capture (which re-raises SIGTERM after a clean
    shutdown, so the process would end "killed" instead of with status 0): the service installs
    its own handlers and asks the server to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx: Context = open_context(settings)
        self.mp = multiprocessing.get_context("spawn")
        self.stop_event = self.mp.Event()
        self.workers: dict[str, BaseProcess] = {}
        self.watcher = DropWatcher(
            [(f, settings.drop_path(f)) for f in settings.drop_folders], settings.intake, self._take
        )
        self._stopping = threading.Event()
        self._intake_ctx: Context | None = None  # opened in the watcher thread (sqlite3 is per-thread)
        self._previews: queue.Queue[str | None] = queue.Queue()
        self._preview_thread = threading.Thread(target=self._preview_loop, name="preview", daemon=True)
        self._supervisor: threading.Thread | None = None
        self._api_server: _QuietServer | None = None
        # Litestream child (replication.enabled); started first, stopped after the workers.
        self.replication = LitestreamSupervisor(settings)
        # Transfer to the central archive (sync/transfer.py): started after Litestream, stopped
        # before it; on embedded defaults the local archive's receiver runs in this process.
        self.transfer = Transferer(settings)
        self.local_archive: ArchiveServer | None = None

    def _take(self, cand: Candidate) -> None:
        if self._intake_ctx is None:
            # used by the watcher thread only, closed by stop() after that thread has ended
            self._intake_ctx = open_context(self.settings, handed_over=True)
        taken = self._intake_ctx.spool.take(cand.path, counter=cand.folder.counter, root=cand.root, move=True)
        log.info("took a file from %s -> job %s (%s)", cand.folder.counter, taken.job_id, taken.state)
        if taken.state == "received":
            self._previews.put(taken.job_id)

    def _preview_loop(self) -> None:
        """Previews for the live intake view; optional, so a failure only costs the preview."""
        from appliance.preview import make_preview

        ctx = open_context(self.settings, handed_over=True)
        try:
            while (job_id := self._previews.get()) is not None:
                try:
                    make_preview(ctx, job_id)
                except Exception as e:  # no traceback: messages may carry paths
                    log.warning("no preview for job %s (%s)", job_id, type(e).__name__)
        finally:
            ctx.close()

    def recover(self) -> None:
        """Start-up reconciliation after a crash or power loss."""
        reset = self.ctx.queue.recover_after_restart()
        created = self.ctx.spool.recover()
        self.ctx.spool.finalize()
        if reset or created:
            log.info(
                "recovered: %d interrupted jobs requeued, %d spooled files re-registered", reset, created
            )

    def _start_worker(self, worker_id: str) -> None:
        p = self.mp.Process(
            target=run_worker, args=(self.settings, worker_id, self.stop_event), name=worker_id
        )
        p.start()
        self.workers[worker_id] = p

    def start(self) -> None:
        self.replication.start()
        self.recover()
        for i in range(self.settings.pipeline.workers):
            self._start_worker(f"w{i}")
        self._preview_thread.start()
        self.watcher.start()
        self._start_transfer()

    def _start_transfer(self) -> None:
        t = self.settings.transfer
        if not t.enabled:
            return
        if t.archive_url == "local":
            from sync import local_archive

            try:
                self.local_archive = local_archive.start_server(self.settings)
            except (HallError, OSError) as e:  # transfer must never keep intake from starting
                # Nothing is sent: whatever else listens on that port is not this box's archive.
                self.transfer.hold(f"the local archive receiver did not start: {e}")
                log.error("the local archive receiver did not start: %s", e)
                return
        self.transfer.start()

    def _stop_transfer(self) -> None:
        self.transfer.stop()
        if self.local_archive is not None:
            self.local_archive.stop()
            self.local_archive = None

    def supervise_once(self) -> None:
        for wid, proc in list(self.workers.items()):
            if not proc.is_alive() and not self.stop_event.is_set():
                requeued = self.ctx.queue.release_worker(
                    wid, f"worker process died (exit code {proc.exitcode})"
                )
                log.error("worker %s died (exit %s); requeued %s; restarting", wid, proc.exitcode, requeued)
                self._start_worker(wid)

    def run_forever(self) -> None:
        def _stop(signum: int, frame: FrameType | None) -> None:
            self._stopping.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        log.info("serving %d drop folder(s) with %d workers", len(self.watcher.folders), len(self.workers))
        notify(f"READY=1\nSTATUS=serving {len(self.workers)} workers")
        try:
            while not self._stopping.wait(1.0):
                self.supervise_once()
                notify("WATCHDOG=1")
        finally:
            notify("STOPPING=1")
            self.stop()

    def run_with_api(self, host: str, port: int) -> None:
        """Watcher, previews and workers, plus the API/UI server in the main thread (uvicorn
        handles SIGINT/SIGTERM; the service stops after it)."""
        from appliance.api import create_app

        app = create_app(self.settings)
        app.state.services = self.health
        api = self.settings.api
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # URLs carry search queries: never logged
            timeout_graceful_shutdown=3,  # open event streams never end by themselves
            ssl_certfile=str(self._path(api.tls_cert)) if api.tls_cert else None,
            ssl_keyfile=str(self._path(api.tls_key)) if api.tls_key else None,
        )
        server = _QuietServer(config)
        self._api_server = server

        def _stop(signum: int, frame: FrameType | None) -> None:
            server.should_exit = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        self._supervisor = threading.Thread(target=self._supervise_loop, name="supervisor", daemon=True)
        self._supervisor.start()
        log.info("serving %d drop folder(s) with %d workers; UI on %s:%d", len(self.watcher.folders),
                 len(self.workers), host, port)  # fmt: skip
        try:
            server.run()
        finally:
            notify("STOPPING=1")
            self._stopping.set()
            self.stop()

    def _path(self, p: object) -> object:
        from pathlib import Path

        assert isinstance(p, Path)
        return p if p.is_absolute() else self.settings.data_dir / p

    def _supervise_loop(self) -> None:
        """Restart dead workers; tell systemd (Type=notify) when the UI answers, then keep its
        watchdog fed: a hung supervisor or API stops the pings and systemd restarts the service."""
        ready = False
        while not self._stopping.wait(1.0):
            self.supervise_once()
            api_up = self._api_server is not None and self._api_server.started
            if not ready and api_up:
                ready = notify(f"READY=1\nSTATUS=serving {len(self.workers)} workers and the staff UI")
            if api_up:
                notify("WATCHDOG=1")

    def health(self) -> dict[str, object]:
        return {
            "watcher": "running" if self.watcher.is_alive() else "stopped",
            "workers": {
                wid: ("running" if p.is_alive() else f"exited {p.exitcode}")
                for wid, p in self.workers.items()
            },
            "previews": "running" if self._preview_thread.is_alive() else "stopped",
            "api": "running",
            "replication": self.replication.health(),
            "transfer": self.transfer.health(),
        }

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()  # first: workers finish their current job and exit
        self._previews.put(None)
        try:
            self.watcher.stop()
        finally:
            if self._intake_ctx is not None:
                self._intake_ctx.close()
        if self._preview_thread.is_alive():
            self._preview_thread.join(timeout)
        deadline = time.monotonic() + timeout
        for proc in self.workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
        for wid, proc in self.workers.items():
            if proc.is_alive():
                log.warning("worker %s did not stop in time; killing it (its job is requeued)", wid)
                proc.kill()
                proc.join(5)
        try:
            self._stop_transfer()
            self.ctx.queue.recover_after_restart()
            self.ctx.close()
        finally:
            # last: every write of the workers and of the shutdown itself gets a final sync
            self.replication.stop()
