"""Staff accounts: schema v4, roles, password policy and hashing, login throttling, sessions,
API tokens and their audit trail. Real SQLite (the ``ctx`` fixture) and real Argon2id."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from appliance import audit
from appliance.accounts import (
    LOCKOUT_CAP_S,
    AccountError,
    Accounts,
    BadCredentials,
    InvalidAccountData,
    LastAdmin,
    LoginThrottled,
    OldPasswordWrong,
    PasswordRejected,
    ScopeRejected,
    UnknownToken,
    UnknownUser,
    UserExists,
    check_password,
    lock_state,
)
from appliance.catalog import _SCHEMA, SCHEMA_VERSION, connect, migrate
from appliance.context import Context
from appliance.permissions import (
    ALL_PERMISSIONS,
    CONTENT_PERMISSIONS,
    ROLE_LABELS,
    ROLE_PERMISSIONS,
    ROLES,
    permissions_for,
)
from appliance.settings import AuthSettings, Settings, StoreSettings

PW = "correct horse battery"
OTHER_PW = "staple 7 purple ox"
T0 = 1_750_000_000.0


class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_accounts(ctx: Context, clock: Callable[[], float], **auth: Any) -> Accounts:
    settings = AuthSettings.model_validate({**ctx.settings.auth.model_dump(), **auth})
    return Accounts(ctx.conn, settings, ctx.audit, clock=clock)


@pytest.fixture
def accounts(ctx: Context, clock: Clock) -> Accounts:
    return make_accounts(ctx, clock)


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts Argon2 verifications (the hash string each was run against)."""
    calls: list[str] = []
    real = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append(str(hash))
        return real(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)
    yield calls


def actions(ctx: Context) -> list[str]:
    return [e.action for e in audit.entries(ctx.conn, limit=10_000)]


def failures(ctx: Context, reason: str | None = None) -> list[audit.AuditEntry]:
    out = audit.entries(ctx.conn, action="auth.login_failed", limit=10_000)
    return [e for e in out if reason is None or e.detail.get("reason") == reason]


def chain_ok(ctx: Context) -> audit.VerifyReport:
    public = ctx.keyring.keys.device_key().public_key()
    return audit.verify(ctx.conn, {audit.key_id(public): public}, appliance_id=ctx.settings.hall_id)


def db_bytes(settings: Settings, conn: sqlite3.Connection) -> bytes:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out = b""
    for suffix in ("", "-wal", "-journal"):
        p = Path(str(settings.catalog_path) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


# --- roles ------------------------------------------------------------------------------------------
def test_roles_grant_what_the_contract_says() -> None:
    assert ROLES == ("clerk", "supervisor", "technician", "admin")
    assert ROLE_LABELS == {
        "clerk": "办事员",
        "supervisor": "审核员",
        "technician": "技术员",
        "admin": "管理员",
    }
    clerk = {
        "records.read", "records.edit", "records.confirm", "search", "intake.view", "queue.view",
        "quarantine.view",
    }  # fmt: skip
    assert permissions_for("clerk") == clerk
    assert permissions_for("supervisor") == clerk | {
        "quarantine.decide", "dashboard.view", "audit.view", "records.shred",
    }  # fmt: skip
    assert permissions_for("technician") == {"queue.view", "device.view", "device.configure"}
    assert permissions_for("admin") == {"users.manage", "device.view", "audit.view"}
    # technicians and admins never see citizens' content
    for role in ("technician", "admin"):
        assert not permissions_for(role) & CONTENT_PERMISSIONS
    assert permissions_for("nobody") == frozenset()
    assert frozenset().union(*ROLE_PERMISSIONS.values()) == ALL_PERMISSIONS


# --- schema ---------------------------------------------------------------------------------------
ACCOUNT_TABLES = {
    "users": ["id", "username", "display_name", "role", "pw_hash", "disabled", "created_at", "pw_changed_at"],
    "sessions": ["id_hash", "user_id", "csrf", "created_at", "last_seen", "client", "user_agent"],
    "api_tokens": [
        "id",
        "token_hash",
        "user_id",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "last_used",
        "revoked_at",
    ],
    "login_failures": ["id", "username", "client", "at"],
}


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted(
        (r[0], r[1]) for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    )


def test_fresh_catalog_has_the_account_tables(tmp_path: Path) -> None:
    conn = connect(tmp_path / "c.db", StoreSettings())
    migrate(conn)
    assert SCHEMA_VERSION >= 4  # the account tables came with version 4
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    for table, columns in ACCOUNT_TABLES.items():
        assert [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] == columns
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"login_failures_user", "login_failures_client"} <= indexes
    cols = {r[2] for r in conn.execute("PRAGMA index_info(login_failures_user)")}
    assert cols == {"username", "at"}
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO users(username, display_name, role, pw_hash, created_at, pw_changed_at) "
            "VALUES ('x', 'x', 'root', 'h', 0, 0)"
        )
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute(
            "INSERT INTO sessions(id_hash, user_id, csrf, created_at, last_seen) VALUES ('h', 99, 'c', 0, 0)"
        )


def test_version_3_catalog_is_upgraded_in_place_to_the_same_schema_as_a_fresh_one(tmp_path: Path) -> None:
    from appliance.audit import AUDIT_SCHEMA

    old = connect(tmp_path / "old.db", StoreSettings())
    old.executescript(_SCHEMA + AUDIT_SCHEMA)
    old.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '3')")
    old.execute("INSERT INTO meta(key, value) VALUES ('appliance_id', 'hall-9')")
    assert old.execute("SELECT 1 FROM sqlite_master WHERE name='users'").fetchone() is None
    migrate(old)
    assert old.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    assert {r[1] for r in old.execute("PRAGMA table_info(users)")} == set(ACCOUNT_TABLES["users"])
    assert old.execute("SELECT value FROM meta WHERE key='appliance_id'").fetchone()[0] == "hall-9"
    migrate(old)  # idempotent
    fresh = connect(tmp_path / "fresh.db", StoreSettings())
    migrate(fresh)
    assert _schema(old) == _schema(fresh)


# --- password policy and hashing -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "too_short"),
        ("x" * 1025 + "yz", "too_long"),
        ("ZhangSan01", "same_as_username"),
        ("张三丰工作人员一二三", "same_as_username"),  # the display name
        ("Password123", "common"),
        ("woaini1314", "common"),
        ("1qaz2wsx3edc", "common"),
        ("aaaaaaaaaaaa", "common"),
        ("abababababab", "common"),
    ],
)
def test_password_policy_rejects(password: str, reason: str) -> None:
    with pytest.raises(PasswordRejected) as e:
        check_password(
            password, username="zhangsan01", settings=AuthSettings(), display_name="张三丰工作人员一二三"
        )
    assert e.value.reason == reason
    assert e.value.code == "password_rejected"
    assert e.value.message_zh and e.value.message_en and e.value.message_zh != e.value.message_en


def test_password_policy_accepts_a_reasonable_password_and_honours_min_length() -> None:
    check_password(PW, username="alice", settings=AuthSettings())
    check_password("柜台扫描员密码二〇二五", username="alice", settings=AuthSettings())
    with pytest.raises(PasswordRejected):
        check_password("twelve chars", username="alice", settings=AuthSettings(min_password_length=13))
    with pytest.raises(ValueError, match="min_password_length"):
        AuthSettings(min_password_length=6)


def test_rejected_password_creates_no_user(accounts: Accounts) -> None:
    with pytest.raises(PasswordRejected):
        accounts.create_user("alice", "Alice", "clerk", "qwerty123", actor="cli:t")
    assert accounts.get_user("alice") is None


def test_user_fields_are_validated(accounts: Accounts) -> None:
    for username in ("a", "Has Space", "../x", "x" * 40, "管理员"):
        with pytest.raises(InvalidAccountData) as e:
            accounts.create_user(username, "X", "clerk", PW, actor="cli:t")
        assert e.value.field == "username"
    with pytest.raises(InvalidAccountData, match="role"):
        accounts.create_user("alice", "Alice", "root", PW, actor="cli:t")
    with pytest.raises(InvalidAccountData, match="display name"):
        accounts.create_user("alice", " \n", "clerk", PW, actor="cli:t")
    accounts.create_user("Alice", "Alice", "clerk", PW, actor="cli:t")
    with pytest.raises(UserExists):
        accounts.create_user("alice", "Other", "clerk", PW, actor="cli:t")


def _argon2_params(pw_hash: str) -> dict[str, int]:
    m = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", pw_hash)
    assert m, pw_hash
    return {"m": int(m[1]), "t": int(m[2]), "p": int(m[3])}


def test_passwords_are_stored_as_argon2id_with_at_least_the_minimum_cost(
    ctx: Context, accounts: Accounts
) -> None:
    accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    (pw_hash,) = ctx.conn.execute("SELECT pw_hash FROM users WHERE username='alice'").fetchone()
    params = _argon2_params(pw_hash)
    assert params["m"] >= 19 * 1024 and params["t"] >= 2 and params["p"] == 1
    assert argon2.PasswordHasher().verify(pw_hash, PW)


def test_hash_is_upgraded_at_login_when_the_parameters_change(ctx: Context, clock: Clock) -> None:
    make_accounts(ctx, clock).create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    stronger = make_accounts(ctx, clock, argon2_memory_kib=24576, argon2_time_cost=3)
    stronger.authenticate("alice", PW, client="10.0.0.5")
    (pw_hash,) = ctx.conn.execute("SELECT pw_hash FROM users WHERE username='alice'").fetchone()
    assert _argon2_params(pw_hash) == {"m": 24576, "t": 3, "p": 1}
    assert audit.entries(ctx.conn, action="auth.login")[-1].detail["rehashed"] is True
    stronger.authenticate("alice", PW, client="10.0.0.5")  # still the same password
    assert "rehashed" not in audit.entries(ctx.conn, action="auth.login")[-1].detail


def test_no_secret_is_written_anywhere_in_the_catalog(ctx: Context, accounts: Accounts) -> None:
    typed_as_username = "MyS3cretPassw0rdTyped"  # people type passwords into the username field
    user = accounts.create_user("alice", "Alice", "supervisor", PW, actor="cli:t")
    accounts.authenticate("alice", PW, client="10.0.0.5")
    for wrong in (OTHER_PW, PW):
        with pytest.raises(BadCredentials):
            accounts.authenticate(typed_as_username, wrong, client="10.0.0.5")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="test")
    secret, _ = accounts.create_token(user, "backup", ["records.read"], expires_s=None, actor="user:alice")
    new_pw = "a brand new passphrase"
    accounts.set_password("alice", new_pw, actor="user:alice", old_password=PW)
    data = db_bytes(ctx.settings, ctx.conn)
    for s in (PW, OTHER_PW, new_pw, typed_as_username, typed_as_username.lower(), token, secret):
        for encoding in ("utf-8", "utf-16-le"):
            assert s.encode(encoding) not in data, s
    # ... but the sessions and tokens are findable by their hashes
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in data
    # and what was typed as a username is readable by the audit reader (sealed under the hall key)
    entry = failures(ctx, "unknown_user")[0]
    assert entry.target is None
    assert ctx.audit.unseal(ctx.conn, entry) == {"username": typed_as_username}


# --- authentication --------------------------------------------------------------------------------
def test_login_ok_wrong_and_unknown(accounts: Accounts, verify_calls: list[str]) -> None:
    created = accounts.create_user("alice", "张三", "clerk", PW, actor="cli:t")
    user = accounts.authenticate(" Alice ", PW, client="10.0.0.5")  # names are case-insensitive
    assert user == created
    assert user.permissions == permissions_for("clerk")
    assert user.to_dict() == {
        "username": "alice", "display_name": "张三", "role": "clerk", "permissions": sorted(user.permissions),
    }  # fmt: skip
    errors = []
    for name, password in (("alice", OTHER_PW), ("bob", PW), ("not a valid name!", PW)):
        verify_calls.clear()
        with pytest.raises(BadCredentials) as e:
            accounts.authenticate(name, password, client="10.0.0.5")
        assert len(verify_calls) == 1  # one Argon2 verify, also for unknown names (timing)
        assert _argon2_params(verify_calls[0]) == {"m": 19456, "t": 2, "p": 1}
        errors.append(
            (e.value.code, str(e.value), e.value.message_zh, e.value.message_en, e.value.to_detail())
        )
    assert errors[0] == errors[1] == errors[2]
    assert errors[0][0] == "bad_credentials"
    assert errors[0][2] == "用户名或密码错误"


def test_disabled_user_cannot_log_in_and_loses_sessions_and_tokens(ctx: Context, accounts: Accounts) -> None:
    accounts.create_user("root", "管理员", "admin", PW, actor="cli:t")
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    secret, _ = accounts.create_token(user, "script", ["search"], expires_s=None, actor="user:alice")
    assert accounts.session(token) is not None and accounts.token(secret) is not None
    assert accounts.set_disabled("alice", True, actor="user:root").disabled
    assert ctx.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0  # ended, not just refused
    assert ctx.conn.execute("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL").fetchone()[0] == 0
    assert accounts.session(token) is None
    assert accounts.token(secret) is None
    with pytest.raises(BadCredentials) as e:
        accounts.authenticate("alice", PW, client="10.0.0.5")
    assert str(e.value) == "wrong username or password"
    assert failures(ctx)[-1].detail["reason"] == "disabled"
    with pytest.raises(BadCredentials):
        accounts.start_session(user, client="10.0.0.5", user_agent="a")
    # enabled again: can log in; the revoked token stays revoked
    assert not accounts.set_disabled("alice", False, actor="user:root").disabled
    accounts.authenticate("alice", PW, client="10.0.0.5")
    assert accounts.token(secret) is None
    assert [a for a in actions(ctx) if a.startswith("users.")][-2:] == ["users.disable", "users.enable"]


def test_last_enabled_admin_cannot_be_disabled_or_demoted(accounts: Accounts) -> None:
    accounts.create_user("root", "管理员", "admin", PW, actor="cli:t")
    with pytest.raises(LastAdmin):
        accounts.set_disabled("root", True, actor="cli:t")
    with pytest.raises(LastAdmin):
        accounts.set_role("root", "clerk", actor="cli:t")
    accounts.create_user("root2", "管理员二", "admin", PW, actor="cli:t")
    assert accounts.set_role("root", "technician", actor="cli:t").role == "technician"
    with pytest.raises(UnknownUser):
        accounts.set_role("nobody", "clerk", actor="cli:t")


# --- throttling -------------------------------------------------------------------------------------
def test_lock_rule() -> None:
    kw: dict[str, Any] = {"limit": 3, "window": 900.0, "base": 300.0}
    assert lock_state([0, 1], **kw) == (0.0, 0.0)
    assert lock_state([0, 1, 2], **kw) == (302.0, 300.0)
    assert lock_state([0, 1, 2, 10], **kw) == (610.0, 600.0)  # a failure while locked doubles
    assert lock_state([0, 1, 2, 10, 20, 30, 40, 50, 60], **kw) == (60 + LOCKOUT_CAP_S, LOCKOUT_CAP_S)
    assert lock_state([0, 1, 2, 400], **kw) == (1000.0, 600.0)  # soon after the lock ended: doubles too
    assert lock_state([0, 1, 2, 2000], **kw) == (0.0, 0.0)  # long after: a fresh start
    assert lock_state([0, 1000, 2000], **kw) == (0.0, 0.0)  # spread wider than the window


def test_account_locks_after_n_failures_exponentially_and_success_resets(
    ctx: Context, clock: Clock, verify_calls: list[str]
) -> None:
    accounts = make_accounts(ctx, clock, max_failures_per_account=3, lockout_s=300)
    accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    for _ in range(3):
        clock.advance(1)
        with pytest.raises(BadCredentials):
            accounts.authenticate("alice", OTHER_PW, client=f"10.0.0.{_}")  # from different addresses
    assert failures(ctx)[-1].detail["locked_for"] == 300
    verify_calls.clear()
    with pytest.raises(LoginThrottled) as e:
        accounts.authenticate("alice", PW, client="10.0.0.99")  # even the right password
    assert e.value.retry_after == 300 and e.value.code == "login_throttled"
    assert e.value.to_detail()["retry_after"] == 300
    assert verify_calls == []  # refused before any password is checked
    # each further attempt while locked doubles the lock
    clock.advance(10)
    with pytest.raises(LoginThrottled) as e:
        accounts.authenticate("alice", PW, client="10.0.0.99")
    assert e.value.retry_after == 600
    clock.advance(10)
    with pytest.raises(LoginThrottled) as e:
        accounts.authenticate("alice", OTHER_PW, client="10.0.0.99")
    assert e.value.retry_after == 1200
    # after the lock: the right password works and clears the account's failures
    clock.advance(1201)
    assert accounts.authenticate("alice", PW, client="10.0.0.99").username == "alice"
    for _ in range(2):
        with pytest.raises(BadCredentials):
            accounts.authenticate("alice", OTHER_PW, client="10.0.0.99")
    assert "locked_for" not in failures(ctx)[-1].detail


def test_lock_is_capped_and_hammering_does_not_flood_the_audit_log(ctx: Context, clock: Clock) -> None:
    accounts = make_accounts(ctx, clock, max_failures_per_account=2, max_failures_per_address=1000)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            accounts.authenticate("ghost", PW, client="10.0.0.7")  # unknown names lock the same way
    retry = []
    for _ in range(40):
        clock.advance(5)
        with pytest.raises(LoginThrottled) as e:
            accounts.authenticate("ghost", PW, client="10.0.0.7")
        retry.append(e.value.retry_after)
    assert retry[:5] == [600, 1200, 2400, LOCKOUT_CAP_S, LOCKOUT_CAP_S]
    assert max(retry) == LOCKOUT_CAP_S
    assert [e.detail["locked_for"] for e in failures(ctx, "throttled")] == [
        600,
        1200,
        2400,
        3600,
    ]  # while it grew
    # refused attempts in the same second are stored once
    n = ctx.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]
    clock.advance(5)
    for _ in range(5):
        with pytest.raises(LoginThrottled):
            accounts.authenticate("ghost", PW, client="10.0.0.7")
    assert ctx.conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == n + 1


def test_address_locks_across_usernames_and_a_success_does_not_reset_it(ctx: Context, clock: Clock) -> None:
    accounts = make_accounts(ctx, clock, max_failures_per_account=100, max_failures_per_address=4)
    accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    for name in ("bob", "carol"):
        with pytest.raises(BadCredentials):
            accounts.authenticate(name, PW, client="10.0.0.66")
    accounts.authenticate("alice", PW, client="10.0.0.66")  # an attacker's own valid account ...
    for name in ("dave", "erin"):
        with pytest.raises(BadCredentials):
            accounts.authenticate(name, PW, client="10.0.0.66")
    with pytest.raises(LoginThrottled) as e:  # ... did not reset the address
        accounts.authenticate("alice", PW, client="10.0.0.66")
    assert e.value.retry_after == 300
    assert accounts.authenticate("alice", PW, client="10.0.0.67").username == "alice"  # other counters fine
    with pytest.raises(LoginThrottled):
        accounts.authenticate("alice", PW, client="10.0.0.66")


def test_admin_password_reset_and_enable_clear_an_account_lock(ctx: Context, clock: Clock) -> None:
    accounts = make_accounts(ctx, clock, max_failures_per_account=2)
    accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    for _ in range(2):
        with pytest.raises(BadCredentials):
            accounts.authenticate("alice", OTHER_PW, client="10.0.0.5")
    with pytest.raises(LoginThrottled):
        accounts.authenticate("alice", PW, client="10.0.0.5")
    accounts.set_password("alice", "reset by the admin 1", actor="user:root")
    assert accounts.authenticate("alice", "reset by the admin 1", client="10.0.0.5").username == "alice"


# --- sessions ----------------------------------------------------------------------------------------
def test_session_tokens_are_stored_hashed_with_a_csrf_token_each(ctx: Context, accounts: Accounts) -> None:
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    token1, s1 = accounts.start_session(user, client="10.0.0.5", user_agent="Firefox")
    token2, s2 = accounts.start_session(user, client="10.0.0.5", user_agent="Firefox")
    assert token1 != token2 and len(token1) >= 43
    assert s1.csrf != s2.csrf and len(s1.csrf) >= 43 and s1.csrf not in (token1, token2)
    rows = ctx.conn.execute("SELECT * FROM sessions").fetchall()
    assert {r["id_hash"] for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in (token1, token2)}
    assert not any(token1 in str(v) or token2 in str(v) for r in rows for v in tuple(r))
    got = accounts.session(token1)
    assert got is not None and got.user == user and got.csrf == s1.csrf
    assert got.csrf_matches(s1.csrf) and not got.csrf_matches(s2.csrf) and not got.csrf_matches(None)
    assert accounts.session("made-up") is None and accounts.session("") is None


def test_idle_timeout_ends_a_session_and_requests_keep_it_alive(ctx: Context, clock: Clock) -> None:
    accounts = make_accounts(ctx, clock, idle_timeout_s=900)
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    seen = lambda: ctx.conn.execute("SELECT last_seen FROM sessions").fetchone()[0]  # noqa: E731
    s = accounts.session(token, now=T0 + 10)
    assert s is not None and s.last_seen == T0 and seen() == T0  # no write within 30 s
    s = accounts.session(token, now=T0 + 800)
    assert s is not None and s.last_seen == T0 + 800 and seen() == T0 + 800
    assert accounts.session(token, now=T0 + 800 + 899) is not None
    assert accounts.session(token, now=T0 + 1699 + 901) is None
    assert ctx.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0  # deleted
    assert accounts.session(token, now=T0 + 1699) is None  # and stays gone


def test_absolute_lifetime_ends_even_an_active_session(ctx: Context, clock: Clock) -> None:
    accounts = make_accounts(ctx, clock, idle_timeout_s=900, absolute_timeout_s=3600)
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    for t in range(600, 3601, 600):
        assert accounts.session(token, now=T0 + t) is not None
    assert accounts.session(token, now=T0 + 3660) is None
    with pytest.raises(ValueError, match="absolute_timeout_s"):
        AuthSettings(idle_timeout_s=900, absolute_timeout_s=600)


def test_logout_ends_the_session_server_side(ctx: Context, accounts: Accounts) -> None:
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    other, _ = accounts.start_session(user, client="10.0.0.6", user_agent="b")
    accounts.end_session(token)
    assert accounts.session(token) is None
    assert accounts.session(other) is not None
    accounts.end_session(token)  # again: nothing happens
    assert actions(ctx).count("auth.logout") == 1
    accounts.end_all_sessions(user.id, actor="user:alice")
    assert accounts.session(other) is None


def test_password_change_ends_other_sessions(ctx: Context, accounts: Accounts) -> None:
    user = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    here, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    elsewhere, _ = accounts.start_session(user, client="10.0.0.6", user_agent="b")
    with pytest.raises(OldPasswordWrong) as e:
        accounts.set_password("alice", "a new long password", actor="user:alice", old_password=OTHER_PW)
    assert isinstance(e.value, BadCredentials) and e.value.code == "old_password_wrong"
    assert accounts.session(elsewhere) is not None  # nothing changed
    with pytest.raises(PasswordRejected) as r:
        accounts.set_password("alice", PW, actor="user:alice", old_password=PW)
    assert r.value.reason == "same_as_old"
    accounts.set_password(
        "alice", "a new long password", actor="user:alice", old_password=PW, keep_session=here
    )
    assert accounts.session(here) is not None
    assert accounts.session(elsewhere) is None
    with pytest.raises(BadCredentials):
        accounts.authenticate("alice", PW, client="10.0.0.5")
    accounts.authenticate("alice", "a new long password", client="10.0.0.5")
    accounts.set_password("alice", "set by the administrator", actor="user:root")  # admin reset: all end
    assert accounts.session(here) is None
    with pytest.raises(UnknownUser):
        accounts.set_password("nobody", "set by the administrator", actor="user:root")


def test_role_change_applies_to_open_sessions_at_once(accounts: Accounts) -> None:
    user = accounts.create_user("alice", "Alice", "supervisor", PW, actor="cli:t")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    accounts.set_role("alice", "technician", actor="user:root")
    s = accounts.session(token)
    assert s is not None and s.user.role == "technician" and "records.read" not in s.user.permissions


# --- API tokens ---------------------------------------------------------------------------------------
def test_token_scopes_are_limited_to_the_role(ctx: Context, accounts: Accounts) -> None:
    user = accounts.create_user("alice", "Alice", "supervisor", PW, actor="cli:t")
    secret, token_id = accounts.create_token(
        user, "nightly export", ["records.read", "audit.view"], expires_s=None, actor="user:alice"
    )
    assert secret.startswith("hall_")
    got = accounts.token(secret)
    assert got is not None and got.token_id == token_id and got.user.username == "alice"
    assert got.scopes == {"records.read", "audit.view"}
    # a role change cuts the token down to what the new role may do
    accounts.set_role("alice", "clerk", actor="user:root")
    got = accounts.token(secret)
    assert got is not None and got.scopes == {"records.read"}
    clerk = accounts.get_user("alice")
    assert clerk is not None
    with pytest.raises(ScopeRejected) as e:
        accounts.create_token(clerk, "x", ["records.read", "audit.view"], expires_s=None, actor="user:alice")
    assert "audit.view" in str(e.value) and e.value.code == "scope_not_allowed"
    with pytest.raises(ScopeRejected, match="unknown"):
        accounts.create_token(clerk, "x", ["records.everything"], expires_s=None, actor="user:alice")
    with pytest.raises(ScopeRejected):
        accounts.create_token(clerk, "x", [], expires_s=None, actor="user:alice")
    assert [t["id"] for t in accounts.list_tokens()] == [token_id]


def test_revoked_and_expired_tokens_are_rejected(ctx: Context, clock: Clock, accounts: Accounts) -> None:
    alice = accounts.create_user("alice", "Alice", "clerk", PW, actor="cli:t")
    bob = accounts.create_user("bob", "Bob", "clerk", PW, actor="cli:t")
    short, short_id = accounts.create_token(alice, "short", ["search"], expires_s=3600, actor="user:alice")
    assert accounts.token(short, now=T0 + 3599) is not None
    assert accounts.token(short, now=T0 + 3600) is None
    kept, kept_id = accounts.create_token(alice, "kept", ["search"], expires_s=None, actor="user:alice")
    assert accounts.token(kept, now=T0 + 10) is not None
    with pytest.raises(UnknownToken):  # bob cannot revoke (or even see) alice's token
        accounts.revoke_token(kept_id, actor="user:bob", owner=bob)
    accounts.revoke_token(kept_id, actor="user:alice", owner=alice)
    accounts.revoke_token(kept_id, actor="user:alice")  # idempotent
    assert accounts.token(kept) is None
    assert accounts.token("hall_" + "x" * 43) is None and accounts.token("Bearer nonsense") is None
    with pytest.raises(UnknownToken):
        accounts.revoke_token("nope", actor="user:alice")
    listed = {t["id"]: t for t in accounts.list_tokens(alice)}
    assert set(listed) == {short_id, kept_id} and accounts.list_tokens(bob) == []
    assert listed[kept_id]["revoked_at"] is not None and not listed[kept_id]["active"]
    assert listed[kept_id]["last_used"] == T0 + 10
    assert all("hash" not in k and "secret" not in k for t in listed.values() for k in t)
    assert actions(ctx).count("tokens.revoke") == 1


# --- first admin, audit trail ----------------------------------------------------------------------------
def test_ensure_admin_is_idempotent(ctx: Context, accounts: Accounts) -> None:
    with pytest.raises(PasswordRejected):
        accounts.ensure_admin(password="short")
    password = accounts.ensure_admin()
    assert password is not None and len(password) >= 16
    admin = accounts.authenticate("admin", password, client="127.0.0.1")
    assert admin.role == "admin" and admin.display_name == "管理员"
    assert accounts.ensure_admin() is None
    assert accounts.ensure_admin(password="something else entirely") is None
    assert len(accounts.list_users()) == 1
    # an admin that was switched off behind the UI's back: the name is taken, say so
    ctx.conn.execute("UPDATE users SET disabled=1")
    with pytest.raises(UserExists, match="enable"):
        accounts.ensure_admin()
    assert (
        accounts.ensure_admin(password="chosen admin passphrase", username="admin2")
        == "chosen admin passphrase"
    )
    assert accounts.ensure_admin() is None


def test_every_account_action_is_audited_and_the_chain_verifies(ctx: Context, accounts: Accounts) -> None:
    root = accounts.create_user("root", "管理员", "admin", PW, actor="cli:tester")
    accounts.create_user("alice", "Alice", "clerk", PW, actor="user:root")
    with pytest.raises(BadCredentials):
        accounts.authenticate("alice", OTHER_PW, client="10.0.0.5")
    user = accounts.authenticate("alice", PW, client="10.0.0.5")
    token, _ = accounts.start_session(user, client="10.0.0.5", user_agent="a")
    accounts.end_session(token)
    accounts.set_password("alice", "a different passphrase", actor="user:root")
    accounts.set_role("alice", "supervisor", actor="user:root")
    secret, token_id = accounts.create_token(root, "ops", ["device.view"], expires_s=None, actor="user:root")
    accounts.revoke_token(token_id, actor="user:root")
    accounts.set_disabled("alice", True, actor="user:root")
    assert actions(ctx) == [
        "users.create", "users.create", "auth.login_failed", "auth.login", "auth.logout", "users.password",
        "users.role", "tokens.create", "tokens.revoke", "users.disable",
    ]  # fmt: skip
    entries = {e.action: e for e in audit.entries(ctx.conn, limit=100)}
    assert entries["users.create"].actor == "user:root" and entries["users.create"].target == "user:alice"
    assert entries["auth.login"].actor == "user:alice" and entries["auth.login"].detail == {
        "client": "10.0.0.5"
    }
    assert entries["auth.login_failed"].detail == {"client": "10.0.0.5", "reason": "bad_password"}
    assert entries["users.role"].detail == {"from": "clerk", "to": "supervisor"}
    assert entries["tokens.create"].detail == {"user": "root", "scopes": ["device.view"], "expires_at": None}
    assert ctx.audit.unseal(ctx.conn, entries["tokens.create"]) == {"name": "ops"}
    rows = ctx.conn.execute("SELECT actor, action, target, detail FROM audit_log").fetchall()
    text = repr([tuple(r) for r in rows])
    for s in (PW, OTHER_PW, "a different passphrase", secret):
        assert s not in text
    report = chain_ok(ctx)
    assert report.ok and report.entries == 10, report.breaks


def test_errors_carry_both_languages() -> None:
    for err in (
        BadCredentials(),
        LoginThrottled(7),
        UserExists(),
        UnknownUser(),
        LastAdmin(),
        UnknownToken(),
    ):
        assert isinstance(err, AccountError)
        detail = err.to_detail()
        assert detail["code"] == err.code != "account"
        assert detail["message_en"] == str(err) and re.search(r"[\u4e00-\u9fff]", detail["message_zh"])
    assert LoginThrottled(0).retry_after == 1
