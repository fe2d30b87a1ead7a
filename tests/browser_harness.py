"""A real ``hall serve`` plus a headless Debian Chromium driven by Playwright, for the browser
tests of the staff UI (``tests/test_ui_browser.py``).

Everything binds 127.0.0.1. ``Observed`` collects what the browser did across all pages of one
context (console errors, failed requests, every request URL) so the tests can check that the UI
works offline under its CSP: no console errors, no request to any other origin.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page, Request, ViewportSize

from tests.serve_harness import HALL, ServeProcess

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
# The session cookie on a loopback address (appliance.api.deps.SECURE_COOKIE).
SESSION_COOKIE = "__Host-hall_session"

# Chromium logs a failed fetch()/EventSource response as a console error of this shape; the UI
# itself never writes to the console except for a screen that crashed while mounting.
_FETCH_STATUS = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})\b")


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str
    display_name: str


def add_user(data_dir: Path, account: Account) -> None:
    """``hall users add`` with the password on stdin, as a provisioning script would."""
    subprocess.run(
        [
            HALL,
            "--data-dir",
            str(data_dir),
            "users",
            "add",
            account.username,
            "--role",
            account.role,
            "--display-name",
            account.display_name,
            "--password-stdin",
        ],
        input=f"{account.password}\n".encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )


def wait_healthy(serve: ServeProcess, timeout: float = 60) -> float:
    """Wait until ``GET /api/v1/health`` answers; returns the seconds it took."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if serve.proc is not None and serve.proc.poll() is not None:
            raise AssertionError(f"hall serve exited early ({serve.proc.returncode}):\n{serve.log()}")
        try:
            with urllib.request.urlopen(f"{serve.url}/api/v1/health", timeout=2) as r:
                if r.status == 200 and json.loads(r.read())["ok"]:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"hall serve not healthy after {timeout}s:\n{serve.log()}")


@dataclass
class Observed:
    """What the browser did, across every page of a context."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    _console: list[tuple[str, str]] = field(default_factory=list, repr=False)
    # (status, URL) of API answers a test provokes on purpose; Chromium logs each as an error.
    expected: set[tuple[int, str]] = field(default_factory=set)

    def expect_status(self, status: int, path: str) -> None:
        self.expected.add((status, f"{self.origin}{path}"))

    def attach(self, context: BrowserContext) -> None:
        context.on("page", self._watch_page)
        context.on("request", self._on_request)
        context.on("requestfailed", self._on_failed)

    def _watch_page(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            url = str((msg.location or {}).get("url", ""))
            self._console.append((msg.text, url))
            self.console_errors.append(f"{msg.text} @ {url}")

    def _on_pageerror(self, exc: Error) -> None:
        self._console.append((f"uncaught: {exc}", ""))
        self.console_errors.append(f"uncaught: {exc}")

    def _on_request(self, request: Request) -> None:
        self.urls.append(request.url)

    def _on_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def unexpected_console_errors(self) -> list[str]:
        """Console errors other than Chromium's own line about one of the ``expected`` API
        answers (``Failed to load resource: … status of 401 …`` located at that URL)."""
        out = []
        for text, url in self._console:
            m = _FETCH_STATUS.match(text)
            if m and (int(m.group(1)), url) in self.expected:
                continue
            out.append(f"{text} @ {url}")
        return out

    def foreign_urls(self) -> list[str]:
        """Requests that went anywhere but the server's own origin (``data:`` URLs are inline)."""
        return [u for u in self.urls if not (u.startswith(f"{self.origin}/") or u.startswith("data:"))]


def screenshot(page: Page, test: str, step: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{test}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def api_get(base: str, path: str, cookie: str | None) -> tuple[int, Any]:
    """A GET on the API outside the browser with (or without) a session cookie value."""
    req = urllib.request.Request(f"{base}/api/v1{path}", headers={"Accept": "application/json"})
    if cookie is not None:
        req.add_header("Cookie", f"{SESSION_COOKIE}={cookie}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, json.loads(body) if body else None


def session_cookie(context: BrowserContext, base: str) -> str:
    values = [c["value"] for c in context.cookies(base) if c["name"] == SESSION_COOKIE]
    assert len(values) == 1, context.cookies(base)
    return values[0]


def job_timeline(data_dir: Path, job_id: str) -> dict[str, float]:
    """Server-side moments of one job (epoch seconds): landed/received, and the first event of
    each type (ingestion, preview, storage …)."""
    conn = sqlite3.connect(f"file:{data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        landed, received = conn.execute(
            "SELECT landed_at, received_at FROM jobs WHERE id=?", (job_id,)
        ).fetchone()
        out = {"landed": float(landed), "received": float(received)}
        for kind, at in conn.execute(
            "SELECT type, MIN(at) FROM events WHERE job_id=? GROUP BY type", (job_id,)
        ).fetchall():
            out[str(kind)] = float(at)
        return out
    finally:
        conn.close()
