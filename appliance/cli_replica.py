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


@replica.command()
@click.option(
    "--keys",
    "kit",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The recovery kit: a folder laid out like keys/ (kek/kek-*.key, index.key, archive pins, "
    "device.ed25519 if kept).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Timeout of the restore (seconds).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_context
def rebuild(ctx: click.Context, kit: Path, timeout: float, as_json: bool) -> None:
    """Replace a dead box: fill this new data dir from the replica (catalog), the recovery kit
    (keys) and the archive's object store (blobs), then open every record. Exit 1 when anything
    could not be recovered (the report names the records)."""
    from sync.rebuild import rebuild as run_rebuild

    settings = _settings(ctx)
    report = run_rebuild(settings, kit, timeout_s=timeout, progress=None if as_json else click.echo)
    if as_json:
        _echo_json(report.to_dict())
    else:
        b = report.blobs
        click.echo(f"rebuilt {settings.data_dir} for {report.hall_id} in {report.seconds:.1f} s")
        click.echo(
            f"  records opened: {len(report.records) - len(report.unreadable)} of {len(report.records)}"
        )
        click.echo(f"  blobs: {b.fetched} fetched ({b.fetched_bytes} bytes), {len(b.missing)} missing, "
                   f"{len(b.corrupt)} damaged")  # fmt: skip
        for r in report.unreadable:
            click.echo(f"  UNREADABLE record {r.record_id} ({r.archival_code or 'draft'}): {r.problem}")
        for rid in b.records_affected():
            click.echo(f"  pages lost with the old box (never shipped): record {rid}")
        for j in report.lost_jobs:
            click.echo(f"  LOST scan {j['name']!r} at counter {j['counter']}: not processed by the old box; "
                       "scan it again")  # fmt: skip
        for q in report.lost_quarantine:
            click.echo(f"  quarantined original {q['name']!r} [{q['reason_code']}] was only on the old box")
        if report.device_key == "new":
            click.echo(
                "  a new device key was made: enroll it with the archive (hall enroll) before transfer"
            )
    if not report.complete:
        sys.exit(1)


COMMANDS = (replica,)
