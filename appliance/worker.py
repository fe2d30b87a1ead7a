"""A worker process: loads the OCR engine once, then claims and processes jobs until told to
stop. Workers are started with the 'spawn' method (no inherited threads or locks)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing.synchronize
import os
import signal

from appliance.context import open_context
from appliance.decoding import shutdown_sandbox
from appliance.ocr import load_engine
from appliance.pipeline import Pipeline
from appliance.settings import Settings

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so that a killed service never
    leaves orphan workers holding jobs."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: orphan workers are possible after a crash")


def run_worker(settings: Settings, worker_id: str, stop: multiprocessing.synchronize.Event) -> None:
    die_with_parent()
    if os.getppid() == 1:  # the parent died before prctl took effect
        return
    # The service decides when workers stop (stop event, or PDEATHSIG if it dies): a SIGTERM or
    # Ctrl-C sent to the whole process group must not cut a job in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {worker_id} %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.ocr.threads))
    # OCR is batch work: below the intake, the previews and the counter UI, which staff wait for.
    os.nice(settings.pipeline.worker_nice)
    ctx = open_context(settings)
    engine = load_engine(settings.ocr)
    pipeline = Pipeline(settings, ctx.queue, ctx.store, ctx.spool, engine)
    try:
        while not stop.is_set():
            job = ctx.queue.claim(worker_id)
            if job is None:
                stop.wait(settings.pipeline.poll_seconds)
                continue
            outcome = pipeline.process(job)
            # File names may hold personal data (a citizen's name): logs name jobs by id only.
            log.info("job %s -> %s %s", job.id, outcome.status, outcome.reason_code or "")
    finally:
        shutdown_sandbox()
        ctx.close()
