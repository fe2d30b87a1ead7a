"""Runs the real ``hall serve`` as a subprocess in its own process group, so a test can stop
it politely (SIGTERM) or kill the whole service at once (SIGKILL, like a power cut for the
processes). Every process it starts, it stops."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HALL = str(Path(sys.executable).with_name("hall"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``hall serve`` with the UI/API on a free loopback port (``url``)."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                HALL,
                "--data-dir",
                str(self.data_dir),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reap_group()

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reap_group()
        return self.proc.returncode

    def _reap_group(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.proc.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def job_states(data_dir: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    finally:
        conn.close()


def wait_until_done(
    data_dir: Path, expected: int, timeout: float, serve: ServeProcess | None = None
) -> dict[str, int]:
    """Wait until ``expected`` jobs exist and none is pending."""
    deadline = time.monotonic() + timeout
    states: dict[str, int] = {}
    while time.monotonic() < deadline:
        states = job_states(data_dir)
        finished = sum(states.get(s, 0) for s in ("stored", "quarantined", "duplicate"))
        if finished >= expected and not states.get("received") and not states.get("processing"):
            return states
        if serve is not None and serve.proc is not None and serve.proc.poll() is not None:
            raise AssertionError(f"hall serve exited early ({serve.proc.returncode}):\n{serve.log()}")
        time.sleep(0.3)
    tail = serve.log() if serve else ""
    raise AssertionError(f"not done after {timeout}s: {states}\n{tail}")
