"""The counter API against its own OpenAPI schema (``/api/v1/openapi.json``), property-based.

Schemathesis generates requests from the schema, valid and invalid ones, for every operation and
sends them authenticated as an identity allowed to use the operation (what each route needs comes
from the authorisation matrix in ``test_api_authz``): a supervisor API token for record content,
search, intake and the audit log; a technician token for the device and the queue; an admin
token for users, the device and the audit log; all of them, and a clerk's login session (cookie
and CSRF header), for what every user has (own tokens, password change: a token may do neither).
Each identity's run has a data dir of its own, so what one run changes (a user disabled, a record
shredded) cannot spoil another.

Every response must not be a server error (a 5xx, or an exception out of the app), must have a
status code the schema documents (the routes document their 4xx answers with ``responses=``),
must match the documented content type, headers and JSON schema, and invalid input must get a
4xx. Random path parameters mostly reach 404s, so every operation also gets real ones (seeded
records, a quarantined file, an intake preview, a spare token): success paths, 410 after the
shred and 409 after the quarantine decision are exercised too.

Not in the generated run: ``GET /events``, an endless event stream (read here with a bounded
read), and ``POST /auth/login``, whose throttling would lock the accounts the run uses (fuzzed
on a data dir of its own, plus explicit cases)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import ServerError
from schemathesis.errors import FailureGroup
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from appliance.api import create_app
from appliance.api.deps import problem
from appliance.api.routes import dashboard
from appliance.permissions import ROLE_PERMISSIONS
from appliance.settings import Settings
from tests.api_client import PASSWORD
from tests.api_schema_helpers import (
    API,
    IDENTITIES,
    SESSION,
    TOKEN_ROLES,
    Auth,
    World,
    build_world,
    read_stream,
    served,
)
from tests.test_api_authz import ANY, MATRIX, OPEN, STREAMS

MAX_EXAMPLES = 40  # per (operation, identity): the file takes ~25 s on 2 cores (~35 s when busy)
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Not run: `positive_data_acceptance` (input valid by the schema must get a 2xx). The schema
# states shapes, not the appliance's rules: a password that breaks the policy (400), metadata
# that fails DA/T 46 validation (422) or a shredded record (410) are well-formed yet refused.

EXCLUDED = {
    ("GET", f"{API}/events"): "an endless event stream: test_event_stream_*",
    ("POST", f"{API}/auth/login"): "throttling would lock the run's accounts: test_login_*",
}
# Routes any logged-in user has also run with the session, except logout (it would end it).
SESSION_SKIPS = {("POST", f"{API}/auth/logout")}
# Routes test_api_authz.MATRIX does not list (yet); test_every_route_has_a_known_permission.
NOT_IN_MATRIX = {("POST", f"{API}/auth/logout"): ANY}


def _schema_routes() -> list[tuple[str, str]]:
    """(method, path template) of every operation in the schema, from an app never started."""
    app = create_app(Settings.model_validate({"data_dir": "/nonexistent/schema-listing"}))
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def _matches(template: str, concrete: str) -> bool:
    a, b = template.strip("/").split("/"), concrete.split("?")[0].strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


def _needs(method: str, template: str) -> str | None:
    listed = [(m, p, need) for m, p, need, _ in MATRIX] + list(STREAMS)
    found = [need for m, p, need in listed if m == method and _matches(template, p)]
    return found[0] if found else NOT_IN_MATRIX.get((method, template))


def _identities(method: str, template: str) -> list[str]:
    need = _needs(method, template)
    if need is None:  # unknown: every token (and test_every_route_has_a_known_permission fails)
        return list(TOKEN_ROLES)
    if need == OPEN:
        return ["supervisor"]
    if need == ANY:
        return [i for i in IDENTITIES if i != SESSION or (method, template) not in SESSION_SKIPS]
    allowed = [role for role in TOKEN_ROLES if need in ROLE_PERMISSIONS[role]]
    assert allowed, f"no role in {TOKEN_ROLES} has {need}"
    return allowed


ROUTES = _schema_routes()
RUNS = [
    pytest.param(identity, method, path, id=f"{identity}-{method}-{path.removeprefix(API)}")
    for method, path in ROUTES
    if (method, path) not in EXCLUDED
    for identity in _identities(method, path)
]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], World]:
    """A world per name, made on first use and kept for the module."""
    made: dict[str, World] = {}

    def get(name: str) -> World:
        if name not in made:
            made[name] = build_world(tmp_path_factory.mktemp(f"schema-{name}"))
        return made[name]

    return get


def _strategy(operation: APIOperation, real: dict[str, Any] | None) -> st.SearchStrategy[Case]:
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    parts = [operation.as_strategy(mode) for mode in modes]
    if real is not None:
        parts += [operation.as_strategy(mode, path_parameters=real) for mode in modes]
    return st.one_of(parts)


def _call_and_check(case: Case, auth: Auth) -> Response:
    response = case.call(headers=auth.headers, cookies=auth.cookies)
    case.validate_response(response, checks=CHECKS, headers=auth.headers)
    return response


def _fuzz(operation: APIOperation, auth: Auth, real: dict[str, Any] | None = None) -> None:
    """Up to MAX_EXAMPLES generated requests, every response checked with CHECKS."""

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None)
    @given(case=_strategy(operation, real))
    def run(case: Case) -> None:
        _call_and_check(case, auth)

    run()


def test_every_route_has_a_known_permission() -> None:
    assert [(m, p) for m, p in ROUTES if _needs(m, p) is None] == []
    assert set(EXCLUDED) <= set(ROUTES), "an exclusion names a route that is gone"


@pytest.mark.parametrize(("identity", "method", "path"), RUNS)
def test_operation_conforms_to_the_schema(
    worlds: Callable[[str], World], identity: str, method: str, path: str
) -> None:
    world = worlds(identity)
    with served(world.settings) as (_, schema):
        _fuzz(schema[path][method], world.auth[identity], world.real_path_parameters(method, path))


# --- success answers random input rarely reaches, and fixed bugs --------------------------------
Step = Callable[..., dict[str, Any]]


@contextmanager
def stepper(world: World) -> Iterator[Step]:
    """``step(identity, method, path, expected status, **case parts)``: one explicit request,
    checked like the generated ones; returns the JSON body (or {})."""
    with served(world.settings) as (_, schema):

        def step(identity: str, method: str, path: str, expect: int, **parts: Any) -> dict[str, Any]:
            case = schema[f"{API}{path}"][method].Case(**parts)
            response = _call_and_check(case, world.auth.get(identity, Auth({})))
            assert response.status_code == expect, response.text
            media = response.headers.get("content-type", [""])[0]  # values are lists here
            return response.json() if response.content and media.startswith("application/json") else {}

        yield step


def test_success_paths_conform(worlds: Callable[[str], World]) -> None:
    world = worlds("explicit")
    rid, confirm = world.ids["record"], world.ids["confirm_record"]
    record, image = {"record_id": rid}, {"record_id": rid, "idx": 0}
    new = {
        "username": "clerk9",
        "display_name": "新办事员",
        "role": "clerk",
        "password": "九号窗口的登录密码口令",
    }
    with stepper(world) as step:
        step("admin", "POST", "/users", 201, body=new)
        step("admin", "POST", "/users", 409, body=new)
        clerk9, admin1 = {"username": "clerk9"}, {"username": "admin1"}
        step("admin", "PATCH", "/users/{username}", 200, path_parameters=clerk9, body={"role": "supervisor"})
        step("admin", "PATCH", "/users/{username}", 409, path_parameters=admin1, body={"disabled": True})

        made = step(SESSION, "POST", "/tokens", 201, body={"name": "脚本", "scopes": ["search"]})
        step(SESSION, "DELETE", "/tokens/{token_id}", 204, path_parameters={"token_id": made["id"]})
        step(SESSION, "POST", "/auth/password", 400, body={"old": "wrong", "new": "x" * 12})
        step(SESSION, "POST", "/auth/password", 204, body={"old": PASSWORD, "new": "another long password"})

        confirmed = {"record_id": confirm}
        assert step("supervisor", "POST", "/records/{record_id}/confirm", 200, path_parameters=confirmed)
        step("supervisor", "POST", "/records/{record_id}/confirm", 409, path_parameters=confirmed)
        meta = "/records/{record_id}/metadata"
        step(
            "supervisor", "PATCH", meta, 200, path_parameters=confirmed, body={"fields": {"remarks": "备注"}}
        )
        locked = {"fields": {"archival_code": "0001-WS·2024-Y-ZWFW-9999"}}
        step("supervisor", "PATCH", meta, 409, path_parameters=confirmed, body=locked)
        step("supervisor", "PATCH", meta, 422, path_parameters=record, body={"fields": {"no_such": "x"}})
        step("supervisor", "GET", "/records/{record_id}/pages/{idx}/image", 200, path_parameters=image)
        shred = {"reason": "审批 2024-17"}
        step("supervisor", "POST", "/records/{record_id}/shred", 204, path_parameters=record, body=shred)
        step("supervisor", "GET", "/records/{record_id}", 410, path_parameters=record)
        step("supervisor", "GET", "/records/{record_id}/pages/{idx}/image", 410, path_parameters=image)


def test_fixed_bugs_stay_fixed(worlds: Callable[[str], World]) -> None:
    with stepper(worlds("explicit-bugs")) as step:
        # 500s: a date local time cannot convert; an id beyond SQLite's 64-bit integers
        step("supervisor", "GET", "/search", 200, query={"date_from": "0001-01-01"})
        step("supervisor", "GET", "/search", 200, query={"date_to": "0001-01-01"})
        step("supervisor", "GET", "/audit", 422, query={"before": 2**64})
        # read as Unix time before: a date is YYYY-MM-DD
        step("supervisor", "GET", "/search", 422, query={"date_to": "0"})
        # an unknown token id was 400 for an admin (404 for everybody else)
        step("admin", "DELETE", "/tokens/{token_id}", 404, path_parameters={"token_id": "nope"})


def test_framework_errors_have_the_api_error_shape(worlds: Callable[[str], World]) -> None:
    """A body that is not UTF-8 (400 from FastAPI), an unknown path and a wrong method answer
    ``{"detail": {"code", "message_zh", "message_en"}}`` like every other API error."""
    world = worlds("explicit-bugs")
    with served(world.settings) as (app, _), TestClient(app, base_url="https://testserver") as client:
        auth = world.auth["supervisor"].headers
        bad = client.post(
            f"{API}/tokens", content=b"\xff\xfe{", headers={**auth, "Content-Type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["detail"]["code"] == "unreadable_body"
        assert client.get(f"{API}/nothing-here", headers=auth).json()["detail"]["code"] == "not_found"
        wrong = client.delete(f"{API}/records", headers=auth)
        assert wrong.status_code == 405 and wrong.json()["detail"]["code"] == "method_not_allowed"
        assert "GET" in wrong.headers["allow"]


# --- login: fuzzed where throttling harms nobody, and explicit cases ------------------------------
def test_login_conforms_to_the_schema(worlds: Callable[[str], World]) -> None:
    world = worlds("login-fuzz")
    with served(world.settings) as (_, schema):
        _fuzz(schema[f"{API}/auth/login"]["POST"], Auth({}))


def test_login_answers_conform(worlds: Callable[[str], World]) -> None:
    world = worlds("login-cases")
    wrong = {"username": "supervisor1", "password": "not the password"}
    with stepper(world) as step:
        ok = step("nobody", "POST", "/auth/login", 200, body={"username": "clerk1", "password": PASSWORD})
        assert ok["user"]["role"] == "clerk" and ok["csrf"]
        step("nobody", "POST", "/auth/login", 422, body={"username": "clerk1"})
        for _ in range(world.settings.auth.max_failures_per_account):
            assert (
                step("nobody", "POST", "/auth/login", 401, body=wrong)["detail"]["code"] == "bad_credentials"
            )
        locked = step("nobody", "POST", "/auth/login", 429, body=wrong)
        assert locked["detail"]["code"] == "login_throttled"


# --- the event stream: a bounded read -----------------------------------------------------------
def _bearer(auth: Auth) -> dict[str, bytes]:
    return {k: v.encode() for k, v in auth.headers.items()}


def _events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_event_stream_starts_with_retry_then_queue_counts(worlds: Callable[[str], World]) -> None:
    world = worlds("events")
    with served(world.settings) as (app, schema):
        documented = schema.raw_schema["paths"][f"{API}/events"]["get"]["responses"]["200"]["content"]
        r = read_stream(
            app, f"{API}/events?last_event_id=0", _bearer(world.auth["supervisor"]), until=b"event: queue"
        )
        assert r.status == 200 and r.headers["content-type"].split(";")[0] in documented
        assert "no-store" in r.headers["cache-control"]
        assert r.body.startswith(b"retry: 2000\n\n")
        events = _events(r.body)
        assert events[-1][0] == "queue" and events[-1][1]["counts"]["quarantined"] == 2
        assert {"job.received", "job.preview"} <= {kind for kind, _ in events}, "resumed from id 0"

        # counts only for a technician (queue.view without intake.view), even from id 0
        r = read_stream(
            app, f"{API}/events?last_event_id=0", _bearer(world.auth["technician"]), until=b"event: queue"
        )
        assert r.status == 200 and [kind for kind, _ in _events(r.body)] == ["queue"]


def test_event_stream_refuses_bad_resume_points(worlds: Callable[[str], World]) -> None:
    world = worlds("events")
    supervisor = _bearer(world.auth["supervisor"])
    with served(world.settings) as (app, _):
        r = read_stream(app, f"{API}/events?last_event_id={2**64}", supervisor, until=b"event: queue")
        assert r.status == 422
        # A header that is not an id of ours ("²" is a digit to str.isdigit, not to int) or
        # beyond SQLite's integers is ignored: the stream starts from now.
        for header in (b"\xb2", str(2**64).encode()):
            r = read_stream(
                app, f"{API}/events", {**supervisor, "Last-Event-ID": header}, until=b"event: queue"
            )
            assert r.status == 200 and [kind for kind, _ in _events(r.body)] == ["queue"]
        r = read_stream(app, f"{API}/events", {}, until=b"event: queue")
        assert r.status == 401


# --- the checks do catch a server error ---------------------------------------------------------
def _boom(*_: object, **__: object) -> object:
    raise RuntimeError("boom")


def _five_hundred(*_: object, **__: object) -> object:
    raise problem(500, "broken", "坏了", "broken")


def test_a_route_that_fails_fails_the_run(
    worlds: Callable[[str], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = worlds("supervisor")
    auth = world.auth["supervisor"]
    with served(world.settings) as (_, schema):
        operation = schema[f"{API}/dashboard"]["GET"]
        monkeypatch.setattr(dashboard, "figures", _boom)
        with pytest.raises(RuntimeError, match="boom"):
            _fuzz(operation, auth)
        monkeypatch.setattr(dashboard, "figures", _five_hundred)
        with pytest.raises(FailureGroup) as caught:
            _fuzz(operation, auth)
        assert any(isinstance(e, ServerError) for e in caught.value.exceptions)
