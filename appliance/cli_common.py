"""What every ``hall`` subcommand module shares: the settings of the data dir given to the root
command, the actor recorded in the audit chain, and JSON output."""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from appliance.settings import Settings


def settings_of(ctx: click.Context) -> Settings:
    """The settings of the data dir passed to ``hall --data-dir`` (from any subcommand depth)."""
    return Settings.load(ctx.find_root().obj)


def actor() -> str:
    """Who runs this command, as the audit chain records it."""
    return f"cli:{getpass.getuser()}"


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str))
