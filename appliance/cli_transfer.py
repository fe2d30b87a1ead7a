"""``hall transfer`` (status, run, retry) and ``hall enroll``: transfer (移交) to the central
archive (``sync/transfer.py``, ``docs/transfer.md``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from appliance.cli_common import actor
from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings


@click.group()
def transfer() -> None:
    """Transfer of confirmed records to the central archive (移交)."""


def _print_status(st: dict[str, Any]) -> None:
    click.echo(
        f"transfer {st['state']} -> {st['archive']} (objects: {st['object_store']}): "
        f"{st['pending_blobs']} blobs and {st['pending_packages']} packages waiting, "
        f"{st['transferred']} transferred, {st['rejected']} rejected"
    )
    if st.get("problem"):
        click.echo(f"  PROBLEM: {st['problem']}")
    if st.get("last_success"):
        click.echo(f"  last receipt: {st['last_success']}")
    if st.get("last_error") and not st.get("problem"):
        click.echo(f"  last error: {st['last_error']}")
    click.echo(f"  windows: {st['windows']}; bandwidth: {st['bandwidth_kbit'] or 'unlimited'} kbit/s")


@transfer.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def transfer_status(ctx: click.Context, as_json: bool) -> None:
    """What waits for the archive, what was rejected (with the archive's reasons)."""
    from appliance.context import open_context
    from sync.transfer import catalog_status, rejected

    app = open_context(_settings(ctx))
    try:
        st = catalog_status(app)
        st["rejections"] = rejected(app.conn)
    finally:
        app.close()
    if as_json:
        _echo_json(st)
        return
    _print_status(st)
    for item in st["rejections"]:
        click.echo(f"  rejected {item['record_id']} (version {item['version']}):")
        for f in item["failed"]:
            click.echo(f"    {f.get('property')}/{f.get('item')}: {f.get('detail')}")


@transfer.command("run")
@click.option("--once", is_flag=True, help="Drain what is due now and exit (the default; kept for scripts).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def transfer_run(ctx: click.Context, once: bool, as_json: bool) -> None:
    """Send now: every blob and package that is due (not while `hall serve` runs)."""
    from sync.transfer import Transferer

    settings = _settings(ctx)
    if not settings.transfer.enabled:
        click.echo("transfer is disabled ([transfer] enabled = false)", err=True)
        sys.exit(1)
    server = None
    if settings.transfer.archive_url == "local":
        from sync import local_archive
        from sync.archive.server import ServerStartFailed

        try:
            server = local_archive.start_server(settings)
        except ServerStartFailed as e:
            raise ServerStartFailed(
                f"{e}; if `hall serve` runs, it transfers in the background: see `hall transfer status`"
            ) from None
    try:
        report = Transferer(settings).run_once()
    finally:
        if server is not None:
            server.stop()
    if as_json:
        _echo_json(report.as_dict())
    else:
        click.echo(
            f"sent {report.blobs_sent} blobs ({report.bytes_sent} bytes; {report.blobs_present} were there), "
            f"{report.accepted} packages accepted, {report.rejected} rejected, {report.failed} failures; "
            f"now {report.state}"
        )
        if report.problem:
            click.echo(f"  PROBLEM: {report.problem}")
    if report.state in ("blocked", "link_down"):
        sys.exit(1)


@transfer.command("retry")
@click.argument("record_id")
@click.pass_context
def transfer_retry(ctx: click.Context, record_id: str) -> None:
    """Send a rejected package again (after the cause was fixed)."""
    from appliance.context import open_context
    from sync.transfer import retry

    app = open_context(_settings(ctx))
    try:
        retry(app, record_id, actor=actor())
    finally:
        app.close()
    click.echo(f"record {record_id}: package pending again")


@click.command()
@click.option("--archive", "archive_url", required=True, help="Base URL of the archive receiver (https://…).")
@click.option("--token", required=True, envvar="HALL_ENROLL_TOKEN", help="One-time enrollment token.")
@click.pass_context
def enroll(ctx: click.Context, archive_url: str, token: str) -> None:
    """Enroll this box with a central archive: pin its keys, remember its URL, and seal every
    data key to it (resumable)."""
    from sync.enrollment import enroll as run_enroll

    result = run_enroll(_settings(ctx), archive_url, token, actor=actor())
    click.echo(
        f"enrolled with archive {result.archive_id} at {result.archive_url} (device {result.device_key_id})"
    )
    for path in result.pinned:
        click.echo(f"  pinned {path}")
    if result.resealed:
        click.echo(f"  sealed {result.resealed} data keys to the archive's key")
    if result.requeued:
        click.echo("  a new archive: every record is queued to be transferred again")
    click.echo("  restart `hall serve` to transfer with the new settings")


COMMANDS = [transfer, enroll]
