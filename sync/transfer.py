"""Transfer (移交) of records to the central archive: the box's sender (``docs/transfer.md``).

All state lives in the catalog (``blob_outbox``, ``transfer_outbox``, ``receipts``), so a crash
at any point only repeats work the archive recognises (content-addressed blobs, idempotency
keys). One pass (:meth:`Transferer.run_once`, or the background thread of ``hall serve``):

1. the blob outbox, oldest record first, ``concurrency`` uploads in parallel: a blob the object
   store already holds is skipped, else it is PUT (paced by the bandwidth cap); its row goes;
2. then the packages of confirmed records whose blobs are all shipped: built
   (:func:`sync.package.build_package`), POSTed signed, and the signed receipt verified against
   the pinned archive key. An accepted receipt makes the record 已移交 in one transaction
   (status, receipt, outbox row, PREMIS event, audit entry); a signed rejection (422) parks the
   package as ``rejected`` with its failed items until ``hall transfer retry``.

Failures: per item, exponential backoff with full jitter. Network errors, timeouts and 5xx mark
the link down: nothing is sent until a ``GET /api/v1/health`` probe (itself backing off) passes.
401/403 block the whole transfer ("enrollment problem"), re-tried slowly. Outside the transfer
windows nothing is sent at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from appliance import outbox
from appliance.blobstore import BlobStore
from appliance.catalog import transaction
from appliance.errors import ConfigError, HallError, KeyProblem, StoreError
from appliance.jobqueue import add_event
from appliance.settings import Settings
from sync import protocol
from sync.link import (
    ArchiveAnswerInvalid,
    ArchiveClient,
    EnrollmentProblem,
    LinkDown,
    LinkState,
    ReplayRefused,
    full_jitter,
)
from sync.objectstore import (
    FolderObjectStore,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    blob_key,
)
from sync.pacing import PacingStopped, TokenBucket
from sync.package import build_package, record_blob_refs
from sync.windows import Windows

if TYPE_CHECKING:
    from appliance.context import Context

log = logging.getLogger(__name__)

AGENT = "system:transfer"
STATES = ("idle", "sending", "link_down", "blocked", "outside_window", "disabled")
IDLE_POLL_S = 2.0
REPLAY_TRIES = 3
LOCK_NAME = "transfer.lock"


class TransferBusy(HallError):
    """Another transferer (``hall serve`` or ``hall transfer run``) works on this data dir."""

    code = "transfer_busy"


class TransferStateError(HallError):
    code = "transfer_state"


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


# --- configuration --------------------------------------------------------------------------
def object_store(settings: Settings, environ: Mapping[str, str] | None = None) -> ObjectStore:
    """The archive's object store as ``[transfer]`` names it (credentials from the environment
    variables the settings name)."""
    t = settings.transfer
    if t.object_store == "local":
        return FolderObjectStore(settings.local_archive_dir / "objects")
    env = os.environ if environ is None else environ
    access, secret = env.get(t.s3_access_key_env, ""), env.get(t.s3_secret_key_env, "")
    if not access or not secret:
        raise ConfigError(
            f"the archive object store needs credentials: set the environment variables "
            f"{t.s3_access_key_env} and {t.s3_secret_key_env} (named by [transfer] s3_*_key_env)"
        )
    assert t.s3_endpoint is not None and t.s3_bucket is not None  # TransferSettings checks it
    ca = settings.transfer_ca_path
    return S3ObjectStore(
        t.s3_endpoint,
        t.s3_bucket,
        access,
        secret,
        region=t.s3_region,
        prefix=t.s3_prefix,
        timeout_s=t.request_timeout_s,
        verify=str(ca) if ca else True,
    )


def archive_client(settings: Settings, pace: TokenBucket | None = None) -> ArchiveClient:
    ca = settings.transfer_ca_path
    return ArchiveClient(
        settings.archive_base_url,
        timeout_s=settings.transfer.request_timeout_s,
        verify=str(ca) if ca else True,
        pace=pace,
    )


# --- catalog views (also used by `hall status` without a running service) -------------------
def counts(conn: sqlite3.Connection) -> dict[str, int]:
    blobs = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blob_outbox").fetchone()
    states = dict(conn.execute("SELECT state, COUNT(*) FROM transfer_outbox GROUP BY state").fetchall())
    transferred = conn.execute("SELECT COUNT(*) FROM records WHERE status='transferred'").fetchone()[0]
    return {
        "pending_blobs": int(blobs[0]),
        "pending_bytes": int(blobs[1]),
        "pending_packages": int(states.get("pending", 0)),
        "rejected": int(states.get("rejected", 0)),
        "blocked": int(states.get("blocked", 0)),
        "transferred": int(transferred),
    }


def _catalog_last(conn: sqlite3.Connection) -> tuple[float | None, str | None]:
    last = conn.execute("SELECT MAX(received_at) FROM receipts").fetchone()[0]
    err = conn.execute(
        "SELECT last_error FROM ("
        " SELECT last_error, updated_at AS at FROM transfer_outbox WHERE last_error IS NOT NULL"
        " UNION ALL SELECT last_error, next_attempt_at FROM blob_outbox WHERE last_error IS NOT NULL"
        ") ORDER BY at DESC LIMIT 1"
    ).fetchone()
    return last, (err[0] if err else None)


def catalog_status(ctx: Context) -> dict[str, Any]:
    """The transfer state as the catalog alone tells it (no service running: no link state)."""
    settings = ctx.settings
    t = settings.transfer
    c = counts(ctx.conn)
    last, err = _catalog_last(ctx.conn)
    if not t.enabled:
        state = "disabled"
    elif c["blocked"]:
        state = "blocked"
    elif not Windows.parse(t.windows).is_open(dt.datetime.now()):
        state = "outside_window"
    else:
        state = "idle"
    return {
        "state": state,
        "enabled": t.enabled,
        "archive": settings.archive_base_url,
        "object_store": t.object_store,
        **c,
        "last_success": _iso(last),
        "last_error": err,
        "problem": _blocked_problem(ctx.conn) if c["blocked"] else None,
        "link": None,
        "windows": Windows.parse(t.windows).describe(),
        "bandwidth_kbit": t.bandwidth_kbit,
    }


def _blocked_problem(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT last_error FROM transfer_outbox WHERE state='blocked' ORDER BY updated_at DESC LIMIT 1"
    ).fetchone()
    return f"enrollment problem: {row[0]}" if row else None


def rejected(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Packages the archive rejected, with its failed items (oldest first)."""
    out = []
    for row in conn.execute(
        "SELECT record_id, version, failed_items, updated_at FROM transfer_outbox WHERE state='rejected'"
        " ORDER BY enqueued_at"
    ):
        items = json.loads(row["failed_items"]) if row["failed_items"] else {}
        out.append(
            {
                "record_id": row["record_id"],
                "version": row["version"],
                "rejected_at": _iso(row["updated_at"]),
                "receipt_id": items.get("receipt_id"),
                "failed": items.get("failed", []),
            }
        )
    return out


def retry(ctx: Context, record_id: str, *, actor: str) -> None:
    """``hall transfer retry``: a rejected (or blocked) package becomes pending again, audited."""
    conn = ctx.conn
    with transaction(conn):
        row = conn.execute("SELECT state FROM transfer_outbox WHERE record_id=?", (record_id,)).fetchone()
        if row is None:
            status = conn.execute("SELECT status FROM records WHERE id=?", (record_id,)).fetchone()
            what = "does not exist" if status is None else f"is {status[0]} and not waiting for transfer"
            raise TransferStateError(f"record {record_id} {what}")
        if row["state"] == "pending":
            raise TransferStateError(f"the package of record {record_id} is already pending")
        conn.execute(
            "UPDATE transfer_outbox SET state='pending', attempts=0, next_attempt_at=0, failed_items=NULL,"
            " last_error=NULL, updated_at=? WHERE record_id=?",
            (time.time(), record_id),
        )
        # The archive deletes objects that do not match their content address: ship them again
        # (an object the store holds intact is skipped).
        refs = record_blob_refs(conn, record_id)
        outbox.enqueue_blobs(conn, record_id, [(ref, None) for ref in refs])
        ctx.audit.record(
            conn, actor, "record.transfer_retry", record_id, {"was": row["state"], "blobs": len(refs)}
        )


# --- the sender -------------------------------------------------------------------------------
@dataclass
class TransferReport:
    blobs_sent: int = 0
    blobs_present: int = 0
    bytes_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    state: str = "idle"
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _BlobResult:
    ref: str
    outcome: str  # sent | present | skipped | interrupted | failed
    nbytes: int = 0
    error: str | None = None
    link: bool = False  # the failure says the link is down
    refused: bool = False  # the object store refused (configuration)


class Transferer:
    """Ships the outboxes to the archive. ``run_once()`` drains what is due now (CLI, tests);
    ``start()``/``stop()`` run it in a background thread for ``hall serve``."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        client: ArchiveClient | None = None,
        rng: random.Random | None = None,
        batch: int | None = None,
    ) -> None:
        self.settings = settings
        t = settings.transfer
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rng = rng or random.Random()
        self.bucket = TokenBucket.for_kbit(t.bandwidth_kbit, stop=self._stop)
        self.windows = Windows.parse(t.windows)
        self.link = LinkState(t.probe_interval_s, t.probe_max_s, rng=self._rng)
        # Given a store or a client (tests, proxies), the caller owns it: it is used as it is
        # (no pacing added) and never closed here.
        self._store = store
        self._client = client
        self._own_store = store is None
        self._own_client = client is None
        self._batch = batch or max(8, t.concurrency * 4)
        self._package_turn = False
        self._state = "idle" if t.enabled else "disabled"
        self._problem: str | None = None  # the blocking problem ("enrollment problem: ...")
        self._blocked_kind: str | None = None  # 'enrollment' | 'store'
        self._blocked_retry_at = 0.0
        self._counts: dict[str, int] = dict.fromkeys(
            ("pending_blobs", "pending_bytes", "pending_packages", "rejected", "blocked", "transferred"), 0
        )
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # --- resources --------------------------------------------------------------------------
    def _object_store(self) -> ObjectStore:
        if self._store is None:
            self._store = object_store(self.settings)
        return self._store

    def _archive(self) -> ArchiveClient:
        if self._client is None:
            self._client = archive_client(self.settings, self.bucket)
        return self._client

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.transfer.concurrency, thread_name_prefix="transfer-blob"
            )
        return self._pool

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None
        close = getattr(self._store, "close", None)
        if self._own_store and callable(close):
            close()
            self._store = None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One transferer per data dir (two would do the same work twice)."""
        run = self.settings.run_dir
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TransferBusy(
                    "another transferer runs on this data dir (`hall serve` transfers in the background); "
                    "see `hall transfer status`"
                ) from None
            yield
        finally:
            os.close(fd)

    # --- one-shot ---------------------------------------------------------------------------
    def run_once(self, ctx: Context | None = None) -> TransferReport:
        """Drain everything that is due now; stop at the first sign of a link problem, a block,
        or the end of the transfer window. Opens (and closes) its own context unless given one."""
        from appliance.context import open_context

        report = TransferReport()
        with self._exclusive():
            own = ctx is None
            app = open_context(self.settings) if ctx is None else ctx
            try:
                self._prepare(app)
                while not self._stop.is_set():
                    wait = self._step(app, report)
                    if wait is None or wait > 0:
                        break
                self._refresh(app)
            except PacingStopped:
                pass
            finally:
                self._close()
                if own:
                    app.close()
        report.state = self._state
        report.problem = self._problem
        return report

    # --- background -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="transfer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the transfer thread did not stop within %.0f s", timeout)
            self._thread = None

    def hold(self, problem: str) -> None:
        """Do not run (the service could not provide what the transfer needs); health says why."""
        self._state, self._problem, self._last_error = "blocked", problem, problem

    def wake(self) -> None:
        """Look for new work now (after a confirmation, say) instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        from appliance.context import open_context

        try:
            with self._exclusive():
                ctx = open_context(self.settings, handed_over=True)
                try:
                    self._run(ctx)
                finally:
                    self._close()
                    ctx.close()
        except Exception as e:  # the thread ends: say why in health instead of dying silently
            problem = str(e) if isinstance(e, HallError) else f"{type(e).__name__}: {e}"
            self._state, self._last_error, self._problem = "blocked", problem, f"transfer stopped: {problem}"
            log.error("transfer stopped: %s", problem)

    def _run(self, ctx: Context) -> None:
        report = TransferReport()
        self._prepare(ctx)
        while not self._stop.is_set():
            try:
                wait = self._step(ctx, report)
            except PacingStopped:
                break
            except Exception as e:  # never let the thread die: report, wait, go on
                self._last_error = f"{type(e).__name__}: {e}"
                log.error("transfer step failed: %s", self._last_error)
                wait = 5.0
            with contextlib.suppress(sqlite3.Error):
                self._refresh(ctx)
            if wait is None:
                wait = IDLE_POLL_S
            if wait > 0:
                self._wake.wait(min(wait, IDLE_POLL_S if self._state == "idle" else 30.0))
                self._wake.clear()

    # --- state --------------------------------------------------------------------------------
    def _prepare(self, ctx: Context) -> None:
        from sync.enrollment import reseal_deks

        resealed = reseal_deks(ctx)
        if resealed:
            log.info("sealed %d data keys to the pinned archive key", resealed)
        problem = _blocked_problem(ctx.conn)
        if problem is not None:
            self._block(problem, "enrollment", at=0.0)  # retried at once: a restart is a fix attempt
        self._refresh(ctx)

    def _refresh(self, ctx: Context) -> None:
        self._counts = counts(ctx.conn)
        if self._last_success is None:
            self._last_success = _catalog_last(ctx.conn)[0]

    def _block(self, problem: str, kind: str, *, at: float | None = None) -> None:
        self._problem = problem
        self._blocked_kind = kind
        self._last_error = problem
        self._blocked_retry_at = time.time() + self.settings.transfer.retry_max_s if at is None else at
        self._state = "blocked"
        log.error("transfer blocked: %s", problem)

    def _unblock(self, ctx: Context) -> None:
        if self._blocked_kind is None:
            return
        log.info("transfer unblocked")
        self._problem = self._blocked_kind = None
        with transaction(ctx.conn):
            ctx.conn.execute(
                "UPDATE transfer_outbox SET state='pending', next_attempt_at=0, updated_at=?"
                " WHERE state='blocked'",
                (time.time(),),
            )

    def _success(self) -> None:
        self._last_success = time.time()
        self.link.up(success=True)

    def health(self) -> dict[str, Any]:
        t = self.settings.transfer
        return {
            "state": self._state,
            "enabled": t.enabled,
            "archive": self.settings.archive_base_url,
            "object_store": t.object_store,
            **self._counts,
            "last_success": _iso(self._last_success),
            "last_error": self._last_error,
            "problem": self._problem,
            "link": {
                **self.link.as_dict(),
                "since": _iso(self.link.since),
                "last_probe": _iso(self.link.last_probe),
                "next_probe_at": _iso(self.link.as_dict()["next_probe_at"]),
            },
            "windows": self.windows.describe(),
            "bandwidth_kbit": t.bandwidth_kbit,
        }

    # --- one step -------------------------------------------------------------------------------
    def _step(self, ctx: Context, report: TransferReport) -> float | None:
        """Do one unit of work. Returns 0 to go on at once, a wait in seconds, or None when
        nothing is due at all."""
        if not self.settings.transfer.enabled:
            self._state = "disabled"
            return None
        closed_for = self.windows.seconds_until_open(dt.datetime.now())
        if closed_for > 0:
            self._state = "outside_window"
            return closed_for
        now = time.time()
        if self._blocked_kind is not None:
            if now < self._blocked_retry_at:
                self._state = "blocked"
                return self._blocked_retry_at - now
            return self._retry_blocked(ctx, report)
        if self.link.state == "down":
            if now < self.link.next_probe_at:
                self._state = "link_down"
                return self.link.next_probe_at - now
            return self._probe()
        rows = ctx.conn.execute(
            "SELECT ref, record_id, attempts FROM blob_outbox WHERE next_attempt_at <= ?"
            " ORDER BY enqueued_at, record_id LIMIT ?",
            (now, self._batch),
        ).fetchall()
        # Blobs first, but a ready package goes between two blob batches: a backlog of scans
        # must not hold back the records people have already confirmed.
        row = None
        if not rows or self._package_turn:
            row = ctx.conn.execute(
                "SELECT * FROM transfer_outbox t WHERE state='pending' AND next_attempt_at <= ?"
                " AND NOT EXISTS (SELECT 1 FROM blob_outbox b WHERE b.record_id = t.record_id)"
                " ORDER BY enqueued_at, record_id LIMIT 1",
                (now,),
            ).fetchone()
        if row is not None:
            self._state = "sending"
            self._package_turn = False
            self._send_package(ctx, row, report)
            return 0.0
        if rows:
            self._state = "sending"
            self._package_turn = True
            self._send_blobs(ctx, rows, report)
            return 0.0
        self._state = "idle"
        due = ctx.conn.execute(
            "SELECT MIN(at) FROM (SELECT MIN(next_attempt_at) AS at FROM blob_outbox"
            " UNION ALL SELECT MIN(next_attempt_at) FROM transfer_outbox WHERE state='pending')"
        ).fetchone()[0]
        return None if due is None else max(0.01, float(due) - now)

    def _probe(self) -> float:
        now = time.time()
        self.link.last_probe = now
        try:
            answer = self._archive().health()
        except LinkDown as e:
            self._state = "link_down"
            self._last_error = str(e)
            return max(0.01, self.link.down(str(e), now) - now)
        self.link.up(now)
        self.link.archive_id = str(answer.get("archive_id") or "") or None
        at = answer.get("time")
        if isinstance(at, int | float):
            self.link.clock_skew_s = round(now - float(at), 1)
            if abs(self.link.clock_skew_s) > protocol.CLOCK_WINDOW_S / 2:
                log.warning(
                    "the box clock is %+.0f s off the archive's: set it (NTP)", self.link.clock_skew_s
                )
        log.info("the archive answers again; resuming the transfer")
        return 0.0

    def _retry_blocked(self, ctx: Context, report: TransferReport) -> float:
        """The slow re-probe of a block: one real item (a blocked package, or a blob)."""
        self._blocked_retry_at = time.time() + self.settings.transfer.retry_max_s
        if self._blocked_kind == "store":
            rows = ctx.conn.execute(
                "SELECT ref, record_id, attempts FROM blob_outbox ORDER BY enqueued_at LIMIT 1"
            ).fetchall()
            self._problem, self._blocked_kind = None, None
            if rows:
                self._send_blobs(ctx, rows, report)
            return 0.0
        row = ctx.conn.execute(
            "SELECT * FROM transfer_outbox WHERE state IN ('blocked','pending')"
            " ORDER BY state='pending', enqueued_at LIMIT 1"
        ).fetchone()
        if row is None:
            self._unblock(ctx)
            return 0.0
        self._send_package(ctx, row, report)
        return 0.0

    # --- blobs ----------------------------------------------------------------------------------
    def _upload(
        self, blobs: BlobStore, store: ObjectStore, ref: str, abort: threading.Event, *, retry: bool
    ) -> _BlobResult:
        """One blob. On a retry the object is PUT without asking whether it exists: the failed
        attempt may have left a truncated object under the key (some S3 servers keep what
        arrived before a connection was cut), and a PUT replaces it whole."""
        if abort.is_set() or self._stop.is_set():
            return _BlobResult(ref, "skipped")
        key = blob_key(self.settings.hall_id, ref)
        try:
            if not retry and store.exists(key):
                return _BlobResult(ref, "present")
            data = blobs.get(ref)
            store.put(key, data, pace=self.bucket)
        except ObjectStoreUnavailable as e:
            abort.set()
            return _BlobResult(ref, "failed", error=str(e), link=True)
        except ObjectStoreError as e:
            abort.set()
            return _BlobResult(ref, "failed", error=str(e), refused=True)
        except PacingStopped:  # stopped mid-PUT: the next try must not trust exists()
            return _BlobResult(ref, "interrupted")
        except (StoreError, OSError) as e:
            return _BlobResult(ref, "failed", error=f"blob {ref[:12]}: {e}")
        return _BlobResult(ref, "sent", len(data))

    def _send_blobs(self, ctx: Context, rows: list[sqlite3.Row], report: TransferReport) -> None:
        store = self._object_store()
        abort = threading.Event()
        pool = self._executor()
        futures: list[Future[_BlobResult]] = [
            pool.submit(
                self._upload, ctx.store.blobs, store, str(r["ref"]), abort, retry=int(r["attempts"]) > 0
            )
            for r in rows
        ]
        results = [f.result() for f in futures]
        attempts = {str(r["ref"]): int(r["attempts"]) for r in rows}
        now = time.time()
        t = self.settings.transfer
        done = [r.ref for r in results if r.outcome in ("sent", "present")]
        failed = [r for r in results if r.outcome == "failed"]
        interrupted = [(r.ref,) for r in results if r.outcome == "interrupted"]
        with transaction(ctx.conn):
            ctx.conn.executemany("DELETE FROM blob_outbox WHERE ref=?", [(ref,) for ref in done])
            ctx.conn.executemany("UPDATE blob_outbox SET attempts=attempts+1 WHERE ref=?", interrupted)
            ctx.conn.executemany(
                "UPDATE blob_outbox SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE ref=?",
                [
                    (
                        now + full_jitter(attempts[r.ref] + 1, t.retry_base_s, t.retry_max_s, self._rng),
                        r.error,
                        r.ref,
                    )
                    for r in failed
                ],
            )
        for r in results:
            if r.outcome == "sent":
                report.blobs_sent += 1
                report.bytes_sent += r.nbytes
            elif r.outcome == "present":
                report.blobs_present += 1
        report.failed += len(failed)
        if done:
            self._success()
        if failed:
            self._last_error = failed[0].error
            for r in failed:
                if not (r.link or r.refused):
                    log.error("blob %s not shipped: %s", r.ref[:12], r.error)
        refused = next((r for r in failed if r.refused), None)
        link = next((r for r in failed if r.link), None)
        if refused is not None:
            self._block(f"object store refused: {refused.error}", "store")
        elif link is not None:
            self._state = "link_down"
            self.link.down(link.error or "object store unreachable")
        if self._stop.is_set() and any(r.outcome in ("skipped", "interrupted") for r in results):
            raise PacingStopped("transfer stopping")

    # --- packages -------------------------------------------------------------------------------
    def _item_failed(self, ctx: Context, record_id: str, attempts: int, error: str) -> None:
        t = self.settings.transfer
        now = time.time()
        with transaction(ctx.conn):
            ctx.conn.execute(
                "UPDATE transfer_outbox SET attempts=?, next_attempt_at=?, last_error=?, updated_at=?"
                " WHERE record_id=?",
                (
                    attempts + 1,
                    now + full_jitter(attempts + 1, t.retry_base_s, t.retry_max_s, self._rng),
                    error[:500],
                    now,
                    record_id,
                ),
            )
        self._last_error = error

    def _send_package(self, ctx: Context, row: sqlite3.Row, report: TransferReport) -> None:
        conn = ctx.conn
        record_id, attempts = str(row["record_id"]), int(row["attempts"])
        rec = conn.execute("SELECT status FROM records WHERE id=?", (record_id,)).fetchone()
        if rec is None or rec["status"] not in ("confirmed", "transferred"):
            with transaction(conn):  # shredded (or never confirmed): nothing of it may be sent
                conn.execute("DELETE FROM transfer_outbox WHERE record_id=?", (record_id,))
            return
        try:
            signing = ctx.keyring.keys.archive_signing_key()
            device = ctx.keyring.keys.device_key()
            built = build_package(ctx, record_id)
        except KeyProblem as e:
            self._block(f"enrollment problem: {e}", "enrollment")
            return
        except HallError as e:
            report.failed += 1
            log.error("package of record %s cannot be built: %s", record_id, e)
            self._item_failed(ctx, record_id, attempts, f"package not built: {e}")
            return
        queued = "SELECT 1 FROM blob_outbox WHERE ref=?"
        waiting = [ref for ref in built.blob_refs if conn.execute(queued, (ref,)).fetchone()]
        if waiting:  # a blob of this record is queued under another row: ship it first
            with transaction(conn):
                conn.executemany(
                    "UPDATE blob_outbox SET record_id=? WHERE ref=?", [(record_id, ref) for ref in waiting]
                )
            return
        version = int(built.package["manifest"]["record_version"])
        answer = None
        try:
            for _ in range(REPLAY_TRIES):
                try:
                    answer = self._archive().post_package(device, built.body)
                    break
                except ReplayRefused:
                    continue  # a new nonce at once
            if answer is None:
                raise ArchiveAnswerInvalid(f"the archive called {REPLAY_TRIES} fresh nonces replays")
            receipt = self._verify(signing, answer.body, record_id, version, built.idempotency_key)
        except LinkDown as e:
            report.failed += 1
            self._item_failed(ctx, record_id, attempts, str(e))
            self._state = "link_down"
            self.link.down(str(e))
            return
        except EnrollmentProblem as e:
            report.failed += 1
            now = time.time()
            with transaction(conn):
                conn.execute(
                    "UPDATE transfer_outbox SET state='blocked', attempts=attempts+1, last_error=?,"
                    " updated_at=? WHERE record_id=?",
                    (str(e)[:500], now, record_id),
                )
            self._block(f"enrollment problem: {e}", "enrollment")
            return
        except (ArchiveAnswerInvalid, protocol.ProtocolError) as e:
            report.failed += 1
            log.error("package of record %s: %s", record_id, e)
            self._item_failed(ctx, record_id, attempts, str(e))
            return
        self._unblock(ctx)
        self._success()
        if receipt["status"] == "accepted":
            self._accepted(ctx, record_id, version, built.idempotency_key, answer.body)
            report.accepted += 1
        else:
            self._rejected(ctx, record_id, version, answer.body)
            report.rejected += 1

    def _verify(
        self, signing: Any, receipt: dict[str, Any], record_id: str, version: int, key: str
    ) -> dict[str, Any]:
        body = protocol.verify_receipt(signing, receipt)
        expected = {
            "record_id": record_id,
            "record_version": version,
            "idempotency_key": key,
            "hall_id": self.settings.hall_id,
        }
        wrong = [k for k, v in expected.items() if body.get(k) != v]
        if wrong:
            raise ArchiveAnswerInvalid(f"the receipt is for another package ({', '.join(wrong)} differ)")
        if body.get("status") not in ("accepted", "rejected"):
            raise ArchiveAnswerInvalid(
                f"receipt status {body.get('status')!r} is neither accepted nor rejected"
            )
        return body

    def _accepted(
        self, ctx: Context, record_id: str, version: int, key: str, receipt: dict[str, Any]
    ) -> None:
        conn = ctx.conn
        now = time.time()
        detail = {
            "receipt_id": receipt.get("receipt_id"),
            "archive_id": receipt.get("archive_id"),
            "version": version,
            "idempotency_key": key,
        }
        with transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO receipts(record_id, version, idempotency_key, receipt, received_at)"
                " VALUES (?,?,?,?,?)",
                (record_id, version, key, json.dumps(receipt, ensure_ascii=False, sort_keys=True), now),
            )
            row = conn.execute(
                "SELECT version FROM transfer_outbox WHERE record_id=?", (record_id,)
            ).fetchone()
            if row is None or int(row["version"]) != version:
                return  # done by another transferer, or edited meanwhile: the new version goes next
            rec = conn.execute("SELECT job_id FROM records WHERE id=?", (record_id,)).fetchone()
            conn.execute(
                "UPDATE records SET status='transferred', transferred_at=? WHERE id=?"
                " AND status IN ('confirmed','transferred')",
                (now, record_id),
            )
            conn.execute("DELETE FROM transfer_outbox WHERE record_id=?", (record_id,))
            add_event(conn, rec["job_id"], "transfer", "success", detail, record_id=record_id, agent=AGENT)
            ctx.audit.record(conn, AGENT, "record.transfer", record_id, detail)

    def _rejected(self, ctx: Context, record_id: str, version: int, receipt: dict[str, Any]) -> None:
        conn = ctx.conn
        now = time.time()
        raw = receipt.get("failed")
        failed: list[dict[str, Any]] = (
            [f for f in raw if isinstance(f, dict)] if isinstance(raw, list) else []
        )
        items = {
            "receipt_id": receipt.get("receipt_id"),
            "received_at": receipt.get("received_at"),
            "failed": failed,
        }
        names = [f"{f.get('property')}/{f.get('item')}" for f in failed]
        detail = {"receipt_id": receipt.get("receipt_id"), "version": version, "failed": names}
        with transaction(conn):
            row = conn.execute(
                "SELECT version FROM transfer_outbox WHERE record_id=?", (record_id,)
            ).fetchone()
            if row is None or int(row["version"]) != version:
                return
            conn.execute(
                "UPDATE transfer_outbox SET state='rejected', attempts=attempts+1, failed_items=?,"
                " last_error=?, updated_at=? WHERE record_id=?",
                (
                    json.dumps(items, ensure_ascii=False, sort_keys=True),
                    "rejected by the archive",
                    now,
                    record_id,
                ),
            )
            rec = conn.execute("SELECT job_id FROM records WHERE id=?", (record_id,)).fetchone()
            add_event(conn, rec["job_id"], "transfer", "failure", detail, record_id=record_id, agent=AGENT)
            ctx.audit.record(conn, AGENT, "record.transfer_rejected", record_id, detail)
        log.warning("the archive rejected record %s: %s", record_id, ", ".join(names))
