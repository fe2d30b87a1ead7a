"""The box's side of the wire to the central archive: the HTTP client (signed calls, as
``docs/transfer.md`` defines them), how its answers are classified, retry delays, and link
detection.

How the box reacts (the contract's table, in code):

* network errors, timeouts and 5xx → :class:`LinkDown`: back off, then only probe
  ``GET /api/v1/health`` until it answers;
* 401/403 → :class:`EnrollmentProblem`: stop sending and tell the technician;
* 409 ``replay`` → :class:`ReplayRefused`: send again at once with a new nonce;
* 200/422 → the (signed) receipt, returned to the caller to verify.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import HallError
from sync import protocol

HEALTH_PATH = "/api/v1/health"
PACKAGES_PATH = "/api/v1/packages"
ENROLL_PATH = "/api/v1/enroll"
DEVICE_PATH = "/api/v1/device"
REVOKE_SELF_PATH = "/api/v1/revoke-self"
_CHUNK = 64 * 1024


class LinkDown(HallError):
    """The archive could not be reached, timed out or answered 5xx: back off and probe."""

    code = "link_down"


class EnrollmentProblem(HallError):
    """The archive refused the device (401/403): stop sending until a technician acts."""

    code = "enrollment_problem"

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ReplayRefused(HallError):
    """409 ``replay``: the nonce was seen before; send again with a fresh one."""

    code = "replay"


class ArchiveAnswerInvalid(HallError):
    """The archive answered something the protocol does not allow (the message says what)."""

    code = "archive_answer_invalid"


def full_jitter(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, base × 2^(attempts-1)))."""
    ceiling = min(max_s, base_s * 2 ** max(0, min(attempts - 1, 30)))
    return (rng or random).uniform(0.0, ceiling)


def probe_delay(failures: int, interval_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """How long to wait before the next health probe while the link is down: the probe interval,
    doubling with each failure up to ``max_s``, with jitter in its upper half (never sooner than
    half of it: no hammering)."""
    ceiling = min(max_s, interval_s * 2 ** max(0, min(failures - 1, 30)))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass
class PackageAnswer:
    status: int
    body: dict[str, Any]


def _error_text(response: httpx.Response) -> tuple[str, str]:
    """``(code, message)`` of an archive error body ``{"code", "message"}`` (or its text)."""
    try:
        data = response.json()
    except ValueError:
        return "", response.text[:200]
    if isinstance(data, dict):
        detail = data.get("detail", data)
        if isinstance(detail, dict):
            return str(detail.get("code", "")), str(detail.get("message") or detail.get("message_en") or "")
        return "", str(detail)[:200]
    return "", str(data)[:200]


class ArchiveClient:
    """Calls to one archive receiver. ``pace`` (a token bucket) meters request bodies."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 30.0,
        verify: bool | str = True,
        pace: Callable[[int], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._prefix = urlsplit(self.base_url).path.rstrip("/")
        self._pace = pace
        self._client = httpx.Client(timeout=timeout_s, verify=verify, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, self._url(path), **kwargs)
        except httpx.TimeoutException as e:
            raise LinkDown(f"archive {self.base_url} timed out ({type(e).__name__})") from e
        except httpx.HTTPError as e:
            raise LinkDown(f"archive {self.base_url} unreachable ({type(e).__name__}: {e})") from e
        if response.status_code >= 500:
            code, message = _error_text(response)
            raise LinkDown(
                f"archive {self.base_url} answered {response.status_code} {code} {message}".rstrip()
            )
        return response

    def health(self) -> dict[str, Any]:
        """``GET /api/v1/health`` (unsigned): the link probe and clock check."""
        response = self._send("GET", HEALTH_PATH)
        if response.status_code != 200:
            raise LinkDown(f"archive health check answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise LinkDown("archive health check did not answer JSON (a proxy in the way?)") from None
        if not isinstance(data, dict) or data.get("status") != "ok":
            raise LinkDown(f"archive health check says {data!r:.200}")
        return data

    def enroll(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/enroll`` with the one-time token (unsigned)."""
        headers = {"content-type": "application/json"}
        response = self._send("POST", ENROLL_PATH, content=protocol.canonical_json(body), headers=headers)
        if response.status_code != 200:
            code, message = _error_text(response)
            raise EnrollmentProblem(
                f"the archive refused the enrollment ({response.status_code} {code}): {message}",
                status=response.status_code,
                reason=code,
            )
        data = response.json()
        if not isinstance(data, dict):
            raise ArchiveAnswerInvalid("the enrollment answer is not a JSON object")
        return data

    def signed_call(self, device: Ed25519PrivateKey, path: str, body: bytes = b"{}") -> dict[str, Any]:
        """A signed ``POST`` that answers a JSON object (``/device``, ``/revoke-self``). 401/403
        raise :class:`EnrollmentProblem` with the archive's reason."""
        headers = protocol.sign_request(device, "POST", self._prefix + path, body)
        headers["content-type"] = "application/json"
        response = self._send("POST", path, content=body, headers=headers)
        if response.status_code in (401, 403):
            code, message = _error_text(response)
            raise EnrollmentProblem(
                f"{message or 'refused'} ({response.status_code} {code})",
                status=response.status_code,
                reason=code,
            )
        if response.status_code != 200:
            code, message = _error_text(response)
            raise ArchiveAnswerInvalid(
                f"the archive answered {response.status_code} {code}: {message}".rstrip(": ")
            )
        data = response.json()
        if not isinstance(data, dict):
            raise ArchiveAnswerInvalid(f"the archive's answer to {path} is not a JSON object")
        return data

    def post_package(self, device: Ed25519PrivateKey, body: bytes) -> PackageAnswer:
        """``POST /api/v1/packages``, signed. Returns 200 (accepted) and 422 (rejected)
        answers; raises for everything the caller must react to differently."""
        path = self._prefix + PACKAGES_PATH
        headers = protocol.sign_request(device, "POST", path, body)
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        content: bytes | Iterator[bytes] = body if self._pace is None else _paced(body, self._pace)
        response = self._send("POST", PACKAGES_PATH, content=content, headers=headers)
        status = response.status_code
        if status in (200, 422):
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("format") == protocol.RECEIPT_FORMAT:
                return PackageAnswer(status, data)
            if status == 200:
                raise ArchiveAnswerInvalid("the archive answered 200 without a receipt")
        code, message = _error_text(response)
        if status in (401, 403):
            raise EnrollmentProblem(
                f"{message or 'refused'} ({status} {code})".strip(), status=status, reason=code
            )
        if status == 409 and code == "replay":
            raise ReplayRefused(message or "nonce replayed")
        raise ArchiveAnswerInvalid(f"the archive answered {status} {code}: {message}".rstrip(": "))


def _paced(body: bytes, pace: Callable[[int], None]) -> Iterator[bytes]:
    for start in range(0, len(body), _CHUNK):
        chunk = body[start : start + _CHUNK]
        pace(len(chunk))
        yield chunk


@dataclass
class LinkState:
    """Whether the archive is reachable, as far as the box knows. ``failures`` counts failures
    since the last *successful transfer* (a passing health probe alone does not reset it, so a
    link that answers probes but fails real work keeps backing off)."""

    interval_s: float
    max_s: float
    state: str = "unknown"  # unknown | up | down
    failures: int = 0
    since: float | None = None
    next_probe_at: float = 0.0
    last_probe: float | None = None
    last_error: str | None = None
    clock_skew_s: float | None = None
    archive_id: str | None = None
    rng: random.Random = field(default_factory=random.Random)

    def down(self, reason: str, now: float | None = None) -> float:
        """Mark the link down; returns when to probe next."""
        now = time.time() if now is None else now
        if self.state != "down":
            self.since = now
        self.state = "down"
        self.failures += 1
        self.last_error = reason
        self.next_probe_at = now + probe_delay(self.failures, self.interval_s, self.max_s, self.rng)
        return self.next_probe_at

    def up(self, now: float | None = None, *, success: bool = False) -> None:
        now = time.time() if now is None else now
        if self.state != "up":
            self.since = now
        self.state = "up"
        if success:
            self.failures = 0
            self.last_error = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "failures": self.failures,
            "last_probe": self.last_probe,
            "next_probe_at": self.next_probe_at if self.state == "down" else None,
            "error": self.last_error,
            "clock_skew_s": self.clock_skew_s,
            "archive_id": self.archive_id,
        }
