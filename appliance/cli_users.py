"""``hall users``: staff accounts for the counter web UI, from the box's console.

Passwords are prompted twice without echo, or read as one line from stdin with
``--password-stdin`` (for provisioning scripts); they are never taken as arguments, where they
would land in the shell history and the process list. Every change is audited as ``cli:<login>``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from appliance.accounts import AccountError, Accounts, User
from appliance.cli_common import actor
from appliance.cli_common import settings_of as _settings
from appliance.permissions import ROLE_LABELS, ROLES


@contextmanager
def _accounts(ctx: click.Context) -> Iterator[Accounts]:
    """An :class:`Accounts` on the data dir's catalog; account errors become one clear line in
    both languages and exit status 2 (like every other ``hall`` error)."""
    from appliance.context import open_context

    app = open_context(_settings(ctx))
    try:
        yield Accounts(app.conn, app.settings.auth, app.audit)
    except AccountError as e:
        click.echo(f"error [{e.code}]: {e.message_en} / {e.message_zh}", err=True)
        sys.exit(2)
    finally:
        app.close()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        typed = line.removesuffix("\n").removesuffix("\r")
        if not typed:
            raise click.UsageError("--password-stdin: no password on standard input")
        return typed
    return str(
        click.prompt(
            "Password 密码", hide_input=True, confirmation_prompt="Repeat 再次输入", show_default=False
        )
    )


def _describe(user: User) -> str:
    return f"{user.username} ({user.role_label} {user.role})"


@click.group()
def users() -> None:
    """Staff accounts for the counter web UI: 办事员 clerk, 审核员 supervisor, 技术员 technician,
    管理员 admin."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--display-name", required=True, help="Name shown in the UI, e.g. 张三.")
@click.option("--password-stdin", is_flag=True, help="Read the password as one line from stdin.")
@click.pass_context
def users_add(ctx: click.Context, username: str, role: str, display_name: str, password_stdin: bool) -> None:
    """Create a user."""
    password = _read_password(password_stdin)
    with _accounts(ctx) as accounts:
        user = accounts.create_user(username, display_name, role, password, actor=actor())
    click.echo(f"created user {_describe(user)}")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password as one line from stdin.")
@click.pass_context
def users_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password (ends the user's sessions and clears a login lock)."""
    password = _read_password(password_stdin)
    with _accounts(ctx) as accounts:
        accounts.set_password(username, password, actor=actor())
    click.echo(f"password set for {username.strip().lower()}; their sessions have ended")


@users.command("disable")
@click.argument("username")
@click.pass_context
def users_disable(ctx: click.Context, username: str) -> None:
    """Disable a user: their sessions end and their API tokens are revoked."""
    with _accounts(ctx) as accounts:
        user = accounts.set_disabled(username, True, actor=actor())
    click.echo(f"disabled {_describe(user)}")


@users.command("enable")
@click.argument("username")
@click.pass_context
def users_enable(ctx: click.Context, username: str) -> None:
    """Enable a disabled user again (and clear a login lock on the account)."""
    with _accounts(ctx) as accounts:
        user = accounts.set_disabled(username, False, actor=actor())
    click.echo(f"enabled {_describe(user)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of users.")
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """Every user with role and state."""
    with _accounts(ctx) as accounts:
        items = accounts.list_users()
    if as_json:
        rows = [{**u.to_dict(), "role_label": u.role_label, "disabled": u.disabled} for u in items]
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    if not items:
        click.echo("没有用户 / no users (create one: hall users add NAME --role admin --display-name 管理员)")
    for u in items:
        state = "停用 disabled" if u.disabled else "启用 enabled"
        click.echo(f"{u.username:24} {ROLE_LABELS[u.role]} {u.role:11} {state:12} {u.display_name}")


COMMANDS = (users,)
