"""``hall provision``: the technician's commands (the recovery kit first; init, replace and wipe
build on it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from appliance.catalog import transaction
from appliance.cli_common import actor
from appliance.cli_common import echo_json as _echo_json
from appliance.cli_common import settings_of as _settings


@click.group()
def provision() -> None:
    """Provision, recover, replace or retire a box (技术员)."""


def _ask_answers() -> dict[str, object]:
    """The technician's answers at the prompt (Chinese first, English after)."""
    hall_id = click.prompt("大厅编号 hall id (e.g. hall-3301-01)")
    hall_name = click.prompt("大厅名称 hall name")
    fonds = click.prompt("全宗号 fonds code", default="0001")
    department = click.prompt("机构代码 department code", default="ZWFW")
    counters = click.prompt("窗口（逗号分隔） counters, comma-separated", default="1号窗口")
    drop_root = click.prompt("投放目录根 drop folder root", default="/srv/hall-drop")
    url = click.prompt("档案馆地址 archive URL ('local' for none)", default="local")
    answers: dict[str, object] = {
        "hall_id": hall_id,
        "hall_name": hall_name,
        "archival": {"fonds": fonds, "department": department},
        "drop_folders": [
            {"counter": c.strip(), "path": f"{drop_root.rstrip('/')}/c{i}"}
            for i, c in enumerate(counters.split(","), 1)
            if c.strip()
        ],
        "transfer": {"archive_url": url},
    }
    prov: dict[str, object] = {}
    if url != "local":
        prov["enrollment_token"] = click.prompt("一次性注册令牌 enrollment token", hide_input=True)
    names = click.prompt("界面证书名称（逗号分隔，可空） UI certificate names/addresses", default="")
    if names.strip():
        prov["tls_names"] = [n.strip() for n in names.split(",") if n.strip()]
    answers["provision"] = prov
    return answers


@provision.command("init")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Answer file (a partial hall.toml plus [provision]); without it, the answers are asked for.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def provision_init(ctx: click.Context, answers: Path | None, dry_run: bool, as_json: bool) -> None:
    """Make this box a hall's appliance: settings, keys, catalog, TLS certificate, enrollment with
    the archive. Safe to run again: it says what it would change and does only that."""
    from provisioning.provision_init import apply, plan, read_answers

    data_dir = Path(ctx.find_root().obj)
    p = plan(data_dir, read_answers(answers) if answers else _ask_answers())
    if dry_run or not p.steps:
        if as_json:
            _echo_json({"steps": p.steps, "dry_run": dry_run})
        else:
            click.echo("nothing to change" if not p.steps else "would:")
            for step in p.steps:
                click.echo(f"  {step}")
        return
    done = apply(p, actor=actor())
    if as_json:
        _echo_json(done)
        return
    for step in p.steps:
        click.echo(f"done: {step}")
    if done.get("tls_fingerprint"):
        click.echo(
            f"staff UI certificate SHA-256: {done['tls_fingerprint']} (write it down for the browsers)"
        )
    click.echo("next: hall provision kit (recovery sheets), then hall doctor before leaving the hall")


@provision.command("kit")
@click.option("--k", "k", default=2, show_default=True, help="Sheets needed to restore the keys.")
@click.option("--n", "n", default=3, show_default=True, help="Sheets printed (one per supervisor).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the sheets (one PDF each). Not inside the data dir: print them, then delete.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def kit(ctx: click.Context, k: int, n: int, out: Path, as_json: bool) -> None:
    """Print the recovery kit: the hall keys and the index key split k-of-n onto sheets with QR
    codes. Any k sheets restore the keys; fewer reveal nothing. Audited."""
    from appliance.context import open_context
    from appliance.keys import FileKeySource
    from provisioning.kit_sheets import write_sheets
    from provisioning.recovery_kit import KitError, make_kit

    settings = _settings(ctx)
    out = out.expanduser().absolute()
    if out.is_relative_to(settings.data_dir.absolute()):
        raise KitError(f"{out} is inside the data dir: write the sheets elsewhere (a folder you will delete)")
    app = open_context(settings)
    try:
        made = make_kit(FileKeySource(settings.keys_dir), settings.hall_id, k, n)
        files = write_sheets(made, settings.hall_name, out)
        with transaction(app.conn):
            detail = {"kit": made.kit_id, "k": k, "n": n, "keys": made.key_names}
            app.audit.record(app.conn, actor(), "keys.recovery_kit", settings.hall_id, detail)
    finally:
        app.close()
    if as_json:
        _echo_json(
            {"kit_id": made.kit_id, "k": k, "n": n, "keys": made.key_names, "files": [str(f) for f in files]}
        )
        return
    click.echo(f"recovery kit {made.kit_id} for {settings.hall_id}: {n} sheets, any {k} restore the keys")
    for f in files:
        click.echo(f"  {f}")
    click.echo(
        "Print each sheet, hand each to a different supervisor for the safe, then delete the files "
        "(shred -u). A new kit is needed after `hall keys rotate`."
    )


def _read_shares(shares_file: TextIO | None) -> list[str]:
    """Share texts from a file (one per line) or asked for one by one until the kit's k."""
    from provisioning.recovery_kit import KitError, SheetShare

    if shares_file is not None:
        return [line for line in shares_file.read().splitlines() if line.strip()]
    texts: list[str] = []
    need = None
    while need is None or len(texts) < need:
        text = click.prompt(f"扫描或输入第 {len(texts) + 1} 份分片 / scan or type share {len(texts) + 1}")
        try:
            need = SheetShare.decode(text).k
        except KitError as e:
            click.echo(f"  {e}", err=True)
            continue
        texts.append(text)
    return texts


@provision.command("replace")
@click.option("--answers", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The dead box's answer file, with a new enrollment token.")  # fmt: skip
@click.option(
    "--shares", "shares_file", type=click.File("r"), help="k shares, one per line (default: asked)."
)
@click.option("--timeout", default=300.0, show_default=True, help="Timeout of the replica restore (seconds).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def provision_replace(
    ctx: click.Context, answers: Path, shares_file: TextIO | None, timeout: float, as_json: bool
) -> None:
    """Replace a dead box: keys from the recovery sheets, a new device key enrolled (the old one is
    revoked at the archive), the catalog from the replica, the pages from the archive's object store,
    numbering resumed after the archive's last 件号. Exit 1 when anything could not be recovered."""
    from provisioning.provision_init import read_answers
    from provisioning.replace import replace

    out = replace(Path(ctx.find_root().obj), read_answers(answers), _read_shares(shares_file), actor=actor(),
                  timeout_s=timeout)  # fmt: skip
    if as_json:
        _echo_json(out)
    else:
        click.echo(
            f"replaced the box of {out['hall_id']}: {out['records_opened']} of {out['records']} records open"
        )
        click.echo(f"  revoked at the archive: {', '.join(out['revoked_device_keys']) or 'none'}")
        for prefix, (local, archive) in out["numbering_moved"].items():
            click.echo(f"  档号 {prefix}: continues after {archive} (the replica had {local})")
        for r in out["unreadable"]:
            click.echo(f"  UNREADABLE record {r['record_id']}: {r['problem']}")
        for j in out["lost_jobs"]:
            click.echo(f"  LOST scan {j['name']!r} at counter {j['counter']}: scan it again")
    if not out["complete"]:
        sys.exit(1)


@provision.command("wipe")
@click.option("--confirm", help="The hall id, typed out (asked for when not given).")
@click.option("--offline", is_flag=True, help="Wipe even when the archive cannot revoke the key now.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def provision_wipe(ctx: click.Context, confirm: str | None, offline: bool, as_json: bool) -> None:
    """Retire this box for good: revoke its key at the archive, destroy every key (crypto-shred),
    overwrite plaintext files, erase the data dir. Irreversible."""
    from provisioning.wipe import wipe

    settings = _settings(ctx)
    if confirm is None:
        click.echo(
            f"这将永久清除本设备的全部数据和密钥 / this erases every key and record on {settings.data_dir}"
        )
        confirm = click.prompt(f"输入大厅编号确认 type the hall id ({settings.hall_id}) to confirm")
    report = wipe(settings, confirm=confirm, offline=offline)
    if as_json:
        _echo_json(report)
        return
    click.echo(f"wiped {settings.data_dir}: {report['key_files_destroyed']} key files destroyed, "
               f"{report['plaintext_files_overwritten']} plaintext files overwritten")  # fmt: skip
    if report.get("archive_must_revoke"):
        click.echo(
            f"  the archive did not hear of it: ask its staff to run `{report['archive_must_revoke']}`"
        )
    else:
        click.echo(f"  device key revoked at the archive: {report.get('revoked_at_archive')}")


@provision.command("restore-keys")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the keys into (laid out like keys/; e.g. the new box's DATA_DIR/keys).",
)
@click.option(
    "--shares",
    "shares_file",
    type=click.File("r"),
    help="A file with one share per line (QR scanner output). Default: asked for one by one.",
)
@click.option("--hall-id", help="Refuse sheets of another hall.")
def restore_keys(out: Path, shares_file: TextIO | None, hall_id: str | None) -> None:
    """Put the hall keys back together from k sheets of the recovery kit."""
    from provisioning.recovery_kit import combine_shares, write_keys

    texts = _read_shares(shares_file)
    entries = combine_shares(texts, hall_id=hall_id)
    written = write_keys(entries, out.expanduser().absolute())
    click.echo(f"restored {len(entries)} keys into {out} ({len(written)} files written)")


@click.command()
@click.option("--only", multiple=True, help="Run only this check (repeatable).")
@click.option("--skip", multiple=True, help="Skip this check (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def doctor(ctx: click.Context, only: tuple[str, ...], skip: tuple[str, ...], as_json: bool) -> None:
    """Self-test: keys, disk, drop folders, image module, OCR, replica, archive. Each check says
    what it measured and, when it fails, what to do. Exit 1 when any check fails."""
    from provisioning.doctor import NAMES, run

    unknown = sorted((set(only) | set(skip)) - set(NAMES))
    if unknown:
        raise click.BadParameter(f"unknown check(s) {unknown}; the checks are {list(NAMES)}")
    outcomes = run(_settings(ctx), only, skip)
    if as_json:
        _echo_json([o.to_dict() for o in outcomes])
    else:
        for o in outcomes:
            verdict = "通过 PASS" if o.passed else "失败 FAIL"
            click.echo(f"{verdict}  {o.title} ({o.name}, {o.seconds:.1f} s): {o.measured}")
            if o.fix:
                click.echo(f"           处理 what to do: {o.fix}")
        failed = [o.name for o in outcomes if not o.passed]
        click.echo(
            f"{len(outcomes) - len(failed)} of {len(outcomes)} checks passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    if any(not o.passed for o in outcomes):
        sys.exit(1)


COMMANDS = (provision, doctor)
