"""systemd's readiness and watchdog protocol (``sd_notify``), without libsystemd: one datagram to
``$NOTIFY_SOCKET`` per message. A no-op when the service was not started by systemd."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``, ``"WATCHDOG=1"``); False when there is no socket."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # an abstract socket
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(addr)
            s.sendall(message.encode("utf-8"))
        except OSError:
            return False
    return True
