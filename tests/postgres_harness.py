"""A throwaway PostgreSQL 15 server for tests (Debian's binaries in /usr/lib/postgresql/15/bin):
``initdb`` into a fresh folder under /tmp, listening on 127.0.0.1 only (a free port) with its
unix socket in that folder, trust authentication for the local superuser. The tests run as root,
so initdb and the server run as the ``postgres`` user (``runuser -u postgres --``) with the folder
chowned to it (a pytest tmp_path under /tmp/pytest-of-root is not reachable for that user).

Durability settings are relaxed (``fsync=off``): this server's data dies with the test run.
Whatever happens, the server is stopped (``pg_ctl stop -m fast``, then SIGKILL of the postmaster
named in ``postmaster.pid``) and the folder removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"
READY_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    cmd = ["runuser", "-u", USER, "--", *argv] if os.geteuid() == 0 else list(argv)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class PostgresServer:
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={dbname} connect_timeout=10"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        if self.data_dir.is_dir():
            _as_postgres(
                str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "20"
            )
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                log = (server.root / "server.log").read_text(errors="replace")[-2000:]
                raise PostgresUnavailable(f"PostgreSQL did not become ready:\n{log}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    if not (PG_BIN / "postgres").exists():
        raise PostgresUnavailable(
            f"PostgreSQL 15 is not installed at {PG_BIN} (scripts/bootstrap.sh installs it)"
        )
    root = Path(tempfile.mkdtemp(prefix="hall-pg-"))
    server = PostgresServer(root, free_port())
    try:
        server.socket_dir.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            for p in (root, server.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        init = _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(server.data_dir), "-U", USER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr[-2000:]}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={server.socket_dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        start = _as_postgres(
            str(PG_BIN / "pg_ctl"), "start", "-D", str(server.data_dir), "-l", str(root / "server.log"),
            "-o", options, "-w", "-t", "30",
        )  # fmt: skip
        if start.returncode != 0:
            log = (
                (root / "server.log").read_text(errors="replace")[-2000:]
                if (root / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr[-1000:]}\n{log}")
        _ready(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
