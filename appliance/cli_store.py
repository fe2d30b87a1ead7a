"""``hall`` commands over the encrypted store: search, reindex, keys, audit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from appliance.cli_common import actor
from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings


@click.command()
@click.argument("query")
@click.option("--limit", default=20, show_default=True, help="Most hits to return.")
@click.option("--status", type=click.Choice(["draft", "confirmed", "transferred"]), default=None)
@click.option("--retention", type=click.Choice(["Y", "D30", "D10"]), default=None, help="保管期限.")
@click.option("--matter", default=None, help="办理事项 contains this.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of hits ([] when nothing matches).")
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    limit: int,
    status: str | None,
    retention: str | None,
    matter: str | None,
    as_json: bool,
) -> None:
    """Find records by words on the page, name, ID number, phone or 档号."""
    from appliance.context import open_context
    from appliance.search import SearchFilters
    from appliance.search import search as run_search

    app = open_context(_settings(ctx))
    try:
        hits = run_search(
            app.store,
            query,
            actor=actor(),
            limit=limit,
            filters=SearchFilters(status=status, retention=retention, matter=matter),
        )
    finally:
        app.close()
    if as_json:
        _echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo("没有找到 / no match")
    for h in hits:
        code = h.archival_code or "(未归档 draft)"
        where = f"p.{h.page + 1}" if h.page is not None else "metadata"
        snippet = h.snippet
        for start, end in reversed(h.highlights):
            snippet = snippet[:start] + "【" + snippet[start:end] + "】" + snippet[end:]
        click.echo(f"{h.record_id}  {code}  {h.title or ''}  [{where}]  {snippet}")


@click.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the search index from the (decrypted) records."""
    from appliance.context import open_context
    from appliance.search import reindex as run_reindex

    app = open_context(_settings(ctx))
    t0 = time.monotonic()
    try:
        n = run_reindex(app.store, actor=actor())
    finally:
        app.close()
    click.echo(f"reindexed {n} records in {time.monotonic() - t0:.1f} s")


@click.group()
def keys() -> None:
    """The hall keys: status and rotation."""


@keys.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_status(ctx: click.Context, as_json: bool) -> None:
    """Each key file, its mode, and whether it loads."""
    from appliance.keys import FileKeySource

    settings = _settings(ctx)
    items = FileKeySource(settings.keys_dir).status()
    if as_json:
        _echo_json([{**i.__dict__, "path": str(i.path)} for i in items])
    else:
        for i in items:
            state = "ok" if i.ok else f"PROBLEM: {i.problem}"
            click.echo(f"{i.name:32} {i.mode or '----'}  {i.path}  {state}")
    if not all(i.ok for i in items):
        sys.exit(1)


@keys.command("from-credentials")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--prefix", default="keys_", show_default=True, help="Credential name prefix (the LoadCredential id)."
)
def keys_from_credentials(dest: Path, prefix: str) -> None:
    """hall.service's ExecStartPre: lay the keys systemd handed over ($CREDENTIALS_DIRECTORY) out
    as a keys folder in the service's private runtime folder."""
    import os

    from appliance.keys import install_from_credentials

    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if not cred:
        raise click.UsageError("CREDENTIALS_DIRECTORY is not set: this runs from hall.service")
    written = install_from_credentials(Path(cred), dest, prefix=prefix)
    click.echo(f"{len(written)} key files laid out in {dest}")


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True, help="Data keys re-wrapped per transaction.")
@click.pass_context
def keys_rotate(ctx: click.Context, batch: int) -> None:
    """New hall key; re-wrap every data key; destroy the old hall key. Resumable: run it again
    after an interruption."""
    from appliance.context import open_context
    from appliance.rotation import rotate

    app = open_context(_settings(ctx))
    try:
        rep = rotate(app.keyring, app.conn, app.audit, actor=actor(), batch=batch)
    finally:
        app.close()
    click.echo(
        f"hall key is now {rep.new_kek}: {rep.rewrapped} data keys re-wrapped in {rep.seconds:.1f} s"
        f"{' (resumed)' if rep.resumed else ''}; destroyed {', '.join(rep.destroyed) or 'nothing'}"
    )


@click.group()
def audit() -> None:
    """The tamper-evident audit chain."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute the chain and the checkpoint signatures; exit 1 on any break."""
    from appliance import audit as chain
    from appliance.catalog import connect
    from appliance.keys import FileKeySource

    settings = _settings(ctx)
    publics = FileKeySource(settings.keys_dir).device_public_keys()
    conn = connect(settings.catalog_path, settings.store)
    try:
        report = chain.verify(conn, publics, appliance_id=settings.hall_id)
    finally:
        conn.close()
    if as_json:
        _echo_json({**report.__dict__, "breaks": [b.__dict__ for b in report.breaks]})
    elif report.ok:
        click.echo(f"audit chain intact: {report.entries} entries, {report.checkpoints} signed checkpoints")
    else:
        for b in report.breaks:
            click.echo(f"BREAK at entry {b.seq} ({b.kind}): {b.message}")
    if not report.ok:
        sys.exit(1)


@audit.command("log")
@click.option("--limit", default=50, show_default=True)
@click.option("--action", default=None)
@click.option("--target", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_log(ctx: click.Context, limit: int, action: str | None, target: str | None, as_json: bool) -> None:
    """The newest audit entries (sealed details decrypted)."""
    from appliance import audit as chain
    from appliance.context import open_context

    app = open_context(_settings(ctx))
    try:
        items = chain.entries(app.conn, limit=limit, action=action, target=target, descending=True)
        rows = [{**e.__dict__, "sealed": app.audit.unseal(app.conn, e)} for e in items]
    finally:
        app.close()
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        click.echo(
            f"{r['seq']:>7} {when} {r['actor']:20} {r['action']:16} {r['target'] or '-'} {r['detail']}"
        )


COMMANDS = (search, reindex, keys, audit)
