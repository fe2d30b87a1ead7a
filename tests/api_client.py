"""Helpers for API tests: an app on a fresh data dir with one user per role, and logged-in
clients (``TestClient`` over https://testserver so the Secure session cookie is sent)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from appliance.accounts import Accounts
from appliance.api import create_app
from appliance.context import open_context
from appliance.samples.records import SyntheticRecord, add_records
from appliance.settings import Settings
from tests.conftest import make_settings

ROLES = ("clerk", "supervisor", "technician", "admin")
PASSWORD = "correct horse battery"  # test accounts


@dataclass
class Staff:
    client: TestClient
    csrf: str
    username: str

    def write(self, method: str, url: str, **kw: object) -> object:
        headers = {"X-CSRF-Token": self.csrf, **dict(kw.pop("headers", {}) or {})}  # type: ignore[call-overload]
        return self.client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]


def settings_for(tmp: Path) -> Settings:
    return make_settings(tmp / "data", ocr={"engine": "none"})


def add_staff(settings: Settings) -> None:
    ctx = open_context(settings)
    try:
        accounts = Accounts(ctx.conn, settings.auth, ctx.audit)
        for role in ROLES:
            accounts.create_user(f"{role}1", f"测试{role}", role, PASSWORD, actor="test")
    finally:
        ctx.close()


def seed_records(settings: Settings, n: int = 3) -> list[SyntheticRecord]:
    ctx = open_context(settings)
    try:
        return add_records(ctx, n, seed=3)
    finally:
        ctx.close()


def login(client: TestClient, username: str, password: str = PASSWORD) -> Staff:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return Staff(client, r.json()["csrf"], username)


@contextmanager
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield client
