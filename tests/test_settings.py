from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.errors import ConfigError
from appliance.settings import Settings


def test_environment_overrides_file_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "hall.toml").write_text('hall_id = "hall-42"\n[ocr]\nthreads = 3\n', encoding="utf-8")
    s = Settings.load(tmp_path, {"HALL_OCR__THREADS": "2", "HALL_INTAKE__SETTLE_SECONDS": "0.25"})
    assert s.hall_id == "hall-42"
    assert s.ocr.threads == 2
    assert s.intake.settle_seconds == 0.25
    assert s.pipeline.workers == 2  # default untouched


def test_invalid_values_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threads"):
        Settings.load(tmp_path, {"HALL_OCR__THREADS": "0"})
    (tmp_path / "hall.toml").write_text("[ocr\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hall\.toml"):
        Settings.load(tmp_path, {})


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "hall.toml").write_text("[ocr]\nthreds = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="threds"):
        Settings.load(tmp_path, {})


def test_written_toml_round_trips(tmp_path: Path) -> None:
    s = Settings.load(tmp_path, {"HALL_OCR__MAX_SIDE": "1280", "HALL_HALL_NAME": "x"})
    again = Settings.model_validate({**tomllib.loads(s.to_toml()), "data_dir": tmp_path})
    assert again == s


def _undocumented(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _undocumented(ann, f"{prefix}{name}.")
        elif not field.description and name not in ("data_dir", "hall_id", "hall_name", "drop_folders"):
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    assert _undocumented(Settings, "") == []
