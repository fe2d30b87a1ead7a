"""``hall serve``: the drop-folder watcher in this process, OCR workers as child processes, and a
supervisor that restarts dead workers and returns their jobs to the queue."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from appliance.context import Context, open_context
from appliance.settings import Settings
from appliance.watcher import Candidate, DropWatcher
from appliance.worker import run_worker

log = logging.getLogger(__name__)


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

    def _take(self, cand: Candidate) -> None:
        if self._intake_ctx is None:
            # used by the watcher thread only, closed by stop() after that thread has ended
            self._intake_ctx = open_context(self.settings, handed_over=True)
        taken = self._intake_ctx.spool.take(cand.path, counter=cand.folder.counter, root=cand.root, move=True)
        log.info("took a file from %s -> job %s (%s)", cand.folder.counter, taken.job_id, taken.state)

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
        self.recover()
        for i in range(self.settings.pipeline.workers):
            self._start_worker(f"w{i}")
        self.watcher.start()

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
        try:
            while not self._stopping.wait(1.0):
                self.supervise_once()
        finally:
            self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()  # first: workers finish their current job and exit
        try:
            self.watcher.stop()
        finally:
            if self._intake_ctx is not None:
                self._intake_ctx.close()
        deadline = time.monotonic() + timeout
        for proc in self.workers.values():
            proc.join(max(0.0, deadline - time.monotonic()))
        for wid, proc in self.workers.items():
            if proc.is_alive():
                log.warning("worker %s did not stop in time; killing it (its job is requeued)", wid)
                proc.kill()
                proc.join(5)
        self.ctx.queue.recover_after_restart()
        self.ctx.close()
