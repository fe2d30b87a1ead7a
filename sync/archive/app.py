"""The central archive's HTTP API (``docs/transfer.md``): health, enrollment, signed package
transfer, self-revocation, and the staff views (status, cross-hall search) behind a bearer token.

Signed endpoints read the raw body (the signature covers its digest), capped at
``max_body_bytes`` (413). Errors are ``{"code", "message"}``; every response carries the same
security headers as the counter API.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.errors import HallError
from appliance.http_headers import set_security_headers
from sync.archive.errors import BodyTooLarge, StaffAuthRequired, error_body, http_status
from sync.archive.receiver import Receiver, Reply
from sync.archive.settings import ArchiveSettings
from sync.protocol import ProtocolError

API = "/api/v1"
CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with :class:`BodyTooLarge` past ``limit`` bytes (declared or sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body of {declared} bytes exceeds the archive's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds the archive's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def create_app(settings: ArchiveSettings, *, receiver: Receiver | None = None) -> FastAPI:
    """The receiver app. ``receiver`` (opened by the caller, who also closes it) or one opened
    here and closed at shutdown."""
    owned = receiver is None
    rx = receiver if receiver is not None else Receiver(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            rx.close()

    app = FastAPI(lifespan=lifespan, title="hall central archive receiver", docs_url=None, redoc_url=None,
                  openapi_url=f"{API}/openapi.json")  # fmt: skip
    app.state.receiver = rx
    limit = settings.max_body_bytes

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        set_security_headers(response.headers, CSP, no_store=True)
        return response

    @app.exception_handler(HallError)
    async def hall_error(request: Request, exc: HallError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=http_status(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return JSONResponse(
            {"code": "protocol", "message": f"invalid request parameters: {where}"}, status_code=400
        )

    def staff(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not rx.staff_token_valid(token.strip()):
            raise StaffAuthRequired("archive staff token required: send Authorization: Bearer <token>")

    @app.get(f"{API}/health")
    def health() -> dict[str, Any]:
        return rx.health()

    @app.post(f"{API}/enroll")
    async def enroll(request: Request) -> dict[str, Any]:
        body = await read_body(request, 64 * 1024)
        try:
            doc = json.loads(body)
        except ValueError:
            raise ProtocolError("the enrollment body is not JSON") from None
        if not isinstance(doc, dict):
            raise ProtocolError("the enrollment body must be a JSON object")
        fields = [doc.get(k) for k in ("token", "hall_id", "hall_name", "device_public_key")]
        if not all(isinstance(f, str) for f in fields):
            raise ProtocolError(
                "the enrollment body needs token, hall_id, hall_name and device_public_key strings"
            )
        return await run_in_threadpool(rx.enroll, *(str(f) for f in fields))

    async def signed(
        request: Request, handler: Callable[[bytes, Mapping[str, str], str, str], Reply], max_bytes: int
    ) -> JSONResponse:
        """A signed call: the body (bounded), then the receiver's handler in a worker thread."""
        body = await read_body(request, max_bytes)
        reply = await run_in_threadpool(handler, body, _headers(request), request.method, request.url.path)
        return _json(reply)

    small = 64 * 1024

    @app.post(f"{API}/packages")
    async def packages(request: Request) -> JSONResponse:
        return await signed(request, rx.accept, limit)

    @app.post(f"{API}/selftest")
    async def selftest(request: Request) -> JSONResponse:
        return await signed(request, rx.selftest, limit)

    @app.post(f"{API}/device")
    async def device(request: Request) -> JSONResponse:
        return await signed(request, rx.whoami, small)

    @app.post(f"{API}/numbering")
    async def numbering(request: Request) -> JSONResponse:
        return await signed(request, rx.numbering, small)

    @app.post(f"{API}/revoke-self")
    async def revoke_self(request: Request) -> JSONResponse:
        return await signed(request, rx.revoke_self, small)

    @app.get(f"{API}/archive/status")
    def status(request: Request) -> dict[str, Any]:
        staff(request)
        return rx.status()

    @app.get(f"{API}/archive/search")
    def search(request: Request, q: str = "", limit: int = 50) -> dict[str, Any]:
        staff(request)
        if not q.strip():
            raise ProtocolError("give a query: ?q=…")
        hits = rx.search(q, limit=max(1, min(limit, 200)))
        return {"query": q, "hits": [h.to_dict() for h in hits]}

    return app
