"""The one typed settings object: embedded defaults <- ``hall.toml`` in the data dir <- environment.

Environment overrides use ``HALL_<SECTION>__<KEY>=value`` (values parsed as TOML scalars or
arrays, falling back to plain strings), e.g. ``HALL_OCR__THREADS=2`` or
``HALL_INTAKE__SETTLE_SECONDS=0.5``. ``HALL_DATA_DIR`` chooses the data directory itself.
The object is built once (``Settings.load``) and passed down; nothing reads it globally.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from appliance.errors import ConfigError

CONFIG_FILE = "hall.toml"
ENV_PREFIX = "HALL_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DropFolder(_Section):
    """One scanner drop folder (one per counter)."""

    counter: str = Field(description="Counter / scanner name shown to staff, e.g. '1号窗口'.")
    path: Path = Field(description="Folder the scanner writes into. Relative paths are under the data dir.")
    polling: bool = Field(
        default=False,
        description="Poll instead of inotify (for network mounts, where inotify sees nothing).",
    )


class IntakeSettings(_Section):
    settle_seconds: float = Field(
        default=2.0, ge=0.0, description="A file is taken once its size and mtime are unchanged this long."
    )
    closed_settle_seconds: float = Field(
        default=0.3,
        ge=0.0,
        description="A file its writer has closed or renamed into place (inotify close-write / move: local "
        "writes and Samba shares on this box) is taken once unchanged this long. Set it to "
        "settle_seconds for a scanner that reopens its files while writing.",
    )
    rescan_seconds: float = Field(
        default=30.0, gt=0.0, description="Periodic full rescan of every drop folder (events are only hints)."
    )
    poll_seconds: float = Field(default=1.0, gt=0.0, description="Polling-observer interval.")
    ignore_globs: tuple[str, ...] = Field(
        default=("*.tmp", "*.part", "*.partial", "*.crdownload", "~$*", ".*", "Thumbs.db", "desktop.ini"),
        description="Names ignored until renamed (scanner temporary files).",
    )


class DecodeLimits(_Section):
    max_file_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="Largest file accepted.")
    max_pixels: int = Field(
        default=120_000_000, gt=0, description="Largest page, in pixels, before decoding."
    )
    max_pages: int = Field(default=300, gt=0, description="Most pages in one TIFF or PDF.")
    pdf_dpi: int = Field(default=300, ge=72, le=600, description="Render resolution for PDF pages.")
    memory_mb: int = Field(default=3072, ge=256, description="Address-space limit of the decoder process.")
    cpu_seconds: int = Field(default=120, ge=1, description="CPU-time limit of the decoder process.")
    timeout_seconds: float = Field(
        default=180.0, gt=0, description="Wall-clock limit of the decoder process."
    )


class CleanSettings(_Section):
    thumbnail_max_side: int = Field(
        default=320, ge=32, le=2048, description="Longest side of page thumbnails (pixels)."
    )
    max_skew_deg: float = Field(default=15.0, gt=0, le=45, description="Skew search range (+/-).")
    threads: int = Field(default=1, ge=1, description="Threads inside one clean-up call (rayon).")
    cleaned_jpeg_quality: int = Field(
        default=90, ge=50, le=100, description="JPEG quality of the cleaned page copy."
    )


class OcrSettings(_Section):
    engine: Literal["rapidocr", "rapidocr-onnxruntime", "none"] = Field(
        default="rapidocr", description="'rapidocr' (3.x), 'rapidocr-onnxruntime' (1.4, PP-OCRv4), or 'none'."
    )
    det_model: Literal["PP-OCRv4", "PP-OCRv6"] = Field(
        default="PP-OCRv4",
        description="Text detector model (v4 from rapidocr-onnxruntime, v6 from rapidocr).",
    )
    rec_model: Literal["PP-OCRv4", "PP-OCRv6"] = Field(
        default="PP-OCRv6", description="Text recogniser model (v6 is the more accurate one)."
    )
    use_cls: bool = Field(default=True, description="Text-direction classifier (saves upside-down lines).")
    max_side: int = Field(
        default=1280,
        ge=320,
        le=4096,
        description="Longest page side the text detector sees (lines are read at full resolution).",
    )
    threads: int = Field(default=1, ge=1, le=16, description="onnxruntime intra-op threads per worker.")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="Drop text lines scored below this.")


class PipelineSettings(_Section):
    workers: int = Field(default=2, ge=1, le=16, description="Worker processes (each loads OCR once).")
    max_attempts: int = Field(
        default=3, ge=1, description="Tries before a file that keeps failing is quarantined."
    )
    poll_seconds: float = Field(default=0.2, gt=0, description="How often an idle worker checks the queue.")
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of the OCR workers, so intake previews and the staff UI stay responsive.",
    )


class StoreSettings(_Section):
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL", description="SQLite synchronous mode; FULL makes every commit durable on return."
    )
    busy_timeout_ms: int = Field(
        default=5000, ge=100, description="How long a writer waits for the lock (ms)."
    )
    wal_autocheckpoint: int = Field(
        default=1000,
        ge=0,
        description="WAL pages after which SQLite checkpoints automatically. Derived as 0 while "
        "replication.enabled (Litestream must be the only checkpointer, or replicated rows are lost); "
        "setting it above 0 with replication enabled is refused. With replication disabled: 1000, and "
        "set it back to 1000 if a written hall.toml says 0 (otherwise nothing checkpoints).",
    )


class KeySettings(_Section):
    dir: Path = Field(
        default=Path("keys"),
        description="Folder of the key files (hall keys, index key, device key, pinned archive key); "
        "relative paths are under the data dir. Keep it off the replicated storage.",
    )
    checkpoint_every: int = Field(
        default=100, ge=1, description="Sign an audit checkpoint after this many audit entries."
    )


class ArchivalSettings(_Section):
    """How this hall's records are numbered and described (DA/T 22 档号, DA/T 46 metadata)."""

    fonds: str = Field(
        default="0001",
        pattern=r"^[0-9A-Z]{1,8}$",
        description="全宗号 (fonds code: digits, capital letters).",
    )
    category: str = Field(
        default="WS", pattern=r"^[A-Z]{1,4}$", description="门类代码 (category, WS = 文书)."
    )
    department: str = Field(
        default="ZWFW",
        pattern=r"^[A-Z0-9]{1,8}$",
        description="机构(问题)代码 (department code) in the 档号.",
    )
    retention: Literal["Y", "D30", "D10"] = Field(
        default="D30", description="Default 保管期限 offered for new records (Y 永久, D30, D10)."
    )
    classification: Literal["公开", "内部", "秘密"] = Field(
        default="公开", description="Default 密级 offered for new records."
    )


class AuthSettings(_Section):
    """Staff accounts: sessions, login throttling, password policy and hashing."""

    idle_timeout_s: int = Field(
        default=900, ge=60, le=86400, description="A session ends after this many seconds without a request."
    )
    absolute_timeout_s: int = Field(
        default=43200,
        ge=60,
        le=7 * 86400,
        description="A session ends this many seconds after login, however active it is (one working day).",
    )
    max_failures_per_account: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins on one username (within the window) before it locks.",
    )
    max_failures_per_address: int = Field(
        default=20,
        ge=1,
        le=10000,
        description="Failed logins from one client address, across all usernames, before it locks.",
    )
    failure_window_s: int = Field(
        default=900,
        ge=1,
        le=86400,
        description="Failures count towards a lock within this many seconds; after a lock, a failure within "
        "this long of its end lengthens the next lock.",
    )
    lockout_s: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="First lock length in seconds; doubles with each further failure while locked, "
        "at most 3600.",
    )
    min_password_length: int = Field(
        default=10, ge=8, le=128, description="Shortest password accepted (characters)."
    )
    argon2_memory_kib: int = Field(
        default=19456,
        ge=19456,
        le=1048576,
        description="Argon2id memory cost in KiB (at least 19 MiB). Stored hashes are upgraded at the "
        "next login.",
    )
    argon2_time_cost: int = Field(default=2, ge=2, le=20, description="Argon2id passes (at least 2).")

    @model_validator(mode="after")
    def _absolute_covers_idle(self) -> AuthSettings:
        if self.absolute_timeout_s < self.idle_timeout_s:
            raise ValueError(
                f"absolute_timeout_s ({self.absolute_timeout_s}) must be at least idle_timeout_s "
                f"({self.idle_timeout_s})"
            )
        return self


class ApiSettings(_Section):
    """The counter web UI and API (``hall serve``)."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; 0.0.0.0 serves the whole LAN (set tls_cert and tls_key then).",
    )
    port: int = Field(default=8180, ge=1, le=65535, description="TCP port to listen on.")
    tls_cert: Path | None = Field(
        default=None,
        description="TLS certificate chain (PEM); relative paths are under the data dir. Unset: plain HTTP.",
    )
    tls_key: Path | None = Field(
        default=None,
        description="TLS private key (PEM) for tls_cert; relative paths are under the data dir.",
    )
    public_origin: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s?#]+$",
        description="Origin browsers use to reach the box, e.g. 'https://hall-7.local:8180' (no path); "
        "checked against the Origin header. Unset: taken from each request.",
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither")
        return self


class ReplicationSettings(_Section):
    """Continuous replication of the catalog with Litestream (``hall serve`` runs it as a child).

    Only the catalog (``catalog.db``) is replicated; blobs and keys are not. Credentials are never
    stored here: the settings name the environment variables that hold them."""

    enabled: bool = Field(
        default=True,
        description="Replicate the catalog while `hall serve` runs. Forces store.wal_autocheckpoint=0.",
    )
    target: Literal["file", "s3"] = Field(
        default="file",
        description="'file': a folder (file_path); 's3': an S3-compatible bucket (s3_* settings).",
    )
    file_path: Path = Field(
        default=Path("replica"),
        description="Folder of the file replica; relative paths are under the data dir. The default only "
        "guards against a damaged catalog file: a real box points it at another disk, or uses s3.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="S3 endpoint URL, e.g. 'https://s3.archive.example:9000' (required for target 's3').",
    )
    s3_bucket: str | None = Field(
        default=None, min_length=1, description="S3 bucket (required for target 's3')."
    )
    s3_path: str | None = Field(
        default=None,
        min_length=1,
        description="Key prefix inside the bucket. Unset: the hall id, so halls can share a bucket.",
    )
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region name.")
    s3_access_key_env: str = Field(
        default="LITESTREAM_ACCESS_KEY_ID",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the S3 access key id (never the key).",
    )
    s3_secret_key_env: str = Field(
        default="LITESTREAM_SECRET_ACCESS_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the S3 secret key (never the secret).",
    )
    sync_interval_s: float = Field(
        default=1.0,
        ge=0.1,
        le=3600,
        description="How often Litestream ships new WAL frames (seconds): the most a failure can lose.",
    )
    health_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Timeout of one health probe (`litestream sync -wait`) and of the final sync at stop.",
    )
    restart_backoff_max_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="Longest wait before restarting a Litestream that died (doubles from 1 s).",
    )
    wal_alert_mb: int = Field(
        default=256,
        ge=1,
        description="Alert when catalog.db-wal grows past this (Litestream is not checkpointing: link "
        "down for long, or Litestream stuck).",
    )
    meta_alert_mb: int = Field(
        default=512,
        ge=1,
        description="Alert when Litestream's meta folder (.catalog.db-litestream, ~1 MB/min while the "
        "link is down) grows past this.",
    )
    min_free_disk_mb: int = Field(
        default=2048,
        ge=0,
        description="Alert when free disk falls below this, or below 1.5 x the catalog size (Litestream "
        "stages snapshots locally), whichever is larger.",
    )

    @model_validator(mode="after")
    def _s3_complete(self) -> ReplicationSettings:
        if self.enabled and self.target == "s3" and (self.s3_endpoint is None or self.s3_bucket is None):
            raise ValueError("target 's3' needs s3_endpoint and s3_bucket")
        return self


_WINDOW = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"


class TransferSettings(_Section):
    """Transfer (移交) of confirmed records to the central archive (``sync/transfer.py``,
    ``docs/transfer.md``). Credentials are never stored here: the settings name the environment
    variables that hold them."""

    enabled: bool = Field(
        default=True, description="Ship blobs and packages to the archive while `hall serve` runs."
    )
    archive_url: str = Field(
        default="local",
        pattern=r"^(local|https?://[^\s?#]+)$",
        description="'local': the archive under DATA_DIR/local-archive, served in-process on "
        "127.0.0.1:local_port (embedded defaults); else the receiver's base URL, e.g. "
        "'https://archive.example:8443' (set by `hall enroll`).",
    )
    local_port: int = Field(
        default=8190,
        ge=1,
        le=65535,
        description="Port of the in-process local archive (archive_url 'local').",
    )
    object_store: Literal["local", "s3"] = Field(
        default="local",
        description="Where encrypted blobs go: 'local' (the folder DATA_DIR/local-archive/objects) or 's3' "
        "(an S3-compatible bucket, s3_* settings).",
    )
    s3_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="S3 endpoint URL of the archive's object store (required for object_store 's3').",
    )
    s3_bucket: str | None = Field(
        default=None, min_length=1, description="S3 bucket (required for object_store 's3')."
    )
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket ('' = the bucket root).")
    s3_region: str = Field(default="us-east-1", min_length=1, description="S3 region name.")
    s3_access_key_env: str = Field(
        default="ARCHIVE_S3_ACCESS_KEY_ID",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the S3 access key id (never the key).",
    )
    s3_secret_key_env: str = Field(
        default="ARCHIVE_S3_SECRET_ACCESS_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the S3 secret key (never the secret).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle (PEM) that verifies the archive's and the object store's TLS certificates; "
        "relative paths are under the data dir. Unset: the system CAs.",
    )
    bandwidth_kbit: int = Field(
        default=0, ge=0, description="Upload cap in kbit/s for blobs and packages together (0 = unlimited)."
    )
    windows: tuple[str, ...] = Field(
        default=(),
        description="Local-time windows when sending is allowed, 'HH:MM-HH:MM' (may wrap midnight, e.g. "
        "'22:00-06:00'). Empty: always.",
    )
    retry_base_s: float = Field(
        default=2.0, gt=0, le=3600, description="First retry delay of a failed item (doubles, full jitter)."
    )
    retry_max_s: float = Field(default=900.0, gt=0, le=86400, description="Longest retry delay of an item.")
    probe_interval_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="While the link is down only GET /api/v1/health is tried, first after this many "
        "seconds, then with backoff up to probe_max_s.",
    )
    probe_max_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest wait between two health probes while the link is down: how late, at most, "
        "the box notices that the link is back (a probe is one small GET).",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Timeout of one request to the archive or object store."
    )
    concurrency: int = Field(default=4, ge=1, le=32, description="Blob uploads in parallel.")

    @field_validator("windows")
    @classmethod
    def _window_format(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for w in v:
            if not re.fullmatch(_WINDOW, w.strip()):
                raise ValueError(f"window {w!r} is not 'HH:MM-HH:MM' (24-hour local time)")
        return tuple(w.strip() for w in v)

    @model_validator(mode="after")
    def _s3_complete(self) -> TransferSettings:
        if self.object_store == "s3" and (self.s3_endpoint is None or self.s3_bucket is None):
            raise ValueError("object_store 's3' needs s3_endpoint and s3_bucket")
        if self.retry_max_s < self.retry_base_s:
            raise ValueError("retry_max_s must be at least retry_base_s")
        if self.probe_max_s < self.probe_interval_s:
            raise ValueError("probe_max_s must be at least probe_interval_s")
        return self


class Settings(_Section):
    data_dir: Path
    hall_id: str = Field(default="hall-dev", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    hall_name: str = Field(default="开发用政务服务大厅")
    drop_folders: tuple[DropFolder, ...] = Field(default=(DropFolder(counter="1号窗口", path=Path("inbox")),))
    intake: IntakeSettings = IntakeSettings()
    decode: DecodeLimits = DecodeLimits()
    clean: CleanSettings = CleanSettings()
    ocr: OcrSettings = OcrSettings()
    pipeline: PipelineSettings = PipelineSettings()
    store: StoreSettings = StoreSettings()
    keys: KeySettings = KeySettings()
    archival: ArchivalSettings = ArchivalSettings()
    auth: AuthSettings = AuthSettings()
    api: ApiSettings = ApiSettings()
    replication: ReplicationSettings = ReplicationSettings()
    transfer: TransferSettings = TransferSettings()

    @model_validator(mode="before")
    @classmethod
    def _litestream_owns_checkpoints(cls, data: Any) -> Any:
        """Replication enabled => ``store.wal_autocheckpoint`` is 0 (derived when not given;
        a non-zero value given explicitly is refused rather than silently changed)."""
        if not isinstance(data, Mapping):
            return data
        replication = data.get("replication", {})
        if isinstance(replication, ReplicationSettings):
            enabled = replication.enabled
        elif isinstance(replication, Mapping):
            enabled = bool(replication.get("enabled", True))
        else:
            return data  # let field validation report it
        if not enabled:
            return data
        store = data.get("store", {})
        if isinstance(store, StoreSettings):
            store = store.model_dump(include=store.model_fields_set)
        if not isinstance(store, Mapping):
            return data
        given = store.get("wal_autocheckpoint")
        if given is not None and given != 0:
            raise ValueError(
                f"store.wal_autocheckpoint={given} while replication is enabled: Litestream must be the "
                "only checkpointer (rows are lost otherwise); set it to 0 (or leave it out), or disable "
                "replication"
            )
        return {**data, "store": {**store, "wal_autocheckpoint": 0}}

    @field_validator("drop_folders")
    @classmethod
    def _unique_counters(cls, v: tuple[DropFolder, ...]) -> tuple[DropFolder, ...]:
        names = [d.counter for d in v]
        if len(set(names)) != len(names):
            raise ValueError(f"counter names must be unique, got {names}")
        if not v:
            raise ValueError("at least one drop folder is required")
        return v

    # --- layout of the data directory --------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """Runtime files: the generated Litestream config and its control socket."""
        return self.data_dir / "run"

    @property
    def replica_file_path(self) -> Path:
        """``replication.file_path`` resolved against the data dir."""
        p = self.replication.file_path
        return p if p.is_absolute() else self.data_dir / p

    @property
    def keys_dir(self) -> Path:
        p = self.keys.dir
        return p if p.is_absolute() else self.data_dir / p

    @property
    def local_archive_dir(self) -> Path:
        """The embedded-default central archive (its key pair and store) on this machine."""
        return self.data_dir / "local-archive"

    @property
    def local_archive_url(self) -> str:
        """Where the in-process local archive listens (archive_url 'local')."""
        return f"http://127.0.0.1:{self.transfer.local_port}"

    @property
    def archive_base_url(self) -> str:
        """The receiver's base URL: the local archive on embedded defaults, else archive_url."""
        url = self.transfer.archive_url
        return self.local_archive_url if url == "local" else url.rstrip("/")

    @property
    def transfer_ca_path(self) -> Path | None:
        """``transfer.ca_file`` resolved against the data dir (None when unset)."""
        return self._under_data_dir(self.transfer.ca_file)

    @property
    def tls_cert_path(self) -> Path | None:
        """``api.tls_cert`` resolved against the data dir (None when unset)."""
        return self._under_data_dir(self.api.tls_cert)

    @property
    def tls_key_path(self) -> Path | None:
        """``api.tls_key`` resolved against the data dir (None when unset)."""
        return self._under_data_dir(self.api.tls_key)

    def _under_data_dir(self, p: Path | None) -> Path | None:
        if p is None:
            return None
        return p if p.is_absolute() else self.data_dir / p

    def drop_path(self, folder: DropFolder) -> Path:
        p = folder.path
        return p if p.is_absolute() else self.data_dir / p

    # --- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, data_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then ``DATA_DIR/hall.toml`` if present, then ``HALL_*`` environment overrides."""
        env = os.environ if environ is None else environ
        data_dir = data_dir.expanduser().resolve()
        raw: dict[str, Any] = {}
        cfg = data_dir / CONFIG_FILE
        if cfg.exists():
            try:
                raw = tomllib.loads(cfg.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"cannot read settings file {cfg}: {e}") from e
        _apply_env(raw, env)
        raw["data_dir"] = data_dir
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(f"invalid settings (file {cfg}, or HALL_* environment):\n{e}") from e

    def to_toml(self) -> str:
        """The settings as a commented TOML file (what ``hall init`` writes)."""
        from appliance.settings_toml import dump_settings

        return dump_settings(self)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == "HALL_DATA_DIR" or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = raw
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name} overrides a value that is not a section")
            node = child
        node[path[-1]] = _parse_env_value(value)


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
