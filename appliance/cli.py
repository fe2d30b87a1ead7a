"""The ``hall`` command. One click group; groups of other packages (sync, provisioning) join it
as they are built."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings
from appliance.errors import HallError
from appliance.settings import Settings


class HallGroup(click.Group):
    """Turns the appliance's own errors into one clear line and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HallError as e:
            click.echo(f"error [{e.code}]: {e}", err=True)
            sys.exit(2)


@click.group(cls=HallGroup)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HALL_DATA_DIR",
    default=Path("hall-data"),
    show_default=True,
    help="The appliance's data directory (env HALL_DATA_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="More log output.")
@click.pass_context
def main(ctx: click.Context, data_dir: Path, verbose: bool) -> None:
    """hall-appliance: scan → clean → OCR → archive record, in the service hall."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = data_dir


@main.command()
@click.option("--hall-id", default=None, help="Hall identifier (letters, digits, . _ -).")
@click.option("--hall-name", default=None, help="Hall name shown in the UI.")
@click.option("--force", is_flag=True, help="Rewrite hall.toml even if it exists.")
@click.option(
    "--admin-password",
    envvar="HALL_ADMIN_PASSWORD",
    default=None,
    help="Password of the first admin account (default: generated and printed once).",
)
@click.pass_context
def init(
    ctx: click.Context, hall_id: str | None, hall_name: str | None, force: bool, admin_password: str | None
) -> None:
    """Create a data dir on embedded defaults: settings, catalog, spool, blob store, quarantine,
    and one drop folder `inbox/`. Safe to run again."""
    from appliance.context import initialise
    from appliance.fsutil import atomic_write

    data_dir: Path = ctx.obj
    settings = Settings.load(data_dir)
    updates = {k: v for k, v in (("hall_id", hall_id), ("hall_name", hall_name)) if v is not None}
    if updates:
        settings = Settings.model_validate({**settings.model_dump(), **updates})
    created = initialise(settings)
    if force or not settings.config_path.exists():
        atomic_write(settings.config_path, settings.to_toml().encode("utf-8"), mode=0o640)
    click.echo(f"data dir ready: {settings.data_dir}")
    for path in created:
        click.echo(f"  created key {path}")
    click.echo(
        f"  keys in {settings.keys_dir} (back them up with the recovery kit; never copy them to the replica)"
    )
    for f in settings.drop_folders:
        click.echo(f"  drop folder for {f.counter}: {settings.drop_path(f)}")
    from appliance.accounts import Accounts
    from appliance.context import open_context

    app = open_context(settings)
    try:
        password = Accounts(app.conn, settings.auth, app.audit).ensure_admin(password=admin_password)
    finally:
        app.close()
    if password is not None:
        shown = "(as given)" if admin_password else password
        click.echo(f"  first admin account: admin / {shown}  <- write it down now; it is not shown again")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--counter", default="cli", show_default=True, help="Counter name recorded with the files.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, one per line.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...], counter: str, as_json: bool) -> None:
    """Process FILES synchronously (they are copied, not moved)."""
    from tqdm import tqdm

    from appliance.context import open_context
    from appliance.ocr import load_engine
    from appliance.pipeline import Outcome, Pipeline, job_outcome

    settings = _settings(ctx)
    app = open_context(settings)
    pipeline = Pipeline(settings, app.queue, app.store, app.spool, load_engine(settings.ocr))
    bar = tqdm(files, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)
    for path in bar:
        taken = app.spool.take(path, counter=counter, root=None, move=False)
        outcome: Outcome
        if taken.state == "received":
            job = app.queue.claim_id(taken.job_id, "cli")
            assert job is not None
            outcome = pipeline.process(job)
            while outcome.status == "retry":
                job = app.queue.claim_id(taken.job_id, "cli")
                assert job is not None
                outcome = pipeline.process(job)
        else:
            outcome = job_outcome(app.queue, taken.job_id)
        result = {
            "file": str(path),
            "status": outcome.status,
            "record_id": outcome.record_id,
            "pages": outcome.pages,
            "reason": outcome.reason,
            "reason_code": outcome.reason_code,
            "job_id": outcome.job_id,
        }
        if as_json:
            _echo_json(result)
        else:
            click.echo(f"{path}: {outcome.status} {outcome.record_id or ''} {outcome.reason or ''}".rstrip())
    app.close()


@main.command()
@click.option(
    "--demo",
    "demo_count",
    type=int,
    default=0,
    help="Drop this many generated sample scans into the first inbox.",
)
@click.option(
    "--demo-interval", type=float, default=2.0, show_default=True, help="Seconds between sample scans."
)
@click.option("--host", default=None, help="Address the UI/API listens on (default: settings api.host).")
@click.option("--port", default=None, type=int, help="Port of the UI/API (default: settings api.port).")
@click.option("--no-api", is_flag=True, help="Only watch and process (no UI/API server).")
@click.pass_context
def serve(
    ctx: click.Context,
    demo_count: int,
    demo_interval: float,
    host: str | None,
    port: int | None,
    no_api: bool,
) -> None:
    """Run the appliance: watch the drop folders, process every scan, serve the staff UI."""
    from appliance.service import Service

    settings = _settings(ctx)
    service = Service(settings)
    if demo_count:
        from appliance.demo import ensure_demo_account, feed

        password = ensure_demo_account(settings)
        if not no_api:
            who = f"demo / {password}" if password else "demo (password shown when it was created)"
            click.echo(
                f"staff UI: http://{host or settings.api.host}:{port or settings.api.port}/  log in as {who}"
            )

        def _feed() -> None:
            time.sleep(1.0)
            feed(settings, demo_count, interval=demo_interval, seed=int(time.time()))

        threading.Thread(target=_feed, name="demo-feed", daemon=True).start()
    if no_api:
        service.run_forever()
    else:
        service.run_with_api(host or settings.api.host, port or settings.api.port)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Queue counts and the latest quarantine reasons."""
    from appliance.context import open_context
    from appliance.status import status as get_status

    app = open_context(_settings(ctx))
    st = get_status(app)
    app.close()
    if as_json:
        _echo_json(st)
        return
    click.echo(
        f"hall {st['hall_id']}: {st['stored']} stored ({st['pages']} pages), {st['pending']} pending, "
        f"{st['duplicate']} duplicate, {st['quarantined']} quarantined"
    )
    rep = st["replication"]
    if rep["enabled"]:
        click.echo(f"  replica {rep['target']}: {rep['state']} ({rep['detail']})")
        for alert in rep["alerts"]:
            click.echo(f"  ALERT [{alert['code']}]: {alert['message']}")
    else:
        click.echo("  replication: off")
    tr = st["transfer"]
    click.echo(
        f"  transfer to {tr['archive']}: {tr['state']}, {tr['pending_packages']} packages and "
        f"{tr['pending_blobs']} blobs waiting, {tr['transferred']} transferred, {tr['rejected']} rejected"
    )
    if tr["problem"]:
        click.echo(f"  ALERT [transfer]: {tr['problem']}")
    for q in st["quarantine"]:
        click.echo(f"  quarantined {q['original_name']} [{q['reason_code']}]: {q['reason']}")
    for item in st["lingering_temporary_files"]:
        click.echo(
            f"  waiting in {item['counter']}: {item['name']} has a temporary name and has not changed for "
            f"{item['age_s'] // 60} min (an unfinished upload? rename it to take it in)"
        )


@main.command()
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, record_id: str, as_json: bool) -> None:
    """A record's metadata, pages and OCR lines."""
    from appliance.cli_common import actor
    from appliance.context import open_context

    app = open_context(_settings(ctx))
    try:
        rec = app.store.get(record_id, actor=actor())
    finally:
        app.close()
    if as_json:
        _echo_json(rec)
        return
    click.echo(f"record {rec['id']}: {rec['original_name']} ({rec['format']}, {rec['page_count']} pages)")
    for page in rec["pages"]:
        click.echo(f"--- page {page['index'] + 1} (deskew {page['clean_report'].get('deskew_deg')}°)")
        for line in page["lines"]:
            click.echo(f"  {line['text']}")


@main.command()
@click.option("--count", default=10, show_default=True, help="Documents to generate.")
@click.option("--interval", default=0.0, show_default=True, help="Seconds between documents.")
@click.option("--seed", default=None, type=int, help="Random seed (default: time-based).")
@click.pass_context
def demo(ctx: click.Context, count: int, interval: float, seed: int | None) -> None:
    """Generate realistic sample scans into the first drop folder."""
    from appliance.demo import feed

    settings = _settings(ctx)
    n = feed(
        settings, count, interval=interval, seed=int(time.time()) if seed is None else seed, progress=True
    )
    click.echo(f"dropped {n} sample documents into {settings.drop_path(settings.drop_folders[0])}")


def _register() -> None:
    from appliance import cli_archive, cli_records, cli_replica, cli_store, cli_transfer, cli_users

    for command in (*cli_store.COMMANDS, *cli_records.COMMANDS, *cli_users.COMMANDS, *cli_replica.COMMANDS):
        main.add_command(command)
    for command in cli_transfer.COMMANDS:
        main.add_command(command)
    for command in cli_archive.COMMANDS:
        main.add_command(command)
    from provisioning import cli as cli_provision

    for command in cli_provision.COMMANDS:
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
