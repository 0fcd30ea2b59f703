"""The alerts policy as runtime code sees it: frozen values, built by :mod:`alerts.policy.loader`.

Defaults are named constants; durations are seconds (``*_s``); colours are :class:`Colour`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.colours import Colour
from alerts.matchers import Matchers
from domain.errors import FixConfiguration
from domain.severity import Severity

DEFAULT_POLICY = "default_policy.yaml"
DEFAULT_ANCHOR_DIR = "/var/lib/yujing/audit"  # audit.anchor_dir: the journal head, outside the database

# Defaults, as named constants (the YAML may override each).
GROUP_WAIT_S = 30.0
GROUP_INTERVAL_S = 300.0
REPEAT_INTERVAL_S = 4 * 3600.0
TICK_S = 0.5
OUTBOX_LEASE_S = 60.0
OUTBOX_BACKOFF_INITIAL_S = 1.0
OUTBOX_BACKOFF_MAX_S = 300.0
OUTBOX_GIVE_UP_AFTER_S = 24 * 3600.0
OUTBOX_CONCURRENCY = 16
OUTBOX_TIMEOUT_S = 10.0
FEED_QUEUE = 1000


class PolicyError(FixConfiguration):
    """The alerts policy is invalid; start-up stops. The message names the key."""


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """``"30s"``, ``"5m"``, ``"1.5h"``, ``"2d"``, ``"250ms"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h, 2d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


Duration = float | int | str


# --------------------------------------------------------------------------- runtime objects


@dataclasses.dataclass(frozen=True, slots=True)
class Text:
    """A sentence in both languages."""

    zh: str = ""
    en: str = ""

    def get(self, lang: str) -> str:
        return (self.en or self.zh) if lang == "en" else (self.zh or self.en)


@dataclasses.dataclass(frozen=True, slots=True)
class Upgrade:
    """Raise the grade to ``colour`` when the condition persists or spreads."""

    colour: Colour
    after_s: float = 0.0  # persist: time at this rule's grade before the upgrade
    points: int = 0  # spread: this many open alerts of the same rule in one zone


@dataclasses.dataclass(frozen=True, slots=True)
class GradingRule:
    name: str
    matchers: Matchers  # over industry, kind, rule, severity, location_class, subject_kind, enterprise
    colour: Colour
    persist: Upgrade | None = None
    spread: Upgrade | None = None
    latch: bool | None = None  # None: the lifecycle's latch_colours decide
    setpoint_label: Text = Text()
    action: Text = Text()  # what the standard requires, shown in the message
    basis: str = ""  # where the rule comes from (standard or "yujing judgement")


@dataclasses.dataclass(frozen=True, slots=True)
class Grading:
    defaults: Mapping[Severity, Colour]
    rules: tuple[GradingRule, ...]

    def rule_named(self, name: str | None) -> GradingRule | None:
        if not name:
            return None
        return next((r for r in self.rules if r.name == name), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Flapping:
    """A condition that raises and clears ``changes`` times within ``window_s`` is flapping: the
    alert is held open and not re-notified until the condition has stayed clear for ``quiet_s``."""

    window_s: float
    changes: int
    quiet_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Lifecycle:
    latch_colours: frozenset[Colour]
    auto_close_after_s: float | None
    auto_close_require_ack: bool
    flapping: Flapping | None
    fold_window_s: float = 600.0  # a new sensor joins a resolved incident of its zone only this soon


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookChannel:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    type: str = "webhook"


@dataclasses.dataclass(frozen=True, slots=True)
class DingTalkChannel:
    name: str
    url: str  # https://oapi.dingtalk.com/robot/send?access_token=…
    secret: str | None = None  # 加签 secret (SEC…); None when the robot uses keywords or IPs
    msgtype: str = "markdown"  # markdown | text
    at_mobiles: tuple[str, ...] = ()
    at_all: bool = False
    type: str = "dingtalk"


@dataclasses.dataclass(frozen=True, slots=True)
class WeComChannel:
    name: str
    url: str  # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…
    msgtype: str = "markdown"  # markdown | text
    mentioned_mobiles: tuple[str, ...] = ()
    type: str = "wecom"


@dataclasses.dataclass(frozen=True, slots=True)
class EmailChannel:
    name: str
    to: tuple[str, ...]
    sender: str
    smtp_host: str
    smtp_port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    type: str = "email"


@dataclasses.dataclass(frozen=True, slots=True)
class MqttChannel:
    """Publishes one message per alert on ``yj/v1/{enterprise}/{gateway}/alerts``."""

    name: str = "mqtt"
    qos: int = 1
    type: str = "mqtt"


Channel = WebhookChannel | DingTalkChannel | WeComChannel | EmailChannel | MqttChannel


@dataclasses.dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    channels: tuple[Channel, ...]
    send_resolved: bool = True

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """A node of the routing tree; unset settings are inherited from the parent."""

    id: str  # path, e.g. "0.2.1"
    matchers: Matchers
    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float | None  # None: never repeat
    continue_: bool
    routes: tuple[Route, ...]
    mute_maintenance: bool = True

    def walk(self):
        yield self
        for r in self.routes:
            yield from r.walk()


@dataclasses.dataclass(frozen=True, slots=True)
class InhibitRule:
    """Source alerts (active, open) suppress notifications of target alerts with equal labels."""

    name: str
    source: Matchers
    target: Matchers
    equal: tuple[str, ...]
    source_grade_higher: bool = False  # only a source of strictly higher grade inhibits


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Times of day ``[start_min, end_min)`` in local time on the given days (empty = every)."""

    start_min: int
    end_min: int  # may be ≤ start: the window runs past midnight
    weekdays: frozenset[int] = frozenset()  # 0 = Monday
    days_of_month: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class Maintenance:
    """A recurring maintenance window: matching alerts up to ``max_colour`` are muted."""

    name: str
    matchers: Matchers
    max_colour: Colour
    timezone: ZoneInfo
    windows: tuple[Window, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class EscalationStep:
    after_s: float  # time unacknowledged since the alert reached its grade
    target: str  # enterprise:<contact role> | region:county|city|province | receiver:<name>


@dataclasses.dataclass(frozen=True, slots=True)
class Escalation:
    centres: Mapping[str, str]  # region code → receiver of its monitoring centre
    default_centre: str | None
    chains: Mapping[Colour, tuple[EscalationStep, ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class Outbox:
    lease_s: float = OUTBOX_LEASE_S
    backoff_initial_s: float = OUTBOX_BACKOFF_INITIAL_S
    backoff_max_s: float = OUTBOX_BACKOFF_MAX_S
    give_up_after_s: float = OUTBOX_GIVE_UP_AFTER_S
    concurrency: int = OUTBOX_CONCURRENCY
    timeout_s: float = OUTBOX_TIMEOUT_S


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    language: str
    grading: Grading
    lifecycle: Lifecycle
    route: Route
    receivers: Mapping[str, Receiver]
    inhibit: tuple[InhibitRule, ...]
    maintenance: tuple[Maintenance, ...]
    escalation: Escalation
    outbox: Outbox
    anchor_dir: Path | None
    tick_s: float
    feed_queue: int
    warnings: tuple[str, ...] = ()  # non-fatal findings of validation, logged at start-up
    anchor_webhook: str | None = None
    anchor_webhook_timeout_s: float = 5.0

    def routes(self) -> dict[str, Route]:
        return {r.id: r for r in self.route.walk()}
