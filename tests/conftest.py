"""Shared fixtures. Fixtures are named by state: ``fresh_settings`` is an initialised, empty
data dir; ``ctx`` is an open context on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.context import Context, initialise, open_context
from appliance.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "intake": {"settle_seconds": 0.5, "rescan_seconds": 5.0},
        "pipeline": {"workers": 1, "poll_seconds": 0.1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}  # type: ignore[dict-item]
        else:
            base[key] = value
    settings = Settings.model_validate(base)
    initialise(settings)
    return settings


@pytest.fixture
def fresh_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def ctx(fresh_settings: Settings) -> Iterator[Context]:
    c = open_context(fresh_settings)
    yield c
    c.close()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared test corpus is missing at {CORPUS}")
    return CORPUS
