"""Settings: ``YUJING_*`` environment variables over an optional TOML file over defaults.

Nested groups use ``__`` in the environment (``YUJING_INGEST__BATCH_MAX_READINGS=20000``). A bad
value stops start-up with a message naming the setting (:func:`load_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from domain.errors import FixConfiguration
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "postgresql://yujing@127.0.0.1:5432/yujing"  # the service's role (store/roles.sql)
MIGRATION_ROLE = "yujing_owner"  # owns the schema; `yujing migrate` only
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1884"
MIN_COAL_RETENTION_DAYS = 92  # 煤矿安全规程: keep at least 3 months of monitoring data

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class ConfigError(FixConfiguration):
    """A setting is invalid; start-up stops. The message names the setting."""


class MqttEndpoint(BaseModel):
    """``mqtt://user:password@host:port`` or ``mqtts://…`` (TLS), parsed once."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("no host in the URL")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class IngestSettings(BaseModel):
    batch_max_readings: PositiveInt = 50_000  # one COPY transaction at most
    batch_max_messages: PositiveInt = 5_000  # at most the MQTT receive maximum
    batch_max_wait_s: PositiveFloat = 0.1  # flush a partial batch after this long
    writer_connections: Annotated[int, Field(ge=1, le=16)] = 2
    queue_batches: PositiveInt = 2  # decoded batches waiting for a writer
    max_payload_bytes: PositiveInt = 1_048_576
    dead_letter_payload_bytes: PositiveInt = 4096  # payload kept with a dead letter
    dead_letters_per_gateway_minute: PositiveInt = 60  # rows; beyond it counted in dead_letter_overflow
    max_burst_bytes: PositiveInt = 8 * 1024 * 1024  # payload bytes validated in one columnar pass
    gateway_messages_per_minute: PositiveInt = 6_000  # quota per gateway (ingest/quota.py)
    gateway_bytes_per_minute: PositiveInt = 64 * 1024 * 1024
    gateway_quota_burst_minutes: PositiveFloat = 60.0  # credit a quiet gateway keeps for its backlog
    clock_skew_tolerance_s: PositiveFloat = 300.0
    registry_poll_s: PositiveFloat = 5.0
    liveness_check_s: PositiveFloat = 10.0
    expected_rate: PositiveFloat = 20_000.0  # readings/s this deployment is sized for
    chunk_target_rows: PositiveInt = 20_000_000  # rows per open chunk (its indexes stay in memory)
    shutdown_deadline_s: PositiveFloat = 30.0
    retry_max_s: PositiveFloat = 10.0  # cap of the database retry backoff


class RetentionSettings(BaseModel):
    """Raw readings kept per industry, in days (rollups are kept longer)."""

    coal_mine: PositiveInt = 120
    non_coal_mine: PositiveInt = 120
    hazardous_chemicals: PositiveInt = 120
    cold_storage: PositiveInt = 120
    gas_pipeline: PositiveInt = 120
    dead_letters: PositiveInt = 30

    @field_validator("coal_mine")
    @classmethod
    def _coal_floor(cls, v: int) -> int:
        if v < MIN_COAL_RETENTION_DAYS:
            raise ValueError(f"coal-mine rules require at least {MIN_COAL_RETENTION_DAYS} days")
        return v

    def days(self, industry: str) -> int:
        return int(getattr(self, industry))

    @property
    def longest_days(self) -> int:
        return max(self.coal_mine, self.non_coal_mine, self.hazardous_chemicals, self.cold_storage, self.gas_pipeline)


class GatewayBrokerSettings(BaseModel):
    """The broker's password and ACL files for gateways (deploy/mosquitto/yujing.conf), which the
    service rewrites when gateway credentials change; off unless both files are set. ``pid_file``:
    the broker to send SIGHUP to so it re-reads them."""

    password_file: Path | None = None
    acl_file: Path | None = None
    pid_file: Path | None = None
    poll_s: PositiveFloat = 5.0

    @model_validator(mode="after")
    def _both_files(self) -> GatewayBrokerSettings:
        if (self.password_file is None) != (self.acl_file is None):
            raise ValueError("set both password_file and acl_file, or neither")
        return self

    @property
    def enabled(self) -> bool:
        return self.password_file is not None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUJING_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    database_url: str = DEFAULT_DATABASE_URL
    database_migration_url: str | None = None  # unset: database_url as yujing_owner, no password
    database_timeout_s: PositiveFloat = 10.0
    mqtt_url: str = DEFAULT_MQTT_URL  # the collector's login: mqtt://yujing-collector:PASSWORD@host:port
    # The simulated fleet of `yujing demo` publishes with this login (yujing-tools: it may write the
    # gateways' up and status topics, which the collector's login may not); unset: mqtt_url.
    tools_mqtt_url: str | None = None
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "yujing-collector"
    mqtt_session_expiry_s: PositiveInt = 7 * 24 * 3600
    mqtt_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 10_000
    mqtt_keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    mqtt_tls_ca: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0  # >0: Prometheus /metrics on http_host:port
    http_keyless_ops: Literal["loopback", "everyone", "nobody"] = "loopback"  # /metrics, docs without a key (api/keyless.py)
    detectors_config: Path | None = None  # YAML with a `detectors:` section (detectors/config.py)
    detectors_rebuild_s: Annotated[float, Field(ge=0)] = 900.0  # recent data replayed at start
    detectors_tick_s: PositiveFloat = 1.0  # no-data and gateway-silence checks
    alerts_config: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    ingest: IngestSettings = IngestSettings()
    retention: RetentionSettings = RetentionSettings()
    gateway_broker: GatewayBrokerSettings = GatewayBrokerSettings()

    @field_validator("database_url", "database_migration_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        parts = urlsplit(v or "postgresql://h/d")
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError("must look like postgresql://user@host:port/database")
        return v

    @property
    def migration_url(self) -> str:
        """Where ``yujing migrate`` connects: the schema owner, never the service's role."""
        if self.database_migration_url:
            return self.database_migration_url
        parts = urlsplit(self.database_url)
        return parts._replace(netloc=f"{MIGRATION_ROLE}@{parts.netloc.rsplit('@', 1)[-1]}").geturl()

    @field_validator("mqtt_url", "tools_mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if v is not None:
            MqttEndpoint.parse(v)
        return v

    @model_validator(mode="after")
    def _batches_fit_receive_window(self) -> Settings:
        if self.ingest.batch_max_messages > self.mqtt_receive_maximum:
            raise ValueError(
                "ingest.batch_max_messages must not exceed mqtt_receive_maximum, or a batch could "
                "never fill before the broker stops sending"
            )
        return self

    @property
    def mqtt(self) -> MqttEndpoint:
        return MqttEndpoint.parse(self.mqtt_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("YUJING_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides) -> Settings:
    """Load and validate; raises :class:`ConfigError` naming each bad setting."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"configuration file {config_file} does not exist")
        os.environ["YUJING_CONFIG"] = str(config_file)
    elif (path := os.environ.get("YUJING_CONFIG")) and not Path(path).is_file():
        raise ConfigError(f"YUJING_CONFIG: configuration file {path} does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            env = "YUJING_" + "__".join(loc).upper() if loc else "(settings)"
            lines.append(f"{env}: {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
