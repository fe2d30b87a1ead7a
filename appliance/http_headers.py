"""The security headers every HTTP answer carries (the counter API and UI, and the archive receiver)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders


def set_security_headers(h: MutableHeaders, csp: str, *, no_store: bool) -> None:
    """Add what the handler did not set itself: CSP, no sniffing, no referrer, no framing, same-origin
    isolation, and ``Cache-Control: no-store`` where the answer may hold personal data."""
    h.setdefault("Content-Security-Policy", csp)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if no_store:
        h.setdefault("Cache-Control", "no-store")
