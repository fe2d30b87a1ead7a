"""Drops generated sample scans into a drop folder, one by one, the way a scanner would (each
file is written elsewhere on the same filesystem and renamed in)."""

from __future__ import annotations

import os
import shutil
import time

from tqdm import tqdm

from appliance.settings import Settings


def feed(settings: Settings, count: int, *, interval: float, seed: int, progress: bool = False) -> int:
    from appliance.samples import generate_documents

    inbox = settings.drop_path(settings.drop_folders[0])
    inbox.mkdir(parents=True, exist_ok=True)
    staging = settings.scratch_dir / f"demo-{seed}-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        docs = generate_documents(staging, count, seed=seed)
        for doc in tqdm(docs, unit="doc", disable=not progress, desc="sample scans"):
            src = staging / doc.filename
            dest = inbox / f"{seed}-{doc.filename}"
            os.replace(src, dest)
            if interval:
                time.sleep(interval)
        return len(docs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_demo_account(settings: Settings) -> str | None:
    """A supervisor account ``demo`` for trying the UI with ``hall serve --demo``; returns its
    generated password when it is created now, None when it exists."""
    import secrets

    from appliance.accounts import Accounts
    from appliance.context import open_context

    app = open_context(settings)
    try:
        accounts = Accounts(app.conn, settings.auth, app.audit)
        if accounts.get_user("demo") is not None:
            return None
        password = secrets.token_urlsafe(12)
        accounts.create_user("demo", "演示审核员", "supervisor", password, actor="cli:demo")
        return password
    finally:
        app.close()
