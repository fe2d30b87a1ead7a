"""A token bucket shared by every upload of the transferer, so blobs (in parallel) and packages
together stay under ``[transfer] bandwidth_kbit``.

``take(n)`` reserves ``n`` bytes and sleeps until the bucket has paid them off (a debt model:
callers queue behind each other's reservations, so the long-run rate is exact whatever the
concurrency). The object stores call it once per 64 KiB chunk before sending it. The sleep is
interruptible: when the transferer stops, :class:`PacingStopped` aborts the upload in flight
(uploads are idempotent; it is sent again later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from appliance.errors import HallError

BURST_BYTES = 64 * 1024


class PacingStopped(HallError):
    """The transferer is stopping: the upload in flight is abandoned (it is repeated later)."""

    code = "transfer_stopped"


class TokenBucket:
    def __init__(
        self,
        rate_bytes_s: float,
        *,
        burst_bytes: int = BURST_BYTES,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_bytes_s <= 0:
            raise ValueError("rate must be positive (use no bucket for an unlimited link)")
        self.rate = float(rate_bytes_s)
        self.burst = float(burst_bytes)
        self._tokens = float(burst_bytes)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()

    @classmethod
    def for_kbit(cls, kbit: int, *, stop: threading.Event | None = None) -> TokenBucket | None:
        """A bucket for ``kbit`` kilobits per second (1 kbit = 1000 bits); None when 0 (no cap)."""
        return None if kbit <= 0 else cls(kbit * 1000 / 8, stop=stop)

    def take(self, n: int) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0 and self._stop.wait(wait):
            raise PacingStopped("transfer stopping: upload abandoned, it is sent again later")

    __call__ = take
