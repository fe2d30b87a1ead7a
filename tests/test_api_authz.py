"""The authorisation matrix: every route × every role (and anonymous) against the expected
allow/deny table; CSRF forged or missing; another user's CSRF token; logout ends the session; a
route added without being listed here fails the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.api import create_app
from appliance.permissions import ROLE_PERMISSIONS
from tests.api_client import ROLES, Staff, add_staff, login, seed_records, settings_for

OPEN = "open"
ANY = "any logged-in user"
R = "{rid}"
# (method, path, what it needs, JSON body)
MATRIX: list[tuple[str, str, str, object]] = [
    ("GET", "/api/v1/health", OPEN, None),
    ("POST", "/api/v1/auth/login", OPEN, {"username": "nobody", "password": "x"}),
    ("GET", "/api/v1/auth/session", ANY, None),
    ("POST", "/api/v1/auth/password", ANY, {"old": "wrong-old-password", "new": "another long password"}),
    ("GET", "/api/v1/records", "records.read", None),
    ("GET", f"/api/v1/records/{R}", "records.read", None),
    ("GET", f"/api/v1/records/{R}/pages/0/image?kind=thumbnail", "records.read", None),
    ("PATCH", f"/api/v1/records/{R}/metadata", "records.edit", {"fields": {"remarks": "复核"}}),
    ("POST", f"/api/v1/records/{R}/confirm", "records.confirm", None),
    ("POST", "/api/v1/records/does-not-exist/shred", "records.shred", {"reason": "审批 1"}),
    ("GET", "/api/v1/search?q=申请", "search", None),
    ("GET", "/api/v1/queue", "queue.view", None),
    ("GET", "/api/v1/jobs/nojob/preview", "intake.view", None),
    ("GET", "/api/v1/quarantine", "quarantine.view", None),
    ("GET", "/api/v1/quarantine/nojob/file", "quarantine.decide", None),
    ("POST", "/api/v1/quarantine/nojob/decision", "quarantine.decide", {"action": "dismiss"}),
    ("GET", "/api/v1/dashboard", "dashboard.view", None),
    ("GET", "/api/v1/audit", "audit.view", None),
    ("POST", "/api/v1/audit/verify", "audit.view", None),
    ("GET", "/api/v1/device", "device.view", None),
    ("PUT", "/api/v1/device/config", "device.configure", {"values": {"settle_seconds": 2.5}}),
    ("GET", "/api/v1/users", "users.manage", None),
    (
        "POST",
        "/api/v1/users",
        "users.manage",
        {"username": "new1", "display_name": "新", "role": "clerk", "password": "x"},
    ),
    ("PATCH", "/api/v1/users/clerk1", "users.manage", {"display_name": None}),
    ("GET", "/api/v1/tokens", ANY, None),
    ("POST", "/api/v1/tokens", ANY, {"name": "script", "scopes": ["queue.view"]}),
    ("DELETE", "/api/v1/tokens/none", ANY, None),
]
STREAMS = [("GET", "/api/v1/events", "queue.view")]  # tested without reading the endless body
# Logout would end the shared sessions mid-matrix: test_logout_ends_the_session_server_side covers it.
SPECIAL = [("POST", "/api/v1/auth/logout", ANY)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Staff], str]]:
    settings = settings_for(tmp_path_factory.mktemp("authz"))
    add_staff(settings)
    [rec, *_] = seed_records(settings, 2)
    app = create_app(settings)
    clients = {role: TestClient(app, base_url="https://testserver") for role in (*ROLES, "anonymous")}
    staff = {role: login(clients[role], f"{role}1") for role in ROLES}
    yield clients["anonymous"], staff, rec.record_id
    for c in clients.values():
        c.close()


def test_every_route_is_in_the_matrix(world: tuple[TestClient, dict[str, Staff], str]) -> None:
    anonymous, _, _ = world
    paths = anonymous.get("/api/v1/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert len(routes) > 20, "the schema lists the routes"
    listed = {(m, p.split("?")[0]) for m, p, _, _ in MATRIX} | {(m, p) for m, p, _ in STREAMS + SPECIAL}
    missing = {(m, p) for m, p in routes if not any(n == m and _same(p, q) for n, q in listed)}
    assert missing == set(), "routes without an expected allow/deny entry"


def _same(template: str, listed: str) -> bool:
    a, b = template.strip("/").split("/"), listed.strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


def _code(r: object) -> str | None:
    try:
        detail = r.json().get("detail")  # type: ignore[attr-defined]
    except ValueError:
        return None
    return detail.get("code") if isinstance(detail, dict) else None


def _allowed(need: str, role: str) -> bool:
    if need == OPEN:
        return True
    if role == "anonymous":
        return False
    return need == ANY or need in ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_each_role_gets_exactly_what_the_matrix_says(
    world: tuple[TestClient, dict[str, Staff], str], role: str
) -> None:
    anonymous, staff, rid = world
    wrong = []
    for method, path, need, body in MATRIX:
        url = path.replace(R, rid)
        if role == "anonymous":
            r = anonymous.request(method, url, json=body)
        else:
            r = staff[role].write(method, url, json=body)  # type: ignore[assignment]
        status = r.status_code  # type: ignore[attr-defined]
        code = _code(r)
        if _allowed(need, role):
            ok = status < 500 and status != 403 and not (status == 401 and code == "not_logged_in")
        else:
            ok = (status, code) == ((401, "not_logged_in") if role == "anonymous" else (403, "forbidden"))
        if not ok:
            wrong.append((method, path, role, status, r.text[:200]))  # type: ignore[attr-defined]
    assert wrong == []


def test_event_stream_is_gated(world: tuple[TestClient, dict[str, Staff], str]) -> None:
    anonymous, staff, _ = world
    assert anonymous.get("/api/v1/events").status_code == 401
    assert staff["admin"].client.get("/api/v1/events").status_code == 403


def test_state_changes_need_the_sessions_own_csrf_token(
    world: tuple[TestClient, dict[str, Staff], str],
) -> None:
    _, staff, rid = world
    clerk, supervisor = staff["clerk"], staff["supervisor"]
    url = f"/api/v1/records/{rid}/metadata"
    body = {"fields": {"remarks": "x"}}
    assert clerk.client.patch(url, json=body).status_code == 403, "no CSRF header"
    assert clerk.client.patch(url, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    r = clerk.client.patch(url, json=body, headers={"X-CSRF-Token": supervisor.csrf})
    assert r.status_code == 403 and r.json()["detail"]["code"] == "csrf", "another session's token"
    r = clerk.client.patch(
        url, json=body, headers={"X-CSRF-Token": clerk.csrf, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and r.json()["detail"]["code"] == "bad_origin"
    assert clerk.write("PATCH", url, json=body).status_code == 200  # type: ignore[attr-defined]


def test_logout_ends_the_session_server_side(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    add_staff(settings)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        assert client.post("/api/v1/auth/logout").status_code == 401, "logout needs a session"
        clerk = login(client, "clerk1")
        cookie = client.cookies.get("__Host-hall_session")
        assert cookie and client.get("/api/v1/auth/session").status_code == 200
        assert clerk.write("POST", "/api/v1/auth/logout").status_code == 204  # type: ignore[attr-defined]
        client.cookies.set("__Host-hall_session", cookie)  # replaying the old cookie
        assert client.get("/api/v1/auth/session").status_code == 401


def test_openapi_schema_is_readable_without_login_and_holds_no_data(
    world: tuple[TestClient, dict[str, Staff], str],
) -> None:
    anonymous, _, rid = world
    r = anonymous.get("/api/v1/openapi.json")
    assert r.status_code == 200 and rid not in r.text
    assert "/api/v1/records/{record_id}" in r.json()["paths"]
