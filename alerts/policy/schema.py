"""The alerts policy's YAML schema (pydantic): the shape and the simple bounds of each key.

Only :mod:`alerts.policy.loader` reads these models; it turns them into the frozen values of
:mod:`alerts.policy.model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.policy.model import (
    DEFAULT_ANCHOR_DIR,
    FEED_QUEUE,
    OUTBOX_BACKOFF_INITIAL_S,
    OUTBOX_BACKOFF_MAX_S,
    OUTBOX_CONCURRENCY,
    OUTBOX_GIVE_UP_AFTER_S,
    OUTBOX_LEASE_S,
    OUTBOX_TIMEOUT_S,
    TICK_S,
    Duration,
)


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextRaw(_Raw):
    zh: str = ""
    en: str = ""


class UpgradeRaw(_Raw):
    colour: str
    after: Duration | None = None
    points: int | None = Field(default=None, ge=2)


class GradingRuleRaw(_Raw):
    name: str
    match: dict[str, Any] = {}
    colour: str
    persist: UpgradeRaw | None = None
    spread: UpgradeRaw | None = None
    latch: bool | None = None
    setpoint_label: TextRaw | None = None
    action: TextRaw | None = None
    basis: str = ""


class GradingRaw(_Raw):
    defaults: dict[str, str] = {}
    rules: list[GradingRuleRaw] = []


class FlappingRaw(_Raw):
    window: Duration = "10m"
    changes: int = Field(default=6, ge=2)
    quiet: Duration = "10m"


class LifecycleRaw(_Raw):
    latch_colours: list[str] = ["red"]
    auto_close_after: Duration | None = "24h"
    auto_close_require_ack: bool = False
    flapping: FlappingRaw | None = FlappingRaw()
    fold_window: Duration = "10m"


class WebhookRaw(_Raw):
    name: str | None = None
    url: str
    headers: dict[str, str] = {}


class DingTalkRaw(_Raw):
    name: str | None = None
    url: str
    secret: str | None = None
    msgtype: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[str] = []
    at_all: bool = False


class WeComRaw(_Raw):
    name: str | None = None
    url: str
    msgtype: Literal["markdown", "text"] = "markdown"
    mentioned_mobiles: list[str] = []


class SmtpRaw(_Raw):
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False


class EmailRaw(_Raw):
    name: str | None = None
    to: list[str] = Field(min_length=1)
    sender: str
    smtp: SmtpRaw


class MqttRaw(_Raw):
    name: str | None = None
    qos: Literal[0, 1, 2] = 1


class ReceiverRaw(_Raw):
    name: str
    send_resolved: bool = True
    webhook: list[WebhookRaw] = []
    dingtalk: list[DingTalkRaw] = []
    wecom: list[WeComRaw] = []
    email: list[EmailRaw] = []
    mqtt: list[MqttRaw] = []


class RouteRaw(_Raw):
    match: dict[str, Any] = {}
    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None | Literal["never"] = None
    mute_maintenance: bool | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteRaw] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InhibitRaw(_Raw):
    name: str
    source: dict[str, Any] = {}
    target: dict[str, Any] = {}
    equal: list[str] = []
    source_grade_higher: bool = False


class WindowRaw(_Raw):
    start: str = "00:00"
    end: str = "24:00"
    weekdays: list[str] = []
    days_of_month: list[int] = []
    months: list[int] = []


class MaintenanceRaw(_Raw):
    name: str
    match: dict[str, Any] = {}
    max_colour: str = "yellow"
    timezone: str = "Asia/Shanghai"
    times: list[WindowRaw] = Field(min_length=1)


class StepRaw(_Raw):
    after: Duration
    to: str


class EscalationRaw(_Raw):
    centres: dict[str, str] = {}
    chains: dict[str, list[StepRaw]] = {}


class OutboxRaw(_Raw):
    lease: Duration = OUTBOX_LEASE_S
    backoff_initial: Duration = OUTBOX_BACKOFF_INITIAL_S
    backoff_max: Duration = OUTBOX_BACKOFF_MAX_S
    give_up_after: Duration = OUTBOX_GIVE_UP_AFTER_S
    concurrency: int = Field(default=OUTBOX_CONCURRENCY, ge=1, le=256)
    timeout: Duration = OUTBOX_TIMEOUT_S


class AuditRaw(_Raw):
    # absolute: the service and `yujing audit verify` must find the same file from any directory
    anchor_dir: str | None = DEFAULT_ANCHOR_DIR
    anchor_webhook: str | None = None  # an external notary receives each new journal head
    anchor_webhook_timeout: Duration = 5.0

    @field_validator("anchor_dir")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_absolute():
            raise ValueError(f"must be an absolute path, not {v!r} (relative paths depend on the directory "
                             "a command runs from)")
        return v

    @field_validator("anchor_webhook")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class PolicyRaw(_Raw):
    language: Literal["zh", "en"] = "zh"
    tick: Duration = TICK_S
    feed_queue: int = Field(default=FEED_QUEUE, ge=1)
    grading: GradingRaw = GradingRaw()
    lifecycle: LifecycleRaw = LifecycleRaw()
    route: RouteRaw
    receivers: list[ReceiverRaw] = []
    inhibit: list[InhibitRaw] = []
    maintenance: list[MaintenanceRaw] = []
    escalation: EscalationRaw = EscalationRaw()
    outbox: OutboxRaw = OutboxRaw()
    audit: AuditRaw = AuditRaw()

    @field_validator("receivers")
    @classmethod
    def _unique_receivers(cls, v: list[ReceiverRaw]) -> list[ReceiverRaw]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names must be unique: {dupes}")
        return v
