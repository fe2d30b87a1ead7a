"""Counter benchmark: what a clerk at the counter sees, in a real browser, while scans flow.

A real ``hall serve`` (fresh data dir, real OCR, default workers and intake settings) is fed
generated single-page 200-dpi JPEG scans at a steady rate (default 30 pages/minute). Each file is
written under a temporary name in the inbox and renamed into place, the way a scanner finishes a
file (``--direct`` writes it in place instead). A clerk logs in through the UI's login screen in
headless Chromium (Playwright) and keeps the live-intake screen (``#/intake``) open; a second
browser (another workstation) searches meanwhile. Measured, all as wall-clock times of this
machine (``time.time()`` here, ``performance.timeOrigin + performance.now()`` in the page; the
offset between the two is checked and printed):

* landing -> ``job.preview`` in the browser: the intake screen's own EventSource, wrapped by an
  init script that time-stamps each ``job.*`` event before the UI's listeners run;
* landing -> the card's thumbnail ``<img>`` loaded, and painted (the task after the next frame);
* landing -> ``job.stored`` in the browser;
* the search API from the page, ``fetch('/api/v1/search?q=…')`` every ``--search-every`` s (a
  name, an address fragment, a common word, an ID number of a scan stored by then);
* the search page: the UI navigated to ``#/search?q=…`` until the hits are rendered, and painted.

Landing time = the wall-clock time right after the rename (``--direct``: after the close). Jobs
are matched to files by the file's mtime, which the service keeps as the job's ``landed_at``
(set just before the rename). Components of the thumbnail latency come from the catalog's job
events (``at`` of ingestion and preview) and from the page (event arrival, when the UI sets the
``<img>`` source, resource timing of the preview request, load). After the service has stopped,
the preview's steps (sandboxed decode, ``clean_page``, JPEG encode) are timed once more on the
idle machine.

Usage: .venv/bin/python benchmarks/counter_bench.py [--pages 40] [--rate 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from appliance.context import initialise
from appliance.samples import SampleDocument, generate_documents
from appliance.settings import Settings

HALL = str(Path(sys.executable).with_name("hall"))
CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "clerk1", "bench-Clerk-2026!"
THUMB_TARGET_S = 1.5
SEARCH_TARGET_MS = 200.0

# Installed before any script of the intake page runs. Wraps EventSource so that every job.*
# event of the UI's own stream is time-stamped on arrival (this listener is added in the
# constructor, before the UI's); notes when the UI sets a card thumbnail's src; time-stamps each
# card thumbnail when it has loaded and in the task after the next frame (after its paint).
INIT_JS = r"""
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const bench = { events: [], imgs: {}, srcSet: {}, errors: [], streams: 0 };
  window.__bench = bench;
  try { performance.setResourceTimingBufferSize(100000); } catch (_) { /* keep the default */ }
  const TYPES = ['job.received', 'job.preview', 'job.stored', 'job.quarantined', 'job.duplicate'];
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, init) {
      super(url, init);
      bench.streams += 1;
      for (const type of TYPES) {
        this.addEventListener(type, (e) => {
          let data = null;
          try { data = JSON.parse(e.data); } catch (_) { /* keep null */ }
          bench.events.push({ type, at: now(), data });
        });
      }
    }
  };
  const jobOf = (src) => {
    const m = /\/jobs\/([^/?]+)\/preview/.exec(src || '');
    return m ? decodeURIComponent(m[1]) : null;
  };
  const srcProp = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, 'src');
  Object.defineProperty(HTMLImageElement.prototype, 'src', {
    ...srcProp,
    set(value) {
      const job = jobOf(String(value));
      if (job && !(job in bench.srcSet)) bench.srcSet[job] = now();
      srcProp.set.call(this, value);
    },
  });
  const cardImg = (el) => el instanceof HTMLImageElement && el.classList.contains('card-img');
  document.addEventListener('error', (e) => {
    if (cardImg(e.target)) bench.errors.push({ job: jobOf(e.target.src), at: now() });
  }, true);
  document.addEventListener('load', (e) => {
    if (!cardImg(e.target)) return;
    const job = jobOf(e.target.currentSrc || e.target.src);
    if (!job || bench.imgs[job]) return;
    const rec = { loaded: now(), painted: null };
    bench.imgs[job] = rec;
    requestAnimationFrame(() => setTimeout(() => { rec.painted = now(); }, 0));
  }, true);
})();
"""

# One API search, timed in the page.
API_SEARCH_JS = """
async (q) => {
  const t0 = performance.now();
  const url = '/api/v1/search?q=' + encodeURIComponent(q) + '&limit=20';
  const r = await fetch(url, { credentials: 'same-origin' });
  const data = await r.json();
  const ms = performance.now() - t0;
  return { ms, status: r.status, server_ms: data.ms, hits: (data.hits || []).length };
}
"""

# Navigate the UI to #/search?q=… and wait until the hits (or "none found") are rendered:
# search.js fills the ".search-meta" line and the result list in one task. Then the task after
# the next frame (painted).
UI_SEARCH_JS = """
async (q) => {
  const now = () => performance.now();
  const meta = document.querySelector('.search-meta');
  if (!meta) throw new Error('not on the search screen');
  meta.textContent = '';
  const t0 = now();
  const rendered = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('search page timed out')); }, 15000);
    const obs = new MutationObserver(() => {
      if (meta.textContent) { obs.disconnect(); clearTimeout(timer); resolve(now()); }
    });
    obs.observe(meta, { childList: true, characterData: true, subtree: true });
    location.hash = '#/search?q=' + encodeURIComponent(q);
  });
  const painted = await new Promise((r) => requestAnimationFrame(() => setTimeout(() => r(now()), 0)));
  const hits = document.querySelectorAll('.search-results .hit').length;
  return { rendered_ms: rendered - t0, painted_ms: painted - t0, hits };
}
"""

RESOURCES_JS = """
() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/preview')).map((e) => ({
  name: e.name, start: performance.timeOrigin + e.startTime, end: performance.timeOrigin + e.responseEnd,
  status: e.responseStatus,
}))
"""


@dataclass
class Drop:
    name: str
    mtime: float  # the file's mtime = the job's landed_at: matches jobs to files
    landed: float  # wall clock when the file was complete in the inbox (renamed in / closed)


@dataclass
class Feed:
    """Feeds the scans into the inbox at a steady rate (run in a thread)."""

    files: list[tuple[str, bytes]]
    inbox: Path
    rate: float
    direct: bool
    drops: list[Drop] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, name="feeder", daemon=True)

    def run(self) -> None:
        try:
            next_at = time.monotonic()
            for name, data in self.files:
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                dest = self.inbox / name
                if self.direct:  # written in place: the watcher sees the writer close it
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        mtime = os.fstat(fd).st_mtime
                else:  # a scanner: a temporary (ignored) name, renamed into place when complete
                    tmp = self.inbox / f".{name}.part"
                    tmp.write_bytes(data)
                    mtime = time.time()
                    os.utime(tmp, (mtime, mtime))
                    os.replace(tmp, dest)
                self.drops.append(Drop(name, mtime, time.time()))
                next_at += 60.0 / self.rate  # one page per file
        finally:
            self.done.set()


class CpuShare(threading.Thread):
    """How busy the machine was, in cores, once a second: the service (``hall serve`` and its
    workers and decoders), the rest of this benchmark (this process, the Playwright driver, the
    two browsers, which on a real counter run on the clerks' PCs) and every other process (other
    work on a shared machine)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="cpu-share")
        self.service_pid = 0  # set once the service runs
        self.stop_flag = threading.Event()
        self.samples: dict[str, list[float]] = {"service": [], "browsers": [], "others": []}

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))

    def _tree(self) -> dict[int, tuple[bool, float]]:
        """pid -> (in the service, cpu seconds incl. reaped children: each process once)."""
        out: dict[int, tuple[bool, float]] = {}
        me = psutil.Process()
        service: set[int] = set()
        try:
            root = psutil.Process(self.service_pid)
            service = {root.pid, *(c.pid for c in root.children(recursive=True))}
        except psutil.Error:
            pass
        for p in [me, *me.children(recursive=True)]:
            try:
                c = p.cpu_times()
                out[p.pid] = (p.pid in service, c.user + c.system + c.children_user + c.children_system)
            except psutil.Error:
                pass
        return out

    def run(self) -> None:
        busy, tree, t = self._busy(), self._tree(), time.monotonic()
        while not self.stop_flag.wait(1.0):
            busy2, tree2, t2 = self._busy(), self._tree(), time.monotonic()
            used = {True: 0.0, False: 0.0}
            for pid, (in_service, v) in tree2.items():
                used[in_service] += v - tree.get(pid, (in_service, v))[1]  # a new process: from now on
            dt = t2 - t
            self.samples["service"].append(used[True] / dt)
            self.samples["browsers"].append(used[False] / dt)
            self.samples["others"].append(max(0.0, busy2 - busy - used[True] - used[False]) / dt)
            busy, tree, t = busy2, tree2, t2

    def summary(self) -> dict[str, float]:
        out = {"cores": float(psutil.cpu_count() or 0)}
        for k, v in self.samples.items():
            out[f"{k}_mean"] = round(statistics.fmean(v), 2) if v else 0.0
        out["others_max"] = round(max(self.samples["others"], default=0.0), 2)
        return out


class Serve:
    """``hall serve`` on a free loopback port, in its own process group."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "bench-serve.log"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            HALL,
            "--data-dir",
            str(self.data_dir),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"hall serve exited early ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"hall serve did not answer:\n{self.log_tail()}")

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM to the group; the service's exit status (after SIGKILL if it hangs)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        deadline = time.monotonic() + 10  # the rest of the group (workers, decoder zygotes)
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _catalog(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def _job_counts(data_dir: Path) -> tuple[int, int]:
    """(finished, pending) jobs."""
    conn = _catalog(data_dir)
    try:
        done, pending = conn.execute(
            "SELECT SUM(state IN ('stored','quarantined','duplicate')),"
            " SUM(state IN ('received','processing')) FROM jobs"
        ).fetchone()
    finally:
        conn.close()
    return int(done or 0), int(pending or 0)


def _finished(data_dir: Path, n: int) -> bool:
    done, pending = _job_counts(data_dir)
    return done >= n and not pending


def _stored_names(data_dir: Path, drops: list[Drop]) -> list[str]:
    """Names of the fed files whose jobs are stored, in landing order."""
    conn = _catalog(data_dir)
    try:
        stored = [r[0] for r in conn.execute("SELECT landed_at FROM jobs WHERE state='stored'")]
    finally:
        conn.close()
    return [d.name for d in list(drops) if any(abs(d.mtime - t) < 0.001 for t in stored)]


def _server_jobs(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Per job: landed_at, state, and the time of the first job event of each type."""
    conn = _catalog(data_dir)
    try:
        jobs = {
            r["id"]: {"landed": r["landed_at"], "state": r["state"]}
            for r in conn.execute("SELECT id, landed_at, state FROM jobs")
        }
        for r in conn.execute(
            "SELECT job_id, type, MIN(at) AS at FROM events WHERE page_idx IS NULL GROUP BY job_id, type"
        ):
            if r["job_id"] in jobs:
                jobs[r["job_id"]][r["type"]] = r["at"]
    finally:
        conn.close()
    return jobs


def _create_clerk(data_dir: Path) -> None:
    cmd = [HALL, "--data-dir", str(data_dir), "users", "add", USER, "--role", "clerk"]
    subprocess.run(
        [*cmd, "--display-name", "柜台一", "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        check=True,
        capture_output=True,
    )


def _queries(doc: SampleDocument) -> list[tuple[str, str]]:
    f = doc.fields
    start = len(f["address"]) // 3
    return [
        ("name", f["name"]),
        ("address", f["address"][start : start + 6]),
        ("common_word", "申请人承诺"),
        ("id_number", f["id_number"]),
    ]


def _pct(values: Sequence[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p95": round(_pct(values, 0.95), 3),
        "max": round(max(values), 3),
    }


def _clock_offset(page: Page) -> float:
    """The page's wall clock minus Python's, in seconds (~0: the same system clock)."""
    best = (math.inf, 0.0)
    for _ in range(5):
        t0 = time.time()
        b = float(page.evaluate("() => performance.timeOrigin + performance.now()")) / 1000
        t1 = time.time()
        best = min(best, (t1 - t0, b - (t0 + t1) / 2))
    return best[1]


def _login(browser: Browser, url: str, *, timed: bool) -> Page:
    """One page in its own browser, logged in through the UI's login screen (a clerk lands on the
    live-intake screen). ``timed`` installs the time-stamps of INIT_JS."""
    context = browser.new_context(base_url=url, viewport={"width": 1366, "height": 768}, locale="zh-CN")
    if timed:
        context.add_init_script(INIT_JS)
    page = context.new_page()
    page.goto("/#/login")
    page.fill("#login-username", USER)
    page.fill("#login-password", PASSWORD)
    page.click("form.login-form button[type=submit]")
    page.wait_for_function("() => location.hash.startsWith('#/intake')", timeout=15000)
    page.wait_for_selector(".live-status.live-live", timeout=15000)
    return page


def _in_page(page: Page, script: str, q: str) -> dict[str, Any]:
    out: dict[str, Any] = page.evaluate(script, q)
    return out


@dataclass
class Browsing:
    """What the browsers saw."""

    bench: dict[str, Any] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)
    api_searches: list[dict[str, Any]] = field(default_factory=list)
    ui_searches: list[dict[str, Any]] = field(default_factory=list)
    clock_offset_ms: list[float] = field(default_factory=list)
    visibility: list[str] = field(default_factory=list)


def _browse(
    args: argparse.Namespace, serve: Serve, feed: Feed, docs: list[SampleDocument], cpu: CpuShare
) -> Browsing:
    """Log in, start the feed, search while the scans flow, until every job has finished."""
    out = Browsing()
    warm, docs_by_name = docs[0], {d.filename: d for d in docs}
    with sync_playwright() as pw:
        # Two browsers with one page each, like two workstations: a second tab (or window) of
        # one browser is throttled by Chromium when it is not the front one (lazy images
        # requested and frames drawn about once a second), which is not what a clerk sees.
        browsers = [pw.chromium.launch(executable_path=CHROMIUM, headless=True) for _ in range(2)]
        try:
            intake = _login(browsers[0], serve.url, timed=True)
            search = _login(browsers[1], serve.url, timed=False)
            search.evaluate("() => { location.hash = '#/search'; }")
            search.wait_for_selector(".search-meta", state="attached", timeout=15000)
            out.clock_offset_ms.append(round(_clock_offset(intake) * 1000, 1))
            out.visibility = [p.evaluate("() => document.visibilityState") for p in (intake, search)]
            feed.thread.start()
            cpu.start()
            t0 = time.monotonic()
            k_api = k_ui = 0
            next_api, next_ui = t0 + 1.0, t0 + 2.5
            while not (feed.done.is_set() and _finished(serve.data_dir, len(docs))):
                if time.monotonic() - t0 > len(docs) * 60 / args.rate + 600:
                    raise SystemExit(f"not done in time:\n{serve.log_tail()}")
                now = time.monotonic()
                if now < min(next_api, next_ui):
                    time.sleep(min(0.1, min(next_api, next_ui) - now))
                    continue
                # query scans stored by now (at first: the warm-up scan)
                ready = [docs_by_name[n] for n in _stored_names(serve.data_dir, feed.drops)] or [warm]
                if now >= next_api:
                    kind, q = _queries(ready[-1 - (k_api // 4) % len(ready)])[k_api % 4]
                    out.api_searches.append({"kind": kind, "q": q, **_in_page(search, API_SEARCH_JS, q)})
                    k_api += 1
                    next_api += args.search_every
                else:
                    kind, q = _queries(ready[-1 - (k_ui // 4) % len(ready)])[(k_ui + 1) % 4]
                    out.ui_searches.append({"kind": kind, "q": q, **_in_page(search, UI_SEARCH_JS, q)})
                    k_ui += 1
                    next_ui += args.ui_search_every
            time.sleep(1.0)  # the last events reach the page
            out.bench = intake.evaluate("() => window.__bench")
            out.resources = intake.evaluate(RESOURCES_JS)
            out.clock_offset_ms.append(round(_clock_offset(intake) * 1000, 1))
        finally:
            for b in browsers:
                b.close()
    return out


def run_bench(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    src = root / "scans"
    docs = generate_documents(src, args.pages + 1, seed=args.seed, dpi=200, formats=("jpeg",))
    files = [(d.filename, (src / d.filename).read_bytes()) for d in docs[1:]]  # read before the clock
    data = root / "data"
    settings = Settings.load(data, {})
    initialise(settings)
    inbox = settings.drop_path(settings.drop_folders[0])
    _create_clerk(data)
    serve = Serve(data)
    feed = Feed(files, inbox, args.rate, args.direct)
    cpu = CpuShare()
    try:
        serve.start()
        # One warm-up scan, not counted: the OCR models, the decoder zygotes and the preview path
        # are loaded, and the search has a record, before the clock starts.
        (inbox / docs[0].filename).write_bytes((src / docs[0].filename).read_bytes())
        deadline = time.monotonic() + 300
        while _job_counts(data) != (1, 0):
            if time.monotonic() > deadline:
                raise SystemExit(f"the warm-up scan was not stored:\n{serve.log_tail()}")
            time.sleep(0.3)
        cpu.service_pid = serve.proc.pid if serve.proc else 0
        seen = _browse(args, serve, feed, docs, cpu)
    finally:
        cpu.stop_flag.set()
        feed.stop.set()
        if feed.thread.is_alive():
            feed.thread.join(10)
        exit_status = serve.stop()
    if exit_status != 0:
        print(f"hall serve exited with {exit_status} on SIGTERM:\n{serve.log_tail()}", file=sys.stderr)
    res = _analyse(feed.drops, _server_jobs(data), seen)
    res["setup"] = {
        "pages": len(files),
        "rate_pages_per_min": args.rate,
        "write": "in place" if args.direct else "temporary name + rename",
        "clock_offset_ms": seen.clock_offset_ms,
        "visibility": seen.visibility,
        "event_streams": seen.bench.get("streams"),
        "serve_exit_status": exit_status,
        "cpu": cpu.summary(),
        "service": _service_settings(settings),
    }
    res["idle_preview_steps_ms"] = _idle_preview_steps(data, src, docs[1 : 1 + args.idle_samples])
    return res


def _service_settings(settings: Settings) -> dict[str, Any]:
    """The settings the measured numbers depend on."""
    from appliance.api.routes import intake

    return {
        "settle_seconds": settings.intake.settle_seconds,
        "closed_settle_seconds": settings.intake.closed_settle_seconds,
        "event_poll_seconds": getattr(intake, "POLL_S", None),
        "workers": settings.pipeline.workers,
        "worker_nice": getattr(settings.pipeline, "worker_nice", None),
    }


def _analyse(drops: list[Drop], jobs: dict[str, dict[str, Any]], seen: Browsing) -> dict[str, Any]:
    nan = math.nan
    job_of: dict[str, Drop] = {}  # by the file's mtime, which the service keeps as landed_at
    for job_id, j in jobs.items():
        best = min(drops, key=lambda d: abs(d.mtime - j["landed"]), default=None)
        if best is not None and abs(best.mtime - j["landed"]) < 0.001:
            job_of[job_id] = best
    arrived: dict[tuple[str, str], float] = {}
    for ev in seen.bench.get("events", []):
        arrived.setdefault((ev["type"], (ev.get("data") or {}).get("job_id", "")), ev["at"] / 1000)
    fetched: dict[str, dict[str, float]] = {}
    bad_status: list[int] = []
    for r in seen.resources:
        job = r["name"].split("/jobs/")[1].split("/")[0]
        fetched.setdefault(job, {"start": r["start"] / 1000, "end": r["end"] / 1000})
        if r.get("status") not in (None, 0, 200):
            bad_status.append(r["status"])

    rows: list[dict[str, Any]] = []
    for job_id, drop in job_of.items():
        j, img, rs = jobs[job_id], seen.bench["imgs"].get(job_id) or {}, fetched.get(job_id, {})
        event = arrived.get(("job.preview", job_id), nan)
        src_set = (seen.bench["srcSet"].get(job_id) or nan) / 1000
        loaded = (img.get("loaded") or nan) / 1000
        rows.append(
            {
                "file": drop.name,
                "job": job_id,
                "state": j["state"],
                "event": event - drop.landed,
                "thumb_loaded": loaded - drop.landed,
                "thumb_painted": (img.get("painted") or nan) / 1000 - drop.landed,
                "stored_event": arrived.get(("job.stored", job_id), nan) - drop.landed,
                "stored_server": j.get("storage", nan) - drop.landed,
                "settle": j.get("ingestion", nan) - drop.landed,
                "preview_build": j.get("preview", nan) - j.get("ingestion", nan),
                "sse_delivery": event - j.get("preview", nan),
                "img_src_set": src_set - event,
                "img_request_wait": rs.get("start", nan) - src_set,
                "img_http": rs.get("end", nan) - rs.get("start", nan),
                "img_decode": loaded - rs.get("end", nan),
            }
        )
    rows.sort(key=lambda r: r["file"])
    names = [k for k in (rows[0] if rows else {}) if k not in ("file", "job", "state")]
    api, ui = seen.api_searches, seen.ui_searches
    return {
        "files_dropped": len(drops),
        "jobs_matched": len(job_of),
        "latency_s": {n: _summary([r[n] for r in rows if not math.isnan(r[n])]) for n in names},
        "missing": {
            "preview_event": sum(math.isnan(r["event"]) for r in rows),
            "thumbnail": sum(math.isnan(r["thumb_loaded"]) for r in rows),
            "stored_event": sum(math.isnan(r["stored_event"]) for r in rows),
        },
        "thumbnail_errors": len(seen.bench.get("errors", [])),
        "thumbnail_bad_status": bad_status,
        "search_api_ms": _summary([s["ms"] for s in api]),
        "search_api_server_ms": _summary([s["server_ms"] for s in api if s.get("server_ms") is not None]),
        "search_api_by_kind": {
            k: _summary([s["ms"] for s in api if s["kind"] == k]) for k in sorted({s["kind"] for s in api})
        },
        "search_api_hits": sum(s["hits"] > 0 for s in api),
        "search_page_rendered_ms": _summary([s["rendered_ms"] for s in ui]),
        "search_page_painted_ms": _summary([s["painted_ms"] for s in ui]),
        "search_page_hits": sum(s["hits"] > 0 for s in ui),
        "searches": {"api": api, "page": ui},
        "per_file": [
            {k: (None if v != v else round(v, 3)) if isinstance(v, float) else v for k, v in r.items()}
            for r in rows
        ],
    }


def _idle_preview_steps(data: Path, src: Path, docs: list[SampleDocument]) -> dict[str, Any]:
    """The preview's steps on the idle machine (the service has stopped), as make_preview does
    them: sandboxed decode (the first page), the native clean-up, the thumbnail JPEG encode."""
    import cv2

    from appliance import imaging
    from appliance.decoding.sandbox import decode_sandboxed, shutdown_sandbox

    settings = Settings.load(data, {})
    scratch = data / "bench-scratch"
    steps: dict[str, list[float]] = {"decode": [], "clean_page": [], "jpeg_encode": [], "total": []}
    try:
        for i, d in enumerate([*docs[:1], *docs]):  # the first one starts the zygote: not counted
            scratch.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            pixels = decode_sandboxed(src / d.filename, settings.decode, scratch, first_pages=4)[0].load()
            t1 = time.perf_counter()
            cleaned = imaging.clean_page(pixels, thumbnail_max_side=settings.clean.thumbnail_max_side)
            t2 = time.perf_counter()
            cv2.imencode(".jpg", cleaned.thumbnail, [cv2.IMWRITE_JPEG_QUALITY, 80])
            t3 = time.perf_counter()
            shutil.rmtree(scratch, ignore_errors=True)
            if i:
                for k, v in (("decode", t1 - t0), ("clean_page", t2 - t1), ("jpeg_encode", t3 - t2)):
                    steps[k].append(v * 1000)
                steps["total"].append((t3 - t0) * 1000)
    finally:
        shutdown_sandbox()
    return {k: _summary(v) for k, v in steps.items()}


def _line(label: str, s: dict[str, float], unit: str = "s", scale: float = 1.0) -> str:
    """p50/p95/max of ``s`` (seconds printed with 2 decimals, milliseconds with 1)."""
    if not s.get("n"):
        return f"  {label:<38} (none)"
    fmt = ".2f" if unit == "s" else ".1f"
    p50, p95, mx = (float(s[k]) * scale for k in ("p50", "p95", "max"))
    return (
        f"  {label:<38} p50 {p50:7{fmt}} {unit}  p95 {p95:7{fmt}} {unit}  max {mx:7{fmt}} {unit}"
        f"  (n={int(s['n'])})"
    )


def _verdict(name: str, value: float, target: float, unit: str) -> str:
    ok = "PASS" if value <= target else "FAIL"
    return f"{ok} {name} p95 {value:.2f} {unit} (target <= {target:g} {unit})"


def report(res: dict[str, Any]) -> None:
    st, lat, cpu = res["setup"], res["latency_s"], res["setup"]["cpu"]
    print(
        f"{st['pages']} single-page 200-dpi JPEG scans at {st['rate_pages_per_min']:g} pages/min"
        f" ({st['write']}); {res['jobs_matched']}/{res['files_dropped']} matched to jobs;"
        f" page clock - python clock {st['clock_offset_ms']} ms; serve exit status {st['serve_exit_status']}"
    )
    print(
        f"cpu during the run, cores of {cpu['cores']:g}: service {cpu['service_mean']}, browsers and driver"
        f" {cpu['browsers_mean']}, other processes {cpu['others_mean']} (at most {cpu['others_max']})"
    )
    print("service: " + ", ".join(f"{k} {v}" for k, v in st["service"].items()))
    print("landing -> in the clerk's browser (live-intake screen):")
    print(_line("job.preview event", lat["event"]))
    print(_line("thumbnail loaded", lat["thumb_loaded"]))
    print(_line("thumbnail painted", lat["thumb_painted"]))
    print(_line("job.stored event", lat["stored_event"]))
    print("where the time to the thumbnail goes:")
    print(_line("settle + take (landing -> received)", lat["settle"]))
    print(_line("preview build (received -> preview)", lat["preview_build"]))
    print(_line("SSE delivery (preview -> browser)", lat["sse_delivery"], "ms", 1000))
    print(_line("event -> UI sets the <img> src", lat["img_src_set"], "ms", 1000))
    print(_line("src set -> image request starts", lat["img_request_wait"], "ms", 1000))
    print(_line("image request -> response end", lat["img_http"], "ms", 1000))
    print(_line("response end -> <img> load", lat["img_decode"], "ms", 1000))
    idle = res["idle_preview_steps_ms"]
    print("preview steps on the idle machine (after the run):")
    for k in ("decode", "clean_page", "jpeg_encode", "total"):
        print(_line(k, idle[k], "ms"))
    print("search from a second browser while scans flow:")
    print(
        f"  hits found by {res['search_api_hits']} of {res['search_api_ms'].get('n', 0)} API searches"
        f" and {res['search_page_hits']} of {res['search_page_rendered_ms'].get('n', 0)} page searches"
    )
    print(_line("API fetch", res["search_api_ms"], "ms"))
    print(_line("  of which in the handler ('ms')", res["search_api_server_ms"], "ms"))
    for kind, s in res["search_api_by_kind"].items():
        print(_line(f"  {kind}", s, "ms"))
    print(_line("search page rendered", res["search_page_rendered_ms"], "ms"))
    print(_line("search page painted", res["search_page_painted_ms"], "ms"))
    missing = {k: v for k, v in res["missing"].items() if v}
    if missing or res["thumbnail_errors"] or res["thumbnail_bad_status"]:
        print(
            f"missing: {missing}; thumbnail errors: {res['thumbnail_errors']};"
            f" non-200 thumbnails: {res['thumbnail_bad_status']}"
        )
    print(_verdict("thumbnail event", lat["event"].get("p95", math.inf), THUMB_TARGET_S, "s"))
    print(_verdict("thumbnail painted", lat["thumb_painted"].get("p95", math.inf), THUMB_TARGET_S, "s"))
    print(_verdict("search API", res["search_api_ms"].get("p95", math.inf), SEARCH_TARGET_MS, "ms"))
    print(
        _verdict("search page", res["search_page_rendered_ms"].get("p95", math.inf), SEARCH_TARGET_MS, "ms")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Thumbnail and search latency as a clerk's browser sees them.")
    ap.add_argument("--pages", type=int, default=40, help="scans to feed, one page each (default 40)")
    ap.add_argument("--rate", type=float, default=30.0, help="pages per minute (default 30)")
    ap.add_argument("--search-every", type=float, default=2.0, help="seconds between API searches")
    ap.add_argument("--ui-search-every", type=float, default=6.0, help="seconds between search-page loads")
    ap.add_argument("--direct", action="store_true", help="write scans in place, not temporary name + rename")
    ap.add_argument("--idle-samples", type=int, default=8, help="scans for the idle preview-step timing")
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hall-counter-bench-") as tmp:
        res = run_bench(args, Path(tmp))
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, ensure_ascii=False))
    if res["setup"]["serve_exit_status"] != 0:
        sys.exit("hall serve did not exit 0 on SIGTERM")


if __name__ == "__main__":
    main()
