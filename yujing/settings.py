"""Settings: ``YUJING_*`` environment variables over an optional TOML file over defaults.

Nested groups use ``__`` in the environment (``YUJING_INGEST__BATCH_MAX_READINGS=20000``). A bad
value stops start-up with a message naming the setting (:func:`load_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from domain.errors import FixConfiguration
from ingest.settings import GatewayBrokerSettings, IngestSettings, MqttEndpoint, MqttSettings
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from store.settings import DatabaseSettings, RetentionSettings

__all__ = ["ConfigError", "GatewayBrokerSettings", "IngestSettings", "MqttEndpoint", "RetentionSettings", "Settings",
           "load_settings"]


PositiveFloat = Annotated[float, Field(gt=0)]


class ConfigError(FixConfiguration):
    """A setting is invalid; start-up stops. The message names the setting."""


class Settings(BaseSettings, DatabaseSettings, MqttSettings):
    """Top level: the store's ``database_*`` and ingest's ``mqtt_*`` settings (flat), the service's own,
    and each stage's group (``ingest``, ``retention``, ``gateway_broker``)."""

    model_config = SettingsConfigDict(
        env_prefix="YUJING_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

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

    @model_validator(mode="after")
    def _batches_fit_receive_window(self) -> Settings:
        if self.ingest.batch_max_messages > self.mqtt_receive_maximum:
            raise ValueError(
                "ingest.batch_max_messages must not exceed mqtt_receive_maximum, or a batch could "
                "never fill before the broker stops sending"
            )
        return self

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
