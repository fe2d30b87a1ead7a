"""Staff accounts (admins) and each user's own API tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from appliance.accounts import User
from appliance.api.deps import AccountsDep, Principal, PrincipalDep, errors, problem, require

router = APIRouter(tags=["users"])
Admin = Annotated[Principal, require("users.manage")]
Role = Literal["clerk", "supervisor", "technician", "admin"]


class NewUser(BaseModel):
    username: str = Field(pattern=r"^[a-z][a-z0-9_.-]{1,31}$")
    display_name: str = Field(min_length=1, max_length=50)
    role: Role
    password: str = Field(min_length=1, max_length=256)


class UserChange(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=256)


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    scopes: list[str] = Field(min_length=1, max_length=20)
    expires_days: int | None = Field(default=90, ge=1, le=3650)


def _user(u: User) -> dict[str, Any]:
    return {"username": u.username, "display_name": u.display_name, "role": u.role, "disabled": u.disabled}


@router.get("/users", responses=errors())
def list_users(accounts: AccountsDep, who: Admin) -> dict[str, Any]:
    return {"items": [_user(u) for u in accounts.list_users()]}


@router.post("/users", status_code=201, responses=errors(400, 409))
def create_user(body: NewUser, accounts: AccountsDep, who: Admin) -> dict[str, Any]:
    user = accounts.create_user(body.username, body.display_name, body.role, body.password, actor=who.actor)
    return _user(user)


@router.patch("/users/{username}", responses=errors(400, 404, 409))
def change_user(username: str, body: UserChange, accounts: AccountsDep, who: Admin) -> dict[str, Any]:
    if accounts.get_user(username) is None:
        raise problem(404, "unknown_user", "没有这个用户", "no such user")
    if body.disabled and username.strip().lower() == who.user.username:
        raise problem(409, "self_disable", "不能停用自己的账号", "you cannot disable your own account")
    if body.role is not None:
        accounts.set_role(username, body.role, actor=who.actor)
    if body.disabled is not None:
        accounts.set_disabled(username, body.disabled, actor=who.actor)
    if body.password is not None:
        accounts.set_password(username, body.password, actor=who.actor)
    user = accounts.get_user(username)
    assert user is not None
    return _user(user)


@router.get("/tokens", responses=errors())
def list_tokens(accounts: AccountsDep, who: PrincipalDep) -> dict[str, Any]:
    return {"items": accounts.list_tokens(who.user)}


@router.post("/tokens", status_code=201, responses=errors(400))
def create_token(body: NewToken, accounts: AccountsDep, who: PrincipalDep) -> dict[str, Any]:
    if who.token_id is not None:
        raise problem(
            403, "session_required", "只能在登录会话中创建令牌", "tokens are created in a login session"
        )
    expires = body.expires_days * 86400.0 if body.expires_days else None
    secret, token_id = accounts.create_token(
        who.user, body.name, body.scopes, expires_s=expires, actor=who.actor
    )
    return {"id": token_id, "secret": secret, "scopes": sorted(body.scopes)}


@router.delete("/tokens/{token_id}", status_code=204, responses=errors(404))
def revoke_token(token_id: str, accounts: AccountsDep, who: PrincipalDep) -> None:
    mine = {t["id"] for t in accounts.list_tokens(who.user)}
    if token_id not in mine and "users.manage" not in who.permissions:
        raise problem(404, "unknown_token", "没有这个令牌", "no such token")
    accounts.revoke_token(token_id, actor=who.actor)
