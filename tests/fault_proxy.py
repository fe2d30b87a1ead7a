"""A TCP proxy on 127.0.0.1 that makes a link bad on purpose, for transfer tests and benchmarks.

Faults, each chosen per connection from a seeded RNG so a run can be repeated:

* ``delay_s`` — latency added before every forwarded chunk (both directions);
* ``rate_bps`` — a bandwidth cap in bytes per second shared by all connections (token bucket,
  both directions counted, like a slow county link);
* ``cut_request`` — probability that a connection is cut while the request is still being sent
  (the server never sees a complete request);
* ``drop_response`` — probability that the server's answer is thrown away and the connection
  closed: the server *has* processed (and committed) the request, the client never hears of it;
* ``refuse`` — when set, new connections are closed at once (link down), existing ones cut.

Counters (connections, cut, dropped, bytes) let a test prove the faults really happened.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass, field

_CHUNK = 16 * 1024


@dataclass
class Faults:
    delay_s: float = 0.0
    rate_bps: float = 0.0
    cut_request: float = 0.0
    drop_response: float = 0.0
    refuse: bool = False


@dataclass
class Counters:
    connections: int = 0
    cut_requests: int = 0
    dropped_responses: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class SharedLink:
    """The bandwidth of one link: give the same instance to several proxies (``link=``) and their
    connections share ``rate_bps`` between them, as the legs to the archive and to its object store
    share a hall's one uplink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int, rate: float) -> None:
        if rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


@dataclass
class FaultProxy:
    target_port: int
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    counters: Counters = field(default_factory=Counters)
    link: SharedLink | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._bucket = self.link or SharedLink()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)  # accept() wakes up to notice close()
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut_all()
        self._acceptor.join(5)
        for t in list(self._threads):
            t.join(5)

    def cut_all(self) -> None:
        with self._lock:
            socks = list(self._open)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def set_down(self, down: bool) -> None:
        self.faults.refuse = down
        if down:
            self.cut_all()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.faults.refuse:
                self.counters.refused += 1
                client.close()
                continue
            with self._lock:
                self.counters.connections += 1
                cut = self._rng.random() < self.faults.cut_request
                drop = self._rng.random() < self.faults.drop_response
                cut_after = self._rng.randint(1, 4096)
            t = threading.Thread(target=self._serve, args=(client, cut, drop, cut_after), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
            t.start()

    def _serve(self, client: socket.socket, cut: bool, drop: bool, cut_after: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for s in (client, upstream):  # relay each chunk at once: no Nagle/delayed-ACK stalls of our own
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.update((client, upstream))
        state = {"up": 0, "answered": False}

        def close_both() -> None:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

        def pump_up() -> None:
            while True:
                try:
                    data = client.recv(_CHUNK)
                except OSError:
                    break
                if not data:
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)
                    break
                if cut and state["up"] + len(data) >= cut_after:
                    self.counters.cut_requests += 1
                    close_both()
                    return
                self._pace(len(data))
                state["up"] += len(data)
                self.counters.bytes_up += len(data)
                try:
                    upstream.sendall(data)
                except OSError:
                    break

        up = threading.Thread(target=pump_up, daemon=True)
        up.start()
        while True:
            try:
                data = upstream.recv(_CHUNK)
            except OSError:
                break
            if not data:
                break
            if drop:
                # The server has answered, so it has processed the request: lose the answer.
                self.counters.dropped_responses += 1
                break
            self._pace(len(data))
            self.counters.bytes_down += len(data)
            try:
                client.sendall(data)
            except OSError:
                break
        close_both()
        up.join(5)
        with self._lock:
            self._open.difference_update((client, upstream))

    def _pace(self, n: int) -> None:
        if self.faults.delay_s > 0:
            time.sleep(self.faults.delay_s)
        self._bucket.take(n, self.faults.rate_bps)
