"""Settings of the central archive's receiver: defaults <- ``ARCHIVE_DIR/archive.toml`` <- environment.

Environment overrides use ``HALL_ARCHIVE__<KEY>=value`` (values parsed as TOML scalars, falling
back to plain strings), e.g. ``HALL_ARCHIVE__PORT=8191`` or
``HALL_ARCHIVE__CATALOG_DSN="host=db.archive dbname=archive user=receiver"``. Secrets never go
into the file: the S3 settings name the environment variables holding the keys, and a PostgreSQL
password comes from libpq's own ``PGPASSWORD`` / ``~/.pgpass``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from appliance.errors import ConfigError

CONFIG_FILE = "archive.toml"
ENV_PREFIX = "HALL_ARCHIVE__"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    archive_dir: Path
    archive_id: str = Field(
        default="archive",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name of this archive, written into every receipt.",
    )
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the receiver listens on (put a TLS-terminating proxy in front of it).",
    )
    port: int = Field(default=8190, ge=0, le=65535, description="TCP port of the receiver.")
    catalog: Literal["sqlite", "postgresql"] = Field(
        default="sqlite",
        description="'sqlite': archive.db in the archive dir; 'postgresql': the server named by catalog_dsn.",
    )
    catalog_dsn: str | None = Field(
        default=None,
        min_length=1,
        description="libpq connection string for catalog 'postgresql', without a password "
        "(use PGPASSWORD or ~/.pgpass).",
    )
    objects: Literal["folder", "s3"] = Field(
        default="folder",
        description="Where the encrypted blobs are: 'folder' (objects_dir) or 's3' (s3_* settings).",
    )
    objects_dir: Path = Field(
        default=Path("objects"), description="Object folder; relative paths are under the archive dir."
    )
    s3_endpoint: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$", description="S3 endpoint URL (objects 's3')."
    )
    s3_bucket: str | None = Field(default=None, min_length=1, description="S3 bucket (objects 's3').")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region name.")
    s3_access_key_env: str = Field(
        default="HALL_ARCHIVE_S3_ACCESS_KEY",
        pattern=_ENV_NAME,
        description="Name of the environment variable holding the S3 access key id (never the key).",
    )
    s3_secret_key_env: str = Field(
        default="HALL_ARCHIVE_S3_SECRET_KEY",
        pattern=_ENV_NAME,
        description="Name of the environment variable holding the S3 secret key (never the secret).",
    )
    clock_window_s: int = Field(
        default=300, ge=1, le=3600, description="Accepted clock difference of a signed request (+/- s)."
    )
    nonce_ttl_s: int = Field(
        default=600, ge=2, description="How long request nonces are remembered (at least 2 x clock_window_s)."
    )
    token_ttl_s: int = Field(
        default=86400, ge=60, description="Default lifetime of an enrollment token (seconds)."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body accepted (larger: 413)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ArchiveSettings:
        if self.catalog == "postgresql" and not self.catalog_dsn:
            raise ValueError("catalog 'postgresql' needs catalog_dsn")
        if self.objects == "s3" and (self.s3_endpoint is None or self.s3_bucket is None):
            raise ValueError("objects 's3' needs s3_endpoint and s3_bucket")
        if self.nonce_ttl_s < 2 * self.clock_window_s:
            raise ValueError(
                f"nonce_ttl_s ({self.nonce_ttl_s}) must be at least 2 x clock_window_s "
                f"({self.clock_window_s}), or a replay near the window's edge goes unnoticed"
            )
        return self

    # --- layout ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.archive_dir / CONFIG_FILE

    @property
    def keys_dir(self) -> Path:
        return self.archive_dir / "keys"

    @property
    def sqlite_path(self) -> Path:
        return self.archive_dir / "archive.db"

    @property
    def objects_path(self) -> Path:
        p = self.objects_dir
        return p if p.is_absolute() else self.archive_dir / p

    # --- loading --------------------------------------------------------------------------
    @classmethod
    def load(
        cls, archive_dir: Path, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ArchiveSettings:
        """Defaults, then ``archive.toml`` if present, then ``HALL_ARCHIVE__*``, then ``overrides``."""
        env = os.environ if environ is None else environ
        archive_dir = archive_dir.expanduser().resolve()
        cfg = archive_dir / CONFIG_FILE
        raw: dict[str, Any] = {}
        if cfg.exists():
            try:
                raw = tomllib.loads(cfg.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"cannot read archive settings {cfg}: {e}") from e
        for name, value in env.items():
            if name.startswith(ENV_PREFIX):
                raw[name[len(ENV_PREFIX) :].lower()] = _parse_env_value(value)
        raw.update({k: v for k, v in overrides.items() if v is not None})
        raw["archive_dir"] = archive_dir
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(
                f"invalid archive settings (file {cfg}, or {ENV_PREFIX}* environment):\n{e}"
            ) from e

    def to_toml(self) -> str:
        """The settings as a commented TOML file (``archive_dir`` is where the file lives, not in it)."""
        out = [f"# hall central archive settings. Environment overrides: {ENV_PREFIX}<KEY>=value.", ""]
        for name, field in type(self).model_fields.items():
            if name == "archive_dir":
                continue
            if field.description:
                out.append(f"# {field.description}")
            value = getattr(self, name)
            if value is None:
                out.append(f"# {name} = (not set)")
            elif isinstance(value, bool):
                out.append(f"{name} = {'true' if value else 'false'}")
            elif isinstance(value, int):
                out.append(f"{name} = {value}")
            else:
                out.append(f"{name} = {json.dumps(str(value), ensure_ascii=False)}")
        return "\n".join(out) + "\n"


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
