"""The fault-injecting proxy used by the transfer tests and benchmark really injects its faults."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fault_proxy import FaultProxy, Faults


class _Echo(socketserver.BaseRequestHandler):
    seen: list[int] = []  # noqa: RUF012 - shared on purpose: what the server received

    def handle(self) -> None:
        total = 0
        while data := self.request.recv(65536):
            total += len(data)
            if total >= 200_000:
                break
        _Echo.seen.append(total)
        self.request.sendall(b"x" * 1000)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _Echo.seen.clear()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _call(port: int, payload: bytes) -> bytes:
    """What came back; b"" when the connection was closed or reset without an answer."""
    out = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(payload)
            while data := s.recv(65536):
                out += data
    except (ConnectionResetError, BrokenPipeError):
        return b""
    return out


def test_rate_cap_is_honoured(echo: int) -> None:
    with FaultProxy(echo, Faults(rate_bps=1_000_000)) as proxy:
        start = time.monotonic()
        assert _call(proxy.port, b"a" * 200_000) == b"x" * 1000
        elapsed = time.monotonic() - start
    assert 0.17 <= elapsed <= 0.5, f"201 kB at 1 MB/s took {elapsed:.2f} s"


def test_dropped_response_reaches_the_server_but_not_the_client(echo: int) -> None:
    with FaultProxy(echo, Faults(drop_response=1.0)) as proxy:
        assert _call(proxy.port, b"a" * 200_000) == b""
        assert proxy.counters.dropped_responses == 1
    assert _Echo.seen == [200_000], "the server got the whole request"


def test_cut_request_never_reaches_the_server_whole(echo: int) -> None:
    with FaultProxy(echo, Faults(cut_request=1.0)) as proxy:
        assert _call(proxy.port, b"a" * 200_000) == b""
        assert proxy.counters.cut_requests == 1
    time.sleep(0.1)
    assert all(n < 200_000 for n in _Echo.seen)


def test_link_down_refuses_connections(echo: int) -> None:
    with FaultProxy(echo) as proxy:
        proxy.set_down(True)
        assert _call(proxy.port, b"a") == b""
        assert proxy.counters.refused == 1
        proxy.set_down(False)
        assert _call(proxy.port, b"a" * 200_000) == b"x" * 1000
