"""The ingest stage's settings: the broker it logs in to, and how it batches and bounds intake.

Plain pydantic models; the shell (``yujing.settings``) composes them with the other stages' and
reads them from ``YUJING_*`` variables and the TOML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1884"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


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


class MqttSettings(BaseModel):
    """The collector's MQTT session (top-level ``mqtt_*`` settings)."""

    mqtt_url: str = DEFAULT_MQTT_URL  # the collector's login: mqtt://yujing-collector:PASSWORD@host:port
    # The simulated fleet of `yujing demo` publishes with this login (yujing-tools: it may write the
    # gateways' up and status topics, which the collector's login may not); unset: mqtt_url.
    tools_mqtt_url: str | None = None
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "yujing-collector"
    mqtt_session_expiry_s: PositiveInt = 7 * 24 * 3600
    mqtt_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 10_000
    mqtt_keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    mqtt_tls_ca: Path | None = None

    @field_validator("mqtt_url", "tools_mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if v is not None:
            MqttEndpoint.parse(v)
        return v

    @property
    def mqtt(self) -> MqttEndpoint:
        return MqttEndpoint.parse(self.mqtt_url)


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
