"""The FastAPI application: ``/api/v1`` routers, the staff UI from ``ui/`` at ``/``, security
headers on every response, and the appliance's errors turned into JSON with a code and messages
in Chinese and English."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance import __version__
from appliance.accounts import AccountError, LastAdmin, LoginThrottled, UnknownToken, UnknownUser, UserExists
from appliance.api.deps import PLAIN_COOKIE, SECURE_COOKIE, ContextPool
from appliance.api.routes import audit_routes, auth, dashboard, device, intake, records, search_routes, users
from appliance.errors import (
    DecryptionFailed,
    HallError,
    KeyProblem,
    RecordNotFound,
    RecordShredded,
)
from appliance.http_headers import set_security_headers
from appliance.record_metadata import MetadataRejected, RecordStateError
from appliance.settings import Settings

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_STATUS: list[tuple[type[Exception], int]] = [
    (MetadataRejected, 422),
    (RecordNotFound, 404),
    (RecordShredded, 410),
    (RecordStateError, 409),
    (LoginThrottled, 429),
    (UserExists, 409),
    (LastAdmin, 409),
    (UnknownUser, 404),
    (UnknownToken, 404),
    (DecryptionFailed, 500),
    (KeyProblem, 503),
]
# Errors FastAPI and Starlette raise with a plain-text detail, in the API's error shape.
_PLAIN: dict[int, tuple[str, str]] = {
    400: ("unreadable_body", "请求内容无法解析"),
    404: ("not_found", "没有这个接口"),
    405: ("method_not_allowed", "此接口不支持该请求方法"),
}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(settings: Settings, *, ui_dir: Path = UI_DIR) -> FastAPI:
    pool = ContextPool(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        lifespan=lifespan,
        title="hall-appliance counter API",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.pool = pool
    secure = settings.api.tls_cert is not None or _is_loopback(settings.api.host)
    app.state.cookie_name = SECURE_COOKIE if secure else PLAIN_COOKIE
    app.state.cookie_secure = secure

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        set_security_headers(response.headers, CSP, no_store=request.url.path.startswith("/api/"))
        return response

    @app.exception_handler(HallError)
    async def hall_error(request: Request, exc: HallError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        detail: dict[str, object] = {"code": exc.code, "message_en": str(exc)}
        detail["message_zh"] = getattr(exc, "message_zh", None) or str(exc)
        if isinstance(exc, MetadataRejected):
            detail["problems"] = [p.__dict__ for p in exc.problems]
        headers = {}
        if isinstance(exc, LoginThrottled):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, AccountError) and status == 400:
            status = 401 if exc.code == "bad_credentials" else 400
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def plain_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """``{"detail": "text"}`` from the framework itself (a body that cannot be parsed, an
        unknown path or method) becomes ``{"detail": {"code", "message_zh", "message_en"}}``
        under ``/api/`` like every other API error; the UI's static files keep the default."""
        if isinstance(exc.detail, str) and request.url.path.startswith("/api/"):
            code, zh = _PLAIN.get(exc.status_code, (f"http_{exc.status_code}", exc.detail))
            body = {"detail": {"code": code, "message_zh": zh, "message_en": exc.detail}}
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    api = "/api/v1"
    for module in (auth, records, search_routes, intake, dashboard, audit_routes, device, users):
        app.include_router(module.router, prefix=api)

    if ui_dir.is_dir():
        app.mount("/", StaticFiles(directory=ui_dir, html=True), name="ui")
    return app
