"""``hall replica``: restore a copy of the catalog from its Litestream replica, verify the replica."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings


@click.group()
def replica() -> None:
    """The catalog's Litestream replica: restore a copy, verify it row by row."""


@replica.command()
@click.option(
    "--to",
    "dest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file to restore into (must not exist; the live catalog is never replaced).",
)
@click.option(
    "--timeout", default=120.0, show_default=True, help="Give up (and stop Litestream) after S seconds."
)
@click.pass_context
def restore(ctx: click.Context, dest: Path, timeout: float) -> None:
    """Restore the latest replicated catalog into a new file."""
    from sync.replica import restore as run_restore

    path = run_restore(_settings(ctx), dest, timeout_s=timeout)
    click.echo(f"restored the catalog to {path}")


@replica.command()
@click.option("--timeout", default=120.0, show_default=True, help="Timeout of the restore (seconds).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def verify(ctx: click.Context, timeout: float, as_json: bool) -> None:
    """Restore the replica into a scratch file and compare every table with the live catalog
    (row counts and a SHA-256 over the rows). Exit 1 on any mismatch."""
    from sync.replica import verify as run_verify

    report = run_verify(_settings(ctx), timeout_s=timeout)
    if as_json:
        _echo_json(report.to_dict())
    else:
        if not report.synced:
            click.echo(f"warning: could not sync first ({report.sync_error}); the replica may lag", err=True)
        for t in report.tables:
            rows = f"{t.live.rows if t.live else '-'} / {t.replica.rows if t.replica else '-'}"
            click.echo(f"{'ok      ' if t.ok else 'MISMATCH'}  {t.table}  rows live/replica {rows}")
        click.echo(f"replica {'matches' if report.ok else 'DOES NOT MATCH'} the catalog ({report.target})")
    if not report.ok:
        sys.exit(1)


COMMANDS = (replica,)
