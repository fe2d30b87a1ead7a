"""``hall users``: run through a parent group built like the real ``hall`` (``--data-dir`` into
``ctx.obj``, errors via :class:`appliance.cli.HallGroup`)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from appliance import audit
from appliance.accounts import Accounts, BadCredentials
from appliance.cli import HallGroup
from appliance.cli_users import COMMANDS, users
from appliance.context import open_context
from appliance.settings import Settings

PW = "counter passphrase 1"


@click.group(cls=HallGroup)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.pass_context
def hall(ctx: click.Context, data_dir: Path) -> None:
    ctx.obj = data_dir


for _command in COMMANDS:
    hall.add_command(_command)


def run(settings: Settings, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(hall, ["--data-dir", str(settings.data_dir), "users", *args], input=input)


def login(settings: Settings, username: str, password: str) -> str:
    app = open_context(settings)
    try:
        return Accounts(app.conn, settings.auth, app.audit).authenticate(username, password, client="t").role
    finally:
        app.close()


def test_commands_are_exported() -> None:
    assert tuple(COMMANDS) == (users,)
    assert set(users.commands) == {"add", "passwd", "disable", "enable", "list"}


def test_add_from_stdin_then_list_and_log_in(fresh_settings: Settings) -> None:
    args = ["add", "Alice", "--role", "supervisor", "--display-name", "张三", "--password-stdin"]
    r = run(fresh_settings, *args, input=PW + "\n")
    assert r.exit_code == 0, r.output
    assert "created user alice (审核员 supervisor)" in r.output
    assert PW not in r.output
    assert login(fresh_settings, "alice", PW) == "supervisor"
    r = run(fresh_settings, "list", "--json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["username"] == "alice" and row["display_name"] == "张三" and row["role_label"] == "审核员"
    assert row["disabled"] is False and "audit.view" in row["permissions"]
    r = run(fresh_settings, "list")
    assert "alice" in r.output and "审核员" in r.output and "启用 enabled" in r.output


def test_add_prompts_twice_without_echo(fresh_settings: Settings) -> None:
    r = run(fresh_settings, "add", "bob", "--role", "clerk", "--display-name", "李四", input=f"{PW}\n{PW}\n")
    assert r.exit_code == 0, r.output
    assert PW not in r.output  # hidden input
    assert r.output.count("密码") >= 1 and "再次输入" in r.output
    assert login(fresh_settings, "bob", PW) == "clerk"


def test_mismatched_prompt_creates_nothing(fresh_settings: Settings) -> None:
    r = run(
        fresh_settings,
        "add",
        "bob",
        "--role",
        "clerk",
        "--display-name",
        "李四",
        input=f"{PW}\nother one 12\n",
    )
    assert r.exit_code != 0
    assert json.loads(run(fresh_settings, "list", "--json").stdout) == []


def test_errors_are_one_line_in_both_languages(fresh_settings: Settings) -> None:
    args = ["add", "bob", "--role", "clerk", "--display-name", "李四", "--password-stdin"]
    r = run(fresh_settings, *args, input="qwerty123\n")
    assert r.exit_code == 2
    assert "error [password_rejected]" in r.stderr and "密码" in r.stderr
    assert "Traceback" not in r.output
    r = run(fresh_settings, "disable", "nobody")
    assert r.exit_code == 2 and "error [unknown_user]" in r.stderr and "没有这个用户" in r.stderr
    r = run(
        fresh_settings, "add", "bob", "--role", "root", "--display-name", "x", "--password-stdin", input=PW
    )
    assert r.exit_code == 2 and "root" in r.stderr  # click refuses the role
    r = run(
        fresh_settings, "add", "bob", "--role", "clerk", "--display-name", "x", "--password-stdin", input=""
    )
    assert r.exit_code == 2 and "no password" in r.stderr


def test_passwd_disable_enable(fresh_settings: Settings) -> None:
    run(
        fresh_settings,
        "add",
        "carol",
        "--role",
        "clerk",
        "--display-name",
        "王五",
        "--password-stdin",
        input=PW,
    )
    new = "another passphrase 2"
    r = run(fresh_settings, "passwd", "carol", "--password-stdin", input=new + "\r\n")
    assert r.exit_code == 0, r.output
    with pytest.raises(BadCredentials):
        login(fresh_settings, "carol", PW)
    assert login(fresh_settings, "carol", new) == "clerk"

    r = run(fresh_settings, "disable", "carol")
    assert r.exit_code == 0 and "disabled carol" in r.output
    assert json.loads(run(fresh_settings, "list", "--json").stdout)[0]["disabled"] is True
    with pytest.raises(BadCredentials):
        login(fresh_settings, "carol", new)
    r = run(fresh_settings, "enable", "carol")
    assert r.exit_code == 0 and "enabled carol" in r.output
    assert login(fresh_settings, "carol", new) == "clerk"

    app = open_context(fresh_settings)
    try:
        entries = [e for e in audit.entries(app.conn, limit=100) if e.action.startswith("users.")]
    finally:
        app.close()
    assert [e.action for e in entries] == ["users.create", "users.password", "users.disable", "users.enable"]
    assert {e.actor for e in entries} == {f"cli:{getpass.getuser()}"}
