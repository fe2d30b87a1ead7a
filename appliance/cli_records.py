"""``hall record …`` and ``hall retention report``: archive metadata from the command line (the
web UI calls the same functions)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from appliance.cli_common import actor
from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings


@click.group()
def record() -> None:
    """Edit, confirm (assign the 档号) or shred one record."""


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not FIELD=VALUE (e.g. 申请人=张三 or title=...)")
        out[key.strip()] = value.strip()
    return out


def _problems_exit(e: Exception) -> None:
    from appliance.record_metadata import MetadataRejected

    if isinstance(e, MetadataRejected):
        for p in e.problems:
            click.echo(f"  {p.field}: {p.message_zh} / {p.message_en}", err=True)
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


@record.command("edit")
@click.argument("record_id")
@click.option("--set", "sets", multiple=True, help="FIELD=VALUE (English name or Chinese label); repeatable.")
@click.option("--accept-suggestions", is_flag=True, help="Take the OCR suggestions first, then --set values.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def record_edit(
    ctx: click.Context, record_id: str, sets: tuple[str, ...], accept_suggestions: bool, as_json: bool
) -> None:
    """Change metadata fields (validated; every change is audited)."""
    from appliance import record_reader
    from appliance.context import open_context
    from appliance.record_metadata import MetadataRejected, RecordStateError, edit

    settings = _settings(ctx)
    app = open_context(settings)
    try:
        changes: dict[str, str] = {}
        if accept_suggestions:
            rec = app.conn.execute("SELECT * FROM records WHERE id=?", (record_id,)).fetchone()
            if rec is not None:
                sugg = record_reader.suggestions(app.store, rec)
                changes.update({k: v["value"] for k, v in sugg.items()})
        changes.update(_parse_sets(sets))
        try:
            meta = edit(app.store, settings, record_id, changes, actor=actor())
        except (MetadataRejected, RecordStateError, ValueError) as e:
            _problems_exit(e)
    finally:
        app.close()
    if as_json:
        _echo_json(meta)
    else:
        click.echo(f"record {record_id}: metadata saved ({len(meta)} fields)")


@record.command("confirm")
@click.argument("record_id")
@click.pass_context
def record_confirm(ctx: click.Context, record_id: str) -> None:
    """Confirm the metadata and archive: assigns the next 档号."""
    from appliance.context import open_context
    from appliance.record_metadata import MetadataRejected, RecordStateError, confirm

    settings = _settings(ctx)
    app = open_context(settings)
    try:
        code = confirm(app.store, settings, record_id, actor=actor())
    except (MetadataRejected, RecordStateError) as e:
        _problems_exit(e)
    finally:
        app.close()
    click.echo(code)


@record.command("shred")
@click.argument("record_id")
@click.option("--reason", required=True, help="Why (approval number); kept, sealed, in the audit chain.")
@click.option("--yes", is_flag=True, help="Do not ask for the typed confirmation.")
@click.pass_context
def record_shred(ctx: click.Context, record_id: str, reason: str, yes: bool) -> None:
    """Crypto-shred a record: its key is destroyed and its content is gone for good."""
    from appliance.context import open_context
    from appliance.shredding import shred

    if not yes:
        typed = click.prompt(f"type the record id to shred it irreversibly ({record_id})")
        if typed.strip() != record_id:
            click.echo("not confirmed; nothing was changed", err=True)
            sys.exit(1)
    app = open_context(_settings(ctx))
    try:
        shred(app.store, record_id, actor=actor(), reason=reason)
    finally:
        app.close()
    click.echo(f"record {record_id} shredded")


@record.command("export")
@click.argument("record_id")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (created; it should be on media you control).",
)
@click.pass_context
def record_export(ctx: click.Context, record_id: str, out_dir: Path) -> None:
    """Write a record's decrypted original, cleaned pages and metadata to a folder (audited as
    an export: the copy leaves the box's protection)."""
    from appliance.context import open_context
    from appliance.exporting import export_record

    app = open_context(_settings(ctx))
    try:
        written = export_record(app.store, record_id, out_dir, actor=actor())
    finally:
        app.close()
    for path in written:
        click.echo(str(path))


@click.group()
def retention() -> None:
    """保管期限 (retention) checks."""


@retention.command("report")
@click.option("--as-of", "as_of", default=None, help="Date to judge expiry on (YYYY-MM-DD; default today).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def retention_report(ctx: click.Context, as_of: str | None, as_json: bool) -> None:
    """Archived records whose retention period has ended (for appraisal, 鉴定)."""
    from appliance.context import open_context
    from appliance.record_metadata import retention_report as report

    settings = _settings(ctx)
    day = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    app = open_context(settings)
    try:
        items = report(app.store, settings, actor=actor(), today=day)
    finally:
        app.close()
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo(f"no record's retention has ended by {day.isoformat()}")
    for i in items:
        click.echo(f"{i['archival_code']}  {i['retention']}  ended {i['expired_on']}  {i['title'] or ''}")


COMMANDS = (record, retention)
