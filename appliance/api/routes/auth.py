"""Log in, log out, the current session, password change. Login is the only open write."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from appliance.accounts import BadCredentials
from appliance.api.deps import AccountsDep, PrincipalDep, client_address, errors, problem

router = APIRouter(prefix="/auth", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PasswordChange(BaseModel):
    old: str = Field(min_length=1, max_length=256)
    new: str = Field(min_length=1, max_length=256)


def user_json(user: Any, permissions: frozenset[str]) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "permissions": sorted(permissions),
    }


@router.post("/login", responses=errors(400, 401, 429, login=False))
def login(body: Credentials, request: Request, response: Response, accounts: AccountsDep) -> dict[str, Any]:
    user = accounts.authenticate(body.username, body.password, client=client_address(request))
    token, session = accounts.start_session(
        user, client=client_address(request), user_agent=request.headers.get("user-agent", "")[:200]
    )
    response.set_cookie(
        request.app.state.cookie_name,
        token,
        httponly=True,
        secure=request.app.state.cookie_secure,
        samesite="strict",
        path="/",
    )
    return {"user": user_json(user, user.permissions), "csrf": session.csrf}


@router.get("/session", responses=errors())
def current_session(who: PrincipalDep, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "user": user_json(who.user, who.permissions),
        "csrf": who.session.csrf if who.session else None,
        "idle_timeout_s": settings.auth.idle_timeout_s,
        "min_password_length": settings.auth.min_password_length,
        "hall_name": settings.hall_name,
    }


@router.post("/logout", status_code=204, responses=errors())
def logout(who: PrincipalDep, request: Request, response: Response, accounts: AccountsDep) -> None:
    cookie = request.cookies.get(request.app.state.cookie_name)
    if cookie:
        accounts.end_session(cookie)
    response.delete_cookie(
        request.app.state.cookie_name,
        path="/",
        secure=request.app.state.cookie_secure,
        httponly=True,
        samesite="strict",
    )


@router.post("/password", status_code=204, responses=errors(400, 429))
def change_password(body: PasswordChange, request: Request, who: PrincipalDep, accounts: AccountsDep) -> None:
    if who.session is None:
        raise problem(
            403, "session_required", "只能在登录会话中修改密码", "passwords change in a login session only"
        )
    try:
        accounts.set_password(
            who.user.username,
            body.new,
            actor=who.actor,
            old_password=body.old,
            keep_session=request.cookies.get(request.app.state.cookie_name),
        )
    except BadCredentials:
        raise problem(400, "wrong_password", "原密码不正确", "the current password is wrong") from None
