"""Writes a Settings object as a commented TOML file (field descriptions become comments)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from appliance.settings import Settings


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, Path):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)


def _section(model: BaseModel) -> list[str]:
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        if field.description:
            lines.append(f"# {field.description}")
        value = getattr(model, name)
        if value is None:  # TOML has no null: leave the key out, commented
            lines.append(f"# {name} = (not set)")
            continue
        lines.append(f"{name} = {_value(value)}")
    return lines


def dump_settings(settings: Settings) -> str:
    out = ["# hall-appliance settings. Environment overrides: HALL_<SECTION>__<KEY>=value.", ""]
    out.append(f"hall_id = {_value(settings.hall_id)}")
    out.append(f"hall_name = {_value(settings.hall_name)}")
    out.append("")
    for folder in settings.drop_folders:
        out.append("[[drop_folders]]")
        out.extend(_section(folder))
        out.append("")
    for name in (
        "intake",
        "decode",
        "clean",
        "ocr",
        "pipeline",
        "store",
        "keys",
        "archival",
        "auth",
        "api",
        "replication",
        "transfer",
    ):
        out.append(f"[{name}]")
        out.extend(_section(getattr(settings, name)))
        out.append("")
    return "\n".join(out)
