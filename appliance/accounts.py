"""Staff accounts for the counter web UI: users and roles, Argon2id passwords, login throttling,
server-side sessions with a CSRF token each, and scoped API tokens. No HTTP here: the API layer
(``appliance.api``) calls :class:`Accounts` and turns its errors into responses.

What is stored (catalog schema v4, see ``appliance.catalog``):

- ``users.pw_hash``: the Argon2id PHC string (m, t from :class:`~appliance.settings.AuthSettings`,
  p = 1); hashes with older parameters are replaced at the next successful login.
- ``sessions.id_hash`` / ``api_tokens.token_hash``: SHA-256 of the secret. The secret itself is
  handed out once and never written anywhere.
- ``login_failures``: one row per failed or refused login, keyed by username and client address.
  A username that does not exist is stored as a hash (people type passwords into the username
  field), and the audit entry seals it.

Throttling (per account and per client address, checked before any password is verified): a key
locks when it has ``max_failures_per_*`` failures within ``failure_window_s``. The lock lasts
``lockout_s``; every further failure while locked (or within ``failure_window_s`` after the lock
ended) starts a lock twice as long, up to :data:`LOCKOUT_CAP_S`. A successful login clears the
account's failures but not the address's (one valid account must not reset an attacker's address).
Each attempt is counted as a failure *before* its password is verified and cleared on success, so
parallel requests cannot slip past the limit.

Every account change and every login attempt is appended to the audit chain in the same
transaction as the change. Details are operational; passwords never appear anywhere.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import math
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.auditor import Auditor
from appliance.catalog import transaction
from appliance.errors import HallError
from appliance.permissions import ALL_PERMISSIONS, ROLE_LABELS, ROLES, permissions_for
from appliance.settings import AuthSettings

LOCKOUT_CAP_S = 3600
"""Longest lock, however many failures."""
TOUCH_INTERVAL_S = 30.0
"""``last_seen`` / ``last_used`` are written at most this often (not on every request), so idle
timeouts are accurate to this many seconds, erring towards ending sooner."""
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = r"[a-z0-9][a-z0-9_.-]{1,31}"
MAX_DISPLAY_NAME = 64
MAX_TOKEN_NAME = 64
API_TOKEN_PREFIX = "hall_"  # noqa: S105 - a prefix, not a secret
"""API token secrets start with this (recognisable to secret scanners and in config files)."""

_USERNAME = re.compile(USERNAME_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FAILURE_ROWS = 64  # newest failures read per key: enough to rebuild any lock (cap after ~5 doublings)
_FAILURE_HISTORY_S = 86400.0  # failure rows older than this are deleted
_COALESCE_S = 1.0  # refused attempts on a locked key closer than this are not stored again

COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd",
        "p@ssword", "p@ssw0rd123", "qwerty", "qwerty123", "qwerty1234", "qwerty12345", "qwertyuiop",
        "qwertyuiop123", "1q2w3e4r", "1q2w3e4r5t", "1q2w3e4r5t6y", "1qaz2wsx", "1qaz2wsx3edc", "1qaz@wsx",
        "1qaz!qaz", "qweasdzxc", "123qwe", "123qweasd", "123qweasdzxc", "qwe123456", "zxcvbnm", "zxcvbnm123",
        "asdfghjkl", "asdf1234", "asdfasdf", "iloveyou", "iloveyou1", "woaini", "woaini1314", "woaini520",
        "woaini123", "5201314", "1314520", "52013145201314", "abc123", "abc12345", "abc123456", "abc1234567",
        "abcd1234", "abcd12345", "abcd123456", "abcdefg", "abcdefgh", "abcdefghij", "a123456", "a1234567",
        "a12345678", "a123456789", "aa123456", "aa12345678", "aa123456789", "qq123456", "qq123456789",
        "12345678a", "123456789a", "1234567890a", "123456abc", "123456aa", "1234567890", "0123456789",
        "12345678910", "0987654321", "9876543210", "123123123", "1231231234", "123456123456", "147258369",
        "1472583690", "159357159357", "123654789", "741852963", "admin", "admin123", "admin1234",
        "admin12345", "admin123456", "admin@123", "administrator", "root", "root123", "root123456",
        "test", "test1234", "test123456", "welcome", "welcome1", "welcome123", "changeme", "changeme123",
        "letmein", "letmein123", "dragon", "monkey", "sunshine", "master", "football", "baseball",
        "shadow", "superman", "princess", "trustno1", "hall", "hall123456", "hall@12345", "hallappliance",
        "zhengwu", "zhengwu123", "zhengwu@123", "zwfw", "zwfw123456", "zwfw@12345", "hello123456",
    }
)  # fmt: skip


# --- errors -------------------------------------------------------------------------------------
class AccountError(HallError):
    """Base of account errors. ``str(e)`` is the English message; ``message_zh`` / ``message_en``
    are what staff see (see :meth:`to_detail`)."""

    code = "account"
    message_zh: str = "账户操作失败"
    message_en: str = "account operation failed"

    def __init__(
        self, message_en: str | None = None, message_zh: str | None = None, *, code: str | None = None
    ):
        en = message_en if message_en is not None else type(self).message_en
        zh = message_zh if message_zh is not None else type(self).message_zh
        super().__init__(en, code=code)
        self.message_en = en
        self.message_zh = zh

    def to_detail(self) -> dict[str, Any]:
        """The API error body's ``detail``: ``{"code", "message_zh", "message_en", ...}``."""
        return {"code": self.code, "message_zh": self.message_zh, "message_en": self.message_en}


class BadCredentials(AccountError):
    """Wrong password, unknown username or disabled account: one message for all three."""

    code = "bad_credentials"
    message_zh = "用户名或密码错误"
    message_en = "wrong username or password"

    def __init__(self) -> None:
        super().__init__()


class LoginThrottled(AccountError):
    """Too many failed logins for this account or from this address; ``retry_after`` seconds."""

    code = "login_throttled"

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            f"too many failed logins; try again in {self.retry_after} s",
            f"登录失败次数过多，请 {self.retry_after} 秒后再试",
        )

    def to_detail(self) -> dict[str, Any]:
        return {**super().to_detail(), "retry_after": self.retry_after}


class PasswordRejected(AccountError):
    """The new password breaks the policy; ``reason`` is ``too_short``, ``too_long``,
    ``same_as_username``, ``common`` or ``same_as_old``."""

    code = "password_rejected"

    def __init__(self, reason: str, message_en: str, message_zh: str) -> None:
        self.reason = reason
        super().__init__(message_en, message_zh)

    def to_detail(self) -> dict[str, Any]:
        return {**super().to_detail(), "reason": self.reason}


class OldPasswordWrong(BadCredentials):
    """A password change gave the wrong current password. Its own code (not ``bad_credentials``):
    the session stays valid, so the API must not answer 401."""

    code = "old_password_wrong"
    message_zh = "当前密码不正确"
    message_en = "the current password is wrong"

    def __init__(self) -> None:
        super().__init__()


class UserExists(AccountError):
    code = "user_exists"
    message_zh = "该用户名已存在"
    message_en = "a user with that name already exists"


class UnknownUser(AccountError):
    code = "unknown_user"
    message_zh = "没有这个用户"
    message_en = "no such user"


class UserDisabled(AccountError):
    code = "user_disabled"
    message_zh = "该用户已停用"
    message_en = "the user is disabled"


class LastAdmin(AccountError):
    """The change would leave no enabled admin (nobody could manage accounts in the UI)."""

    code = "last_admin"
    message_zh = "不能停用或降级最后一个管理员"
    message_en = "cannot disable or demote the last enabled admin"


class InvalidAccountData(AccountError):
    """A username, display name, role or token name that is not acceptable; ``field`` names it."""

    code = "account_invalid"

    def __init__(self, field: str, message_en: str, message_zh: str) -> None:
        self.field = field
        super().__init__(message_en, message_zh)

    def to_detail(self) -> dict[str, Any]:
        return {**super().to_detail(), "field": self.field}


class ScopeRejected(AccountError):
    """An API token asked for a scope that is unknown or outside the user's role."""

    code = "scope_not_allowed"


class UnknownToken(AccountError):
    code = "unknown_token"
    message_zh = "没有这个令牌"
    message_en = "no such API token"


# --- values -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    permissions: frozenset[str]

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    def to_dict(self) -> dict[str, Any]:
        """The API's ``User``: ``{"username", "display_name", "role", "permissions"}``."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "permissions": sorted(self.permissions),
        }


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    created_at: float
    last_seen: float

    def csrf_matches(self, sent: str | None) -> bool:
        """Constant-time comparison of a request's ``X-CSRF-Token`` with this session's."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


@dataclass(frozen=True)
class TokenAuth:
    token_id: str
    user: User
    scopes: frozenset[str]
    """Effective scopes: the token's scopes ∩ the user's current role permissions."""


# --- helpers ------------------------------------------------------------------------------------
def secret_hash(secret: str) -> str:
    """SHA-256 hex of a session or API token (what the catalog stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _failure_key(name: str, known: bool) -> str:
    """The ``login_failures.username`` value: the name of an existing user; otherwise a hash, so a
    password typed into the username field is not kept in plaintext."""
    if known:
        return name
    return "?" + hashlib.sha256(b"hall-appliance login name\x00" + name.encode("utf-8")).hexdigest()[:32]


def check_password(password: str, *, username: str, settings: AuthSettings, display_name: str = "") -> None:
    """Raise :class:`PasswordRejected` unless ``password`` meets the policy: at least
    ``min_password_length`` characters, not the username or display name, not a common password
    (a small list, compared case-insensitively) and not one or two characters repeated."""
    n = settings.min_password_length
    if len(password) < n:
        raise PasswordRejected(
            "too_short", f"the password must have at least {n} characters", f"密码至少需要 {n} 个字符"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(
            "too_long",
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
            f"密码最多 {MAX_PASSWORD_LENGTH} 个字符",
        )
    folded = password.strip().casefold()
    if folded in {normalise_username(username).casefold(), display_name.strip().casefold()}:
        raise PasswordRejected(
            "same_as_username", "the password must not be the username", "密码不能与用户名相同"
        )
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        raise PasswordRejected(
            "common",
            "this password is too common or too simple; choose another",
            "该密码过于常见或简单，请另选",
        )


def lock_state(times: Sequence[float], *, limit: int, window: float, base: float) -> tuple[float, float]:
    """``(locked_until, lock_length)`` after failures at ``times`` (ascending); ``(0, 0)`` if the
    last failure did not lock. See the module docstring for the rule."""
    until = length = 0.0
    level = -1
    for i, t in enumerate(times):
        if level >= 0 and t < until + window:
            level += 1  # a failure while locked, or soon after: the next lock is twice as long
        elif i + 1 - bisect.bisect_right(times, t - window, 0, i + 1) >= limit:
            level = 0
        else:
            level, until, length = -1, 0.0, 0.0
            continue
        length = float(min(LOCKOUT_CAP_S, base * 2 ** min(level, 16)))
        until = t + length
    return until, length


_dummy_hashes: dict[tuple[int, int], str] = {}
_dummy_lock = threading.Lock()


def _dummy_hash(hasher: argon2.PasswordHasher) -> str:
    """A hash with the current parameters for a password nobody knows: verifying against it costs
    the same as a real verify, so unknown usernames take as long as wrong passwords."""
    key = (hasher.time_cost, hasher.memory_cost)
    with _dummy_lock:
        found = _dummy_hashes.get(key)
        if found is None:
            found = _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(24))
    return found


def _client(client: str | None) -> str | None:
    return None if client is None else client[:64]


# --- the service --------------------------------------------------------------------------------
class Accounts:
    """Account operations on one catalog connection. Cheap to construct (one per request is fine).
    Methods that write open their own ``transaction``: call them outside one."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        settings: AuthSettings,
        audit: Auditor,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self.hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=1,
            type=argon2.Type.ID,
        )

    # --- users ----------------------------------------------------------------------------------
    def create_user(self, username: str, display_name: str, role: str, password: str, *, actor: str) -> User:
        name = self._valid_username(username)
        shown = self._valid_display_name(display_name)
        self._valid_role(role)
        check_password(password, username=name, settings=self.settings, display_name=shown)
        if self._row(name) is not None:
            raise UserExists()
        pw_hash = self.hasher.hash(password)  # ~50 ms: outside the write lock
        now = self.clock()
        with transaction(self.conn):
            try:
                cur = self.conn.execute(
                    "INSERT INTO users(username, display_name, role, pw_hash, disabled, created_at, "
                    "pw_changed_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (name, shown, role, pw_hash, now, now),
                )
            except sqlite3.IntegrityError as e:
                raise UserExists() from e
            self.audit.record(self.conn, actor, "users.create", f"user:{name}", {"role": role})
        user_id = cur.lastrowid
        assert user_id is not None
        return User(user_id, name, shown, role, False, permissions_for(role))

    def get_user(self, username: str) -> User | None:
        row = self._row(normalise_username(username))
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        return [_user(r) for r in self.conn.execute("SELECT * FROM users ORDER BY username")]

    def set_password(
        self,
        username: str,
        new_password: str,
        *,
        actor: str,
        old_password: str | None = None,
        keep_session: str | None = None,
    ) -> None:
        """Set a new password. With ``old_password`` (a user changing their own) the current
        password is checked first, throttled like a login. Every session of the user ends except
        ``keep_session`` (the token of the session making the change, if it is that user's);
        the account's login failures are cleared."""
        name = normalise_username(username)
        row = self._row(name)
        if row is None:
            raise UnknownUser()
        check_password(new_password, username=name, settings=self.settings, display_name=row["display_name"])
        if old_password is not None:
            if new_password == old_password:
                raise PasswordRejected(
                    "same_as_old",
                    "the new password must differ from the current one",
                    "新密码不能与当前密码相同",
                )
            self._check_old_password(row, old_password, actor=actor)
        pw_hash = self.hasher.hash(new_password)
        now = self.clock()
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE users SET pw_hash=?, pw_changed_at=? WHERE id=?", (pw_hash, now, row["id"])
            )
            ended = self._delete_sessions(row["id"], keep=keep_session)
            self.conn.execute("UPDATE login_failures SET username=NULL WHERE username=?", (name,))
            self.audit.record(
                self.conn,
                actor,
                "users.password",
                f"user:{name}",
                {"own": old_password is not None, "sessions_ended": ended},
            )

    def set_role(self, username: str, role: str, *, actor: str) -> User:
        """Change the role; open sessions and tokens get the new permissions at their next request."""
        self._valid_role(role)
        name = normalise_username(username)
        with transaction(self.conn):
            row = self._row(name)
            if row is None:
                raise UnknownUser()
            if row["role"] != role:
                if row["role"] == "admin" and not row["disabled"]:
                    self._require_other_admin(row["id"])
                self.conn.execute("UPDATE users SET role=? WHERE id=?", (role, row["id"]))
                self.audit.record(
                    self.conn, actor, "users.role", f"user:{name}", {"from": row["role"], "to": role}
                )
            row = self._row(name)
        assert row is not None
        return _user(row)

    def set_disabled(self, username: str, disabled: bool, *, actor: str) -> User:
        """Disable (every session ends, every API token is revoked) or enable (the account's
        login failures are cleared; revoked tokens stay revoked) a user."""
        name = normalise_username(username)
        now = self.clock()
        with transaction(self.conn):
            row = self._row(name)
            if row is None:
                raise UnknownUser()
            if bool(row["disabled"]) != disabled:
                if disabled:
                    if row["role"] == "admin":
                        self._require_other_admin(row["id"])
                    ended = self._delete_sessions(row["id"])
                    revoked = self.conn.execute(
                        "UPDATE api_tokens SET revoked_at=? WHERE user_id=? AND revoked_at IS NULL",
                        (now, row["id"]),
                    ).rowcount
                    detail = {"sessions_ended": ended, "tokens_revoked": revoked}
                    action = "users.disable"
                else:
                    self.conn.execute("UPDATE login_failures SET username=NULL WHERE username=?", (name,))
                    detail, action = {}, "users.enable"
                self.conn.execute("UPDATE users SET disabled=? WHERE id=?", (int(disabled), row["id"]))
                self.audit.record(self.conn, actor, action, f"user:{name}", detail)
            row = self._row(name)
        assert row is not None
        return _user(row)

    def ensure_admin(self, *, password: str | None = None, username: str = "admin") -> str | None:
        """If no enabled admin exists, create ``username`` as admin with ``password`` (or a
        generated one) and return the password; otherwise None. Raises :class:`UserExists` if
        ``username`` is taken by a non-admin or disabled account (enable it, or pick another name)."""
        if self._has_enabled_admin():
            return None
        secret = password if password is not None else secrets.token_urlsafe(12)
        try:
            self.create_user(username, ROLE_LABELS["admin"], "admin", secret, actor="system")
        except UserExists as e:
            raise UserExists(
                f"no enabled admin exists and the name {normalise_username(username)!r} is taken; "
                "enable that user (hall users enable) or choose another admin name",
                "没有可用的管理员，且该用户名已被占用；请启用该用户或换一个管理员用户名",
            ) from e
        return secret

    # --- login ----------------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, *, client: str) -> User:
        """Check a login. Throttling (per account and per address) is decided before any password
        is verified; exactly one Argon2 verify runs otherwise (against a dummy hash for unknown
        users). Unknown user, wrong password and disabled account all raise
        :class:`BadCredentials`; a lock raises :class:`LoginThrottled`."""
        now = self.clock()
        name = normalise_username(username)
        addr = _client(client)
        row = self._row(name) if _USERNAME.fullmatch(name) else None
        key = _failure_key(name, row is not None)
        attempt: int | None = None
        with transaction(self.conn):
            account, address = self._lock(key, now), self._address_lock(addr, now)
            retry = max(account[0], address[0]) - now
            if retry > 0:  # Retry-After names the lock as this attempt left it
                retry = self._refused(key, addr, now, account, address, row, username) - now
            else:  # count the attempt now; cleared again if the password is right
                attempt = self._insert_failure(key, addr, now)
        if retry > 0:
            raise LoginThrottled(math.ceil(retry))

        stored = row["pw_hash"] if row is not None else _dummy_hash(self.hasher)
        ok = self._verify(stored, password)
        new_hash = None
        if ok and row is not None and not row["disabled"] and self._needs_rehash(stored):
            new_hash = self.hasher.hash(password)

        with transaction(self.conn):
            fresh = self._row(name) if row is not None else None
            if ok and fresh is not None and not fresh["disabled"]:
                self.conn.execute("DELETE FROM login_failures WHERE id=?", (attempt,))
                self.conn.execute("UPDATE login_failures SET username=NULL WHERE username=?", (key,))
                detail: dict[str, Any] = {"client": addr}
                if new_hash is not None:
                    self.conn.execute("UPDATE users SET pw_hash=? WHERE id=?", (new_hash, fresh["id"]))
                    detail["rehashed"] = True
                self.audit.record(self.conn, f"user:{name}", "auth.login", f"user:{name}", detail)
                return _user(fresh)
            reason = "unknown_user" if fresh is None else "disabled" if ok else "bad_password"
            detail = {"client": addr, "reason": reason}
            until = max(self._lock(key, now)[0], self._address_lock(addr, now)[0])
            if until > now:  # this failure started (or lengthened) a lock
                detail["locked_for"] = math.ceil(until - now)
            self._audit_failure(detail, row, username)
        raise BadCredentials()

    # --- sessions -------------------------------------------------------------------------------
    def start_session(self, user: User, *, client: str, user_agent: str) -> tuple[str, Session]:
        """A new session for an authenticated user: ``(token, session)``. The token goes into the
        cookie and is never stored; the session's CSRF token is returned with it."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        with transaction(self.conn):
            row = self.conn.execute("SELECT * FROM users WHERE id=?", (user.id,)).fetchone()
            if row is None or row["disabled"]:
                raise BadCredentials()
            self._prune_sessions(now)
            self.conn.execute(
                "INSERT INTO sessions(id_hash, user_id, csrf, created_at, last_seen, client, user_agent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (secret_hash(token), user.id, csrf, now, now, _client(client), user_agent[:256]),
            )
        return token, Session(_user(row), csrf, now, now)

    def session(self, token: str, *, now: float | None = None) -> Session | None:
        """The live session for a cookie token, or None (unknown, idle longer than
        ``idle_timeout_s``, older than ``absolute_timeout_s``, or the user is disabled; an expired
        session is deleted). Marks the session as seen (at most every :data:`TOUCH_INTERVAL_S`)."""
        if not token or len(token) > 256:
            return None
        t = self.clock() if now is None else now
        id_hash = secret_hash(token)
        row = self.conn.execute(
            "SELECT s.csrf, s.created_at, s.last_seen, u.* FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.id_hash=?",
            (id_hash,),
        ).fetchone()
        if row is None:
            return None
        if (
            row["disabled"]
            or t - row["last_seen"] > self.settings.idle_timeout_s
            or t - row["created_at"] > self.settings.absolute_timeout_s
        ):
            self.conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))
            return None
        last_seen = row["last_seen"]
        if t - last_seen >= TOUCH_INTERVAL_S:
            self.conn.execute("UPDATE sessions SET last_seen=? WHERE id_hash=?", (t, id_hash))
            last_seen = t
        return Session(_user(row), row["csrf"], row["created_at"], last_seen)

    def end_session(self, token: str) -> None:
        """Log out: the session is deleted server-side (unknown tokens are ignored)."""
        id_hash = secret_hash(token)
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT u.username, s.client FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.id_hash=?",
                (id_hash,),
            ).fetchone()
            if row is None:
                return
            self.conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))
            who = f"user:{row['username']}"
            self.audit.record(self.conn, who, "auth.logout", who, {"client": row["client"]})

    def end_all_sessions(self, user_id: int, *, actor: str = "system") -> None:
        """End every session of one user (e.g. "log out everywhere")."""
        with transaction(self.conn):
            row = self.conn.execute("SELECT username FROM users WHERE id=?", (user_id,)).fetchone()
            if row is None:
                raise UnknownUser()
            ended = self._delete_sessions(user_id)
            self.audit.record(
                self.conn,
                actor,
                "auth.logout",
                f"user:{row['username']}",
                {"all": True, "sessions_ended": ended},
            )

    # --- API tokens -----------------------------------------------------------------------------
    def create_token(
        self, user: User, name: str, scopes: Iterable[str], *, expires_s: float | None, actor: str
    ) -> tuple[str, str]:
        """A new API token for ``user``: ``(secret, token_id)``. The secret is shown once and
        stored only as a hash. Every scope must be a permission of the user's current role."""
        label = name.strip()
        if not label or len(label) > MAX_TOKEN_NAME or _CONTROL.search(label):
            raise InvalidAccountData(
                "name",
                f"a token name needs 1-{MAX_TOKEN_NAME} printable characters",
                f"令牌名称需为 1-{MAX_TOKEN_NAME} 个可打印字符",
            )
        wanted = frozenset(scopes)
        if expires_s is not None and not (math.isfinite(expires_s) and expires_s > 0):
            raise InvalidAccountData(
                "expires_s", "expiry must be a positive number of seconds", "有效期须为正数秒"
            )
        row = self.conn.execute("SELECT * FROM users WHERE id=?", (user.id,)).fetchone()
        if row is None:
            raise UnknownUser()
        if row["disabled"]:
            raise UserDisabled()
        allowed = permissions_for(row["role"])
        if not wanted:
            raise ScopeRejected("a token needs at least one scope", "令牌至少需要一个权限范围")
        if not wanted <= ALL_PERMISSIONS:
            bad = ", ".join(sorted(wanted - ALL_PERMISSIONS))
            raise ScopeRejected(f"unknown scopes: {bad}", f"未知的权限范围：{bad}")
        if not wanted <= allowed:
            bad = ", ".join(sorted(wanted - allowed))
            raise ScopeRejected(
                f"the role {row['role']} does not have: {bad}",
                f"角色 {ROLE_LABELS[row['role']]} 没有这些权限：{bad}",
            )
        token_id = secrets.token_hex(8)
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = None if expires_s is None else now + expires_s
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO api_tokens(id, token_hash, user_id, name, scopes, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, secret_hash(secret), user.id, label, json.dumps(sorted(wanted)), now, expires_at),
            )
            self.audit.record(
                self.conn,
                actor,
                "tokens.create",
                f"token:{token_id}",
                {"user": row["username"], "scopes": sorted(wanted), "expires_at": expires_at},
                sensitive={"name": label},
            )
        return secret, token_id

    def token(self, secret: str, *, now: float | None = None) -> TokenAuth | None:
        """The token behind an ``Authorization: Bearer`` secret, or None (unknown, revoked,
        expired, or its user disabled). Its scopes are cut down to the user's current role."""
        if not secret.startswith(API_TOKEN_PREFIX) or len(secret) > 128:
            return None
        t = self.clock() if now is None else now
        row = self.conn.execute(
            "SELECT t.id AS token_id, t.scopes, t.expires_at, t.last_used, t.revoked_at, u.* "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash=?",
            (secret_hash(secret),),
        ).fetchone()
        if row is None or row["revoked_at"] is not None or row["disabled"]:
            return None
        if row["expires_at"] is not None and t >= row["expires_at"]:
            return None
        if row["last_used"] is None or t - row["last_used"] >= TOUCH_INTERVAL_S:
            self.conn.execute("UPDATE api_tokens SET last_used=? WHERE id=?", (t, row["token_id"]))
        user = _user(row)
        return TokenAuth(row["token_id"], user, frozenset(json.loads(row["scopes"])) & user.permissions)

    def list_tokens(self, user: User | None = None) -> list[dict[str, Any]]:
        """Tokens (never their secrets or hashes), oldest first; one user's or everybody's."""
        sql = (
            "SELECT t.id, u.username, t.name, t.scopes, t.created_at, t.expires_at, t.last_used, "
            "t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id"
        )
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE t.user_id=?"
            args = (user.id,)
        now = self.clock()
        out = []
        for r in self.conn.execute(sql + " ORDER BY t.created_at, t.id", args):
            item = dict(r)
            item["scopes"] = json.loads(r["scopes"])
            item["active"] = r["revoked_at"] is None and (r["expires_at"] is None or now < r["expires_at"])
            out.append(item)
        return out

    def revoke_token(self, token_id: str, *, actor: str, owner: User | None = None) -> None:
        """Revoke a token (idempotent). With ``owner``, only that user's tokens are found: another
        user's token id raises :class:`UnknownToken` just like a missing one."""
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT t.user_id, t.revoked_at, u.username FROM api_tokens t "
                "JOIN users u ON u.id = t.user_id WHERE t.id=?",
                (token_id,),
            ).fetchone()
            if row is None or (owner is not None and row["user_id"] != owner.id):
                raise UnknownToken()
            if row["revoked_at"] is not None:
                return
            self.conn.execute("UPDATE api_tokens SET revoked_at=? WHERE id=?", (self.clock(), token_id))
            self.audit.record(
                self.conn, actor, "tokens.revoke", f"token:{token_id}", {"user": row["username"]}
            )

    # --- internals ------------------------------------------------------------------------------
    def _row(self, name: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM users WHERE username=?", (name,)
        ).fetchone()
        return row

    def _has_enabled_admin(self, *, besides: int | None = None) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM users WHERE role='admin' AND disabled=0 AND id IS NOT ? LIMIT 1", (besides,)
        ).fetchone()
        return row is not None

    def _require_other_admin(self, user_id: int) -> None:
        if not self._has_enabled_admin(besides=user_id):
            raise LastAdmin()

    @staticmethod
    def _valid_username(username: str) -> str:
        name = normalise_username(username)
        if not _USERNAME.fullmatch(name):
            raise InvalidAccountData(
                "username",
                "a username has 2-32 characters: lower-case letters, digits, '.', '_', '-', starting "
                "with a letter or digit",
                "用户名为 2-32 个字符：小写字母、数字、'.'、'_'、'-'，以字母或数字开头",
            )
        return name

    @staticmethod
    def _valid_display_name(display_name: str) -> str:
        shown = display_name.strip()
        if not shown or len(shown) > MAX_DISPLAY_NAME or _CONTROL.search(shown):
            raise InvalidAccountData(
                "display_name",
                f"a display name needs 1-{MAX_DISPLAY_NAME} printable characters",
                f"显示名称需为 1-{MAX_DISPLAY_NAME} 个可打印字符",
            )
        return shown

    @staticmethod
    def _valid_role(role: str) -> None:
        if role not in ROLES:
            raise InvalidAccountData(
                "role",
                f"role must be one of {', '.join(ROLES)}",
                f"角色必须是 {'、'.join(ROLE_LABELS.values())} 之一",
            )

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False

    def _needs_rehash(self, stored: str) -> bool:
        try:
            return bool(self.hasher.check_needs_rehash(stored))
        except (InvalidHashError, ValueError):
            return True

    def _check_old_password(self, row: sqlite3.Row, old_password: str, *, actor: str) -> None:
        """Verify the current password for a change, throttled and counted like a login."""
        now = self.clock()
        key = row["username"]
        with transaction(self.conn):
            retry = self._lock(key, now)[0] - now
            attempt = None if retry > 0 else self._insert_failure(key, None, now)
        if attempt is None:
            raise LoginThrottled(math.ceil(retry))
        ok = self._verify(row["pw_hash"], old_password)
        with transaction(self.conn):
            if ok:
                self.conn.execute("DELETE FROM login_failures WHERE id=?", (attempt,))
                return
            self.audit.record(
                self.conn,
                actor,
                "auth.login_failed",
                f"user:{key}",
                {"client": None, "reason": "wrong_old_password"},
            )
        raise OldPasswordWrong()

    def _delete_sessions(self, user_id: int, *, keep: str | None = None) -> int:
        keep_hash = None if keep is None else secret_hash(keep)
        return self.conn.execute(
            "DELETE FROM sessions WHERE user_id=? AND id_hash IS NOT ?", (user_id, keep_hash)
        ).rowcount

    def _prune_sessions(self, now: float) -> None:
        self.conn.execute(
            "DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
            (now - self.settings.idle_timeout_s, now - self.settings.absolute_timeout_s),
        )

    def _failure_times(self, column: str, value: str, now: float) -> list[float]:
        rows = self.conn.execute(
            f"SELECT at FROM login_failures WHERE {column}=? AND at > ? ORDER BY at DESC LIMIT ?",
            (value, now - _FAILURE_HISTORY_S, _FAILURE_ROWS),
        ).fetchall()
        return sorted(r[0] for r in rows)

    def _lock(self, key: str, now: float) -> tuple[float, float]:
        """``(locked_until, length)`` of an account key (see :func:`lock_state`)."""
        s = self.settings
        times = self._failure_times("username", key, now)
        return lock_state(
            times, limit=s.max_failures_per_account, window=s.failure_window_s, base=s.lockout_s
        )

    def _address_lock(self, addr: str | None, now: float) -> tuple[float, float]:
        """``(locked_until, length)`` of a client address."""
        if addr is None:
            return 0.0, 0.0
        s = self.settings
        times = self._failure_times("client", addr, now)
        return lock_state(
            times, limit=s.max_failures_per_address, window=s.failure_window_s, base=s.lockout_s
        )

    def _insert_failure(self, key: str, addr: str | None, now: float) -> int:
        self.conn.execute("DELETE FROM login_failures WHERE at < ?", (now - _FAILURE_HISTORY_S,))
        cur = self.conn.execute(
            "INSERT INTO login_failures(username, client, at) VALUES (?, ?, ?)", (key, addr, now)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _refused(
        self,
        key: str,
        addr: str | None,
        now: float,
        account: tuple[float, float],
        address: tuple[float, float],
        row: sqlite3.Row | None,
        typed: str,
    ) -> float:
        """A login refused by a lock: stored as a failure (it lengthens the lock) unless a locked
        key already had one within :data:`_COALESCE_S`; audited only when it lengthens a lock, so
        hammering a locked account cannot flood the audit chain. Returns when the lock now ends."""
        locked = [("username", key)] if account[0] > now else []
        if addr is not None and address[0] > now:
            locked.append(("client", addr))
        for column, value in locked:
            if self.conn.execute(
                f"SELECT 1 FROM login_failures WHERE {column}=? AND at > ? LIMIT 1",
                (value, now - _COALESCE_S),
            ).fetchone():
                return max(account[0], address[0])
        self._insert_failure(key, addr, now)
        account_after, address_after = self._lock(key, now), self._address_lock(addr, now)
        until = max(account_after[0], address_after[0])
        if account_after[1] > account[1] or address_after[1] > address[1]:
            detail = {"client": addr, "reason": "throttled", "locked_for": math.ceil(until - now)}
            self._audit_failure(detail, row, typed)
        return until

    def _audit_failure(self, detail: dict[str, Any], row: sqlite3.Row | None, typed: str) -> None:
        if row is not None:
            self.audit.record(self.conn, "anonymous", "auth.login_failed", f"user:{row['username']}", detail)
        else:  # what was typed may be a password: sealed, readable with the hall key only
            self.audit.record(
                self.conn, "anonymous", "auth.login_failed", None, detail, sensitive={"username": typed[:64]}
            )


def _user(row: sqlite3.Row) -> User:
    role = row["role"]
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=role,
        disabled=bool(row["disabled"]),
        permissions=permissions_for(role),
    )
