"""``hall archive …``: run a central archive receiver (``sync/archive``) — set it up, serve it,
enroll and revoke boxes, and look at what arrived (per-hall status, cross-hall search)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from appliance.cli_common import echo_json

if TYPE_CHECKING:
    from sync.archive import ArchiveSettings

_DIR = click.option(
    "--dir",
    "archive_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The archive directory (archive.toml, keys/, archive.db, objects/).",
)


@click.group()
def archive() -> None:
    """The central archive's receiver (移交 target)."""


def _settings(archive_dir: Path) -> ArchiveSettings:
    from sync.archive import ArchiveSettings

    return ArchiveSettings.load(archive_dir)


@archive.command("init")
@_DIR
@click.option(
    "--archive-id", default=None, help="Name of this archive, written into receipts (default 'archive')."
)
def archive_init(archive_dir: Path, archive_id: str | None) -> None:
    """Create the archive: settings, keys, catalog, object folder, staff token. Safe to run again
    (existing keys are never replaced)."""
    from sync.archive import init_archive

    result = init_archive(archive_dir, archive_id)
    click.echo(f"archive {result.settings.archive_id!r} ready in {result.settings.archive_dir}")
    if result.wrote_settings:
        click.echo(f"  wrote {result.settings.config_path}")
    for path in result.created_keys:
        click.echo(f"  created key {path}")
    click.echo(f"  catalog: {result.settings.catalog}; objects: {result.settings.objects}")
    if result.staff_token is not None:
        click.echo(f"  staff token: {result.staff_token}  <- write it down now; it is not shown again")


@archive.command("serve")
@_DIR
@click.option("--host", default=None, help="Address to listen on (default: settings host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: settings port, 8190).")
def archive_serve(archive_dir: Path, host: str | None, port: int | None) -> None:
    """Serve the receiver until SIGTERM or Ctrl-C."""
    from sync.archive import serve_forever

    settings = _settings(archive_dir)
    click.echo(
        f"archive receiver {settings.archive_id!r} on http://{host or settings.host}:{port or settings.port}/"
    )
    serve_forever(settings, host, port)


@archive.command("enroll-token")
@_DIR
@click.option("--hall", "hall_id", required=True, help="The hall id the token is for.")
@click.option(
    "--ttl", default=None, type=int, help="Lifetime in seconds (default: settings token_ttl_s, 24 h)."
)
def archive_enroll_token(archive_dir: Path, hall_id: str, ttl: int | None) -> None:
    """Print a one-time enrollment token for a hall (`hall enroll URL TOKEN` on the box)."""
    from sync.archive import issue_enrollment_token

    click.echo(issue_enrollment_token(_settings(archive_dir), hall_id, ttl))


@archive.command("revoke")
@_DIR
@click.option("--hall", "hall_id", required=True, help="The hall whose device keys are revoked.")
def archive_revoke(archive_dir: Path, hall_id: str) -> None:
    """Revoke every device key of a hall (a lost or stolen box)."""
    from sync.archive import Receiver

    with Receiver(_settings(archive_dir)) as rx:
        revoked = rx.revoke(hall_id)
    if revoked:
        click.echo(f"revoked {len(revoked)} device key(s) of {hall_id}: {', '.join(revoked)}")
    else:
        click.echo(f"{hall_id} has no active device key")


@archive.command("status")
@_DIR
@click.option("--json", "as_json", is_flag=True)
def archive_status(archive_dir: Path, as_json: bool) -> None:
    """Per hall: records, packages, rejections, last contact, lag, revoked."""
    from sync.archive import Receiver

    with Receiver(_settings(archive_dir)) as rx:
        st = rx.status()
    if as_json:
        echo_json(st)
        return
    click.echo(f"archive {st['archive_id']} at {st['time']}")
    if not st["halls"]:
        click.echo("  no halls yet")
    for h in st["halls"]:
        lag = "-" if h["lag_s"] is None else f"{h['lag_s'] // 3600} h {h['lag_s'] % 3600 // 60} min"
        state = "REVOKED" if h["revoked"] else f"{h['active_keys']} key(s)"
        click.echo(
            f"  {h['hall_id']:20} {h['records']:>6} records {h['packages']:>6} packages "
            f"{h['rejections']:>4} rejected  last contact {h['last_contact'] or 'never'}  lag {lag}  {state}"
        )
        if h["checkpoint_flag"]:
            click.echo(f"    AUDIT: {h['checkpoint_flag']}")


@archive.command("search")
@_DIR
@click.argument("query")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def archive_search(archive_dir: Path, query: str, limit: int, as_json: bool) -> None:
    """Find records of every hall by name, ID number, phone, 档号 or words on the page."""
    from sync.archive import Receiver

    with Receiver(_settings(archive_dir)) as rx:
        hits = rx.search(query, limit=limit)
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo("没有找到 / no match")
    for h in hits:
        click.echo(f"{h.hall_id}  {h.archival_code}  {h.title or ''}  {h.snippet}")


COMMANDS = (archive,)
