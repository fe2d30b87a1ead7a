"""Helpers for the schema tests (``test_api_schema.py``): a data dir with staff, records and
intake items to point requests at, credentials for each identity, the app served to schemathesis
over ASGI, and a bounded read of the endless event stream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import schemathesis
from fastapi import FastAPI
from schemathesis.schemas import BaseSchema

from appliance.accounts import Accounts
from appliance.api import create_app
from appliance.context import open_context
from appliance.permissions import ROLE_PERMISSIONS
from appliance.preview import make_preview
from appliance.record_metadata import edit
from appliance.settings import Settings
from tests.api_client import add_staff, seed_records, settings_for
from tests.badfiles import encoded

API = "/api/v1"
SCHEMA_URL = f"{API}/openapi.json"
TOKEN_ROLES = ("supervisor", "technician", "admin")
SESSION = "clerk-session"  # clerk1 logged in: a session cookie, and the CSRF header on every request
IDENTITIES = (*TOKEN_ROLES, SESSION)


@dataclass(frozen=True)
class Auth:
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """A data dir with the four staff users, credentials for every identity (an API token with
    all of the role's permissions; a clerk's login session), and real ids for path parameters."""

    settings: Settings
    auth: dict[str, Auth]
    ids: dict[str, str]

    def real_path_parameters(self, method: str, path: str) -> dict[str, Any] | None:
        """Existing things for an operation's path parameters; the destructive routes (shred,
        confirm, a quarantine decision) each get their own, so they do not spoil the others."""
        names = re.findall(r"{(\w+)}", path)
        if not names:
            return None
        if path.endswith("/shred"):
            record = "shred_record"
        elif path.endswith("/confirm"):
            record = "confirm_record"
        else:
            record = "record"
        if path.startswith(f"{API}/jobs/"):
            job = "preview_job"
        elif path.endswith("/decision"):
            job = "decision_job"
        else:
            job = "kept_job"
        pick: dict[str, Any] = {
            "idx": 0,
            "username": "clerk1",  # the admin's run may disable or demote it: no identity uses it
            "token_id": self.ids["spare_token"],  # never a token an identity authenticates with
            "record_id": self.ids[record],
            "job_id": self.ids[job],
        }
        return {name: pick[name] for name in names if name in pick}


def build_world(tmp: Path) -> World:
    settings = settings_for(tmp)
    add_staff(settings)
    records = seed_records(settings, 4)
    ids = {
        "record": records[0].record_id,
        "confirm_record": records[1].record_id,
        "shred_record": records[2].record_id,
    }
    auth: dict[str, Auth] = {}
    ctx = open_context(settings)
    try:
        # What confirmation requires, so that confirming this record succeeds (once).
        c = records[1].content
        fields = {"title": c.title, "date": c.apply_date.isoformat(), "matter": c.matter}
        edit(ctx.store, settings, ids["confirm_record"], {**fields, "applicant": c.person.name}, actor="test")
        inbox = settings.drop_path(settings.drop_folders[0])
        for key, name in (("kept_job", "kept.jpg"), ("decision_job", "decide.jpg")):
            (inbox / name).write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
            job = ctx.spool.take(inbox / name, counter="1号窗口", root=inbox).job_id
            keep = ctx.store.quarantine_path(job)
            ctx.store.mark_quarantined(job, "truncated", "the file ends early", keep=keep)
            ctx.spool.finish(job, "quarantined")
            ids[key] = job
        (inbox / "page.png").write_bytes(encoded("PNG"))
        ids["preview_job"] = ctx.spool.take(inbox / "page.png", counter="1号窗口", root=inbox).job_id
        assert make_preview(ctx, ids["preview_job"])

        accounts = Accounts(ctx.conn, settings.auth, ctx.audit)
        for role in TOKEN_ROLES:
            user = accounts.get_user(f"{role}1")
            assert user is not None
            scopes = sorted(ROLE_PERMISSIONS[role])
            secret, _ = accounts.create_token(user, "schema tests", scopes, expires_s=None, actor="test")
            auth[role] = Auth({"Authorization": f"Bearer {secret}"})
        clerk = accounts.get_user("clerk1")
        assert clerk is not None
        _, ids["spare_token"] = accounts.create_token(
            clerk, "spare", ["search"], expires_s=None, actor="test"
        )
        cookie, session = accounts.start_session(clerk, client="testclient", user_agent="schema tests")
        auth[SESSION] = Auth({"X-CSRF-Token": session.csrf}, {create_app(settings).state.cookie_name: cookie})
    finally:
        ctx.close()
    return World(settings, auth, ids)


@contextmanager
def served(settings: Settings) -> Iterator[tuple[FastAPI, BaseSchema]]:
    """A new app on the data dir, and its schema as the app serves it. One per test: the
    schemathesis pytest plugin ends the lifespan of every ASGI app it reached when a test ends,
    and the app's lifespan closes its store connections."""
    app = create_app(settings)
    try:
        yield app, schemathesis.openapi.from_asgi(SCHEMA_URL, app, config=schemathesis.Config())
    finally:
        app.state.pool.close()


@dataclass(frozen=True)
class StreamStart:
    status: int
    headers: dict[str, str]
    body: bytes


def read_stream(
    app: FastAPI, path: str, headers: dict[str, bytes], *, until: bytes, timeout_s: float = 10.0
) -> StreamStart:
    """GET ``path`` straight over ASGI and read the response body until ``until`` has arrived
    (or the response ends), then disconnect, as a browser closing an EventSource does; fails
    after ``timeout_s``. Header values are raw bytes, as they arrive from a socket."""
    return anyio.run(partial(_read_stream, app, path, headers, until, timeout_s))


async def _read_stream(
    app: FastAPI, path: str, headers: dict[str, bytes], until: bytes, timeout_s: float
) -> StreamStart:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v) for k, v in headers.items())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }
    start: dict[str, Any] = {}
    body = bytearray()
    enough = anyio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await enough.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if until in body or not message.get("more_body", False):
                enough.set()

    with anyio.fail_after(timeout_s):
        await app(scope, receive, send)
    response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return StreamStart(start["status"], response_headers, bytes(body))
