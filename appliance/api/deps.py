"""Request dependencies: the per-thread store context, who is calling (session cookie or API
token), CSRF and origin checks, and permission gates. Every route declares what it needs with
``Depends(require("perm"))``; nothing is open unless a route opts out on purpose."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from appliance.accounts import Accounts, Session, User
from appliance.context import Context, open_context
from appliance.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURE_COOKIE = "__Host-hall_session"  # with TLS (or on loopback, which browsers treat as secure)
PLAIN_COOKIE = "hall_session"  # plain HTTP on the LAN (no certificate yet): the device page warns


def problem(status: int, code: str, zh: str, en: str, **extra: object) -> HTTPException:
    return HTTPException(status, {"code": code, "message_zh": zh, "message_en": en, **extra})


class ProblemDetail(BaseModel):
    """What went wrong: a stable ``code`` and messages for staff (more fields for some codes, e.g.
    ``problems`` of ``metadata_invalid``, ``retry_after`` of ``login_throttled``)."""

    model_config = ConfigDict(extra="allow")
    code: str
    message_zh: str
    message_en: str


class Problem(BaseModel):
    detail: ProblemDetail


class RequestError(BaseModel):
    """One entry of FastAPI's request validation errors."""

    model_config = ConfigDict(extra="allow")
    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """422: the request does not fit the schema (FastAPI's list of errors), or the appliance's own
    validation refused it (a problem such as ``metadata_invalid``)."""

    detail: list[RequestError] | ProblemDetail


_ERRORS: dict[int, str] = {
    400: "Refused: the body cannot be parsed, or `detail.code` says why (e.g. password_rejected)",
    401: "Not logged in (or the session expired), or the API token is invalid, revoked or expired",
    403: "Not allowed: the role lacks the permission, a CSRF or origin check failed, or a login "
    "session is required",
    404: "Not found",
    409: "Conflicts with the current state",
    410: "The record was shredded; its content no longer exists",
    422: "The request is not valid",
    429: "Too many failed attempts; `Retry-After` gives the seconds to wait",
}


def errors(*codes: int, login: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the errors a route answers besides FastAPI's own 422: 401 and
    403 for every route behind a login (``login=False`` for the open ones), plus ``codes``."""
    wanted = sorted({*codes, *((401, 403) if login else ())})
    out: dict[int | str, dict[str, Any]] = {}
    for code in wanted:
        out[code] = {"model": Unprocessable if code == 422 else Problem, "description": _ERRORS[code]}
        if code == 429:
            out[code]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return out


class ContextPool:
    """One open store context per server thread (SQLite connections are per thread). FastAPI
    runs sync routes in a thread pool, so each pool thread gets its own connection, reused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[Context] = []
        self._lock = threading.Lock()
        self._generation = 0  # bumped by close(): contexts of an older generation are closed

    def get(self) -> Context:
        ctx: Context | None = getattr(self._local, "ctx", None)
        if ctx is None or getattr(self._local, "generation", -1) != self._generation:
            ctx = open_context(self.settings, handed_over=True)
            with self._lock:
                self._all.append(ctx)
                self._local.ctx, self._local.generation = ctx, self._generation
        return ctx

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            for ctx in self._all:
                ctx.close()
            self._all.clear()


def get_ctx(request: Request) -> Context:
    pool: ContextPool = request.app.state.pool
    return pool.get()


CtxDep = Annotated[Context, Depends(get_ctx)]


def get_accounts(request: Request, ctx: CtxDep) -> Accounts:
    settings: Settings = request.app.state.settings
    return Accounts(ctx.conn, settings.auth, ctx.audit)


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


@dataclass(frozen=True)
class Principal:
    user: User
    permissions: frozenset[str]
    session: Session | None = None
    token_id: str | None = None

    @property
    def actor(self) -> str:
        if self.token_id is not None:
            return f"token:{self.token_id}:{self.user.username}"
        return f"user:{self.user.username}"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_origin(request: Request) -> None:
    """State-changing requests from a browser must come from this origin (besides CSRF)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    settings: Settings = request.app.state.settings
    expected = settings.api.public_origin or f"{request.url.scheme}://{request.url.netloc}"
    if origin.rstrip("/") != expected.rstrip("/"):
        raise problem(403, "bad_origin", "请求来源不被允许", "request origin not allowed")


def principal(request: Request, accounts: AccountsDep) -> Principal:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = accounts.token(auth[7:].strip())
        if token is None:
            raise problem(401, "bad_token", "令牌无效或已过期", "invalid or expired API token")
        return Principal(token.user, token.scopes, token_id=token.token_id)
    cookie = request.cookies.get(request.app.state.cookie_name)
    session = accounts.session(cookie) if cookie else None
    if session is None:
        raise problem(
            401, "not_logged_in", "请先登录（会话可能已超时）", "please log in (the session may have expired)"
        )
    if request.method not in SAFE_METHODS:
        _check_origin(request)
        sent = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise problem(
                403, "csrf", "请求缺少有效的 CSRF 令牌，请刷新页面", "missing or wrong CSRF token; reload"
            )
    return Principal(session.user, session.user.permissions, session=session)


PrincipalDep = Annotated[Principal, Depends(principal)]


def require(permission: str) -> object:
    def gate(who: PrincipalDep) -> Principal:
        if permission not in who.permissions:
            raise problem(
                403, "forbidden", "您的角色无权执行此操作", f"your role lacks the permission {permission}"
            )
        return who

    return Depends(gate)
