"""The alerts policy: grading, lifecycle, routing, receivers, inhibition, maintenance, escalation.

One YAML file (``--alerts-config`` / ``YUJING_ALERTS_CONFIG``; the packaged
``alerts/default_policy.yaml`` when none is given) is validated when loaded and turned into frozen
runtime objects by :func:`from_config`; runtime code never sees raw YAML. A bad file raises
:class:`PolicyError` (a :class:`~domain.errors.FixConfiguration`) naming the key. String values may
say ``${NAME}`` to take a secret from the environment (a missing variable is an error).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alerts.colours import Colour
from alerts.matchers import LABELS, Matchers, MatcherError
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


# --------------------------------------------------------------------------- raw schema

class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TextRaw(_Raw):
    zh: str = ""
    en: str = ""


class _UpgradeRaw(_Raw):
    colour: str
    after: Duration | None = None
    points: int | None = Field(default=None, ge=2)


class _GradingRuleRaw(_Raw):
    name: str
    match: dict[str, Any] = {}
    colour: str
    persist: _UpgradeRaw | None = None
    spread: _UpgradeRaw | None = None
    latch: bool | None = None
    setpoint_label: _TextRaw | None = None
    action: _TextRaw | None = None
    basis: str = ""


class _GradingRaw(_Raw):
    defaults: dict[str, str] = {}
    rules: list[_GradingRuleRaw] = []


class _FlappingRaw(_Raw):
    window: Duration = "10m"
    changes: int = Field(default=6, ge=2)
    quiet: Duration = "10m"


class _LifecycleRaw(_Raw):
    latch_colours: list[str] = ["red"]
    auto_close_after: Duration | None = "24h"
    auto_close_require_ack: bool = False
    flapping: _FlappingRaw | None = _FlappingRaw()
    fold_window: Duration = "10m"


class _WebhookRaw(_Raw):
    name: str | None = None
    url: str
    headers: dict[str, str] = {}


class _DingTalkRaw(_Raw):
    name: str | None = None
    url: str
    secret: str | None = None
    msgtype: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[str] = []
    at_all: bool = False


class _WeComRaw(_Raw):
    name: str | None = None
    url: str
    msgtype: Literal["markdown", "text"] = "markdown"
    mentioned_mobiles: list[str] = []


class _SmtpRaw(_Raw):
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False


class _EmailRaw(_Raw):
    name: str | None = None
    to: list[str] = Field(min_length=1)
    sender: str
    smtp: _SmtpRaw


class _MqttRaw(_Raw):
    name: str | None = None
    qos: Literal[0, 1, 2] = 1


class _ReceiverRaw(_Raw):
    name: str
    send_resolved: bool = True
    webhook: list[_WebhookRaw] = []
    dingtalk: list[_DingTalkRaw] = []
    wecom: list[_WeComRaw] = []
    email: list[_EmailRaw] = []
    mqtt: list[_MqttRaw] = []


class _RouteRaw(_Raw):
    match: dict[str, Any] = {}
    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None | Literal["never"] = None
    mute_maintenance: bool | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[_RouteRaw] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _InhibitRaw(_Raw):
    name: str
    source: dict[str, Any] = {}
    target: dict[str, Any] = {}
    equal: list[str] = []
    source_grade_higher: bool = False


class _WindowRaw(_Raw):
    start: str = "00:00"
    end: str = "24:00"
    weekdays: list[str] = []
    days_of_month: list[int] = []
    months: list[int] = []


class _MaintenanceRaw(_Raw):
    name: str
    match: dict[str, Any] = {}
    max_colour: str = "yellow"
    timezone: str = "Asia/Shanghai"
    times: list[_WindowRaw] = Field(min_length=1)


class _StepRaw(_Raw):
    after: Duration
    to: str


class _EscalationRaw(_Raw):
    centres: dict[str, str] = {}
    chains: dict[str, list[_StepRaw]] = {}


class _OutboxRaw(_Raw):
    lease: Duration = OUTBOX_LEASE_S
    backoff_initial: Duration = OUTBOX_BACKOFF_INITIAL_S
    backoff_max: Duration = OUTBOX_BACKOFF_MAX_S
    give_up_after: Duration = OUTBOX_GIVE_UP_AFTER_S
    concurrency: int = Field(default=OUTBOX_CONCURRENCY, ge=1, le=256)
    timeout: Duration = OUTBOX_TIMEOUT_S


class _AuditRaw(_Raw):
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


class _PolicyRaw(_Raw):
    language: Literal["zh", "en"] = "zh"
    tick: Duration = TICK_S
    feed_queue: int = Field(default=FEED_QUEUE, ge=1)
    grading: _GradingRaw = _GradingRaw()
    lifecycle: _LifecycleRaw = _LifecycleRaw()
    route: _RouteRaw
    receivers: list[_ReceiverRaw] = []
    inhibit: list[_InhibitRaw] = []
    maintenance: list[_MaintenanceRaw] = []
    escalation: _EscalationRaw = _EscalationRaw()
    outbox: _OutboxRaw = _OutboxRaw()
    audit: _AuditRaw = _AuditRaw()

    @field_validator("receivers")
    @classmethod
    def _unique_receivers(cls, v: list[_ReceiverRaw]) -> list[_ReceiverRaw]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names must be unique: {dupes}")
        return v


# --------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WEEKDAYS = {d: i for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}
_SEVERITIES = {s.name.lower(): s for s in Severity if s is not Severity.NONE}
_TARGET = re.compile(r"^(enterprise:[a-z_]+|region:(county|city|province)|receiver:.+)$")


def _expand_env(node: Any, path: str) -> Any:
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                raise PolicyError(f"{path}: environment variable {m.group(1)} is not set")
            return value
        return _ENV.sub(sub, node)
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    return node


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the packaged default."""
    if path is None:
        text = (importlib.resources.files("alerts") / DEFAULT_POLICY).read_text(encoding="utf-8")
        where = f"alerts/{DEFAULT_POLICY}"
    else:
        p = Path(path)
        if not p.is_file():
            raise PolicyError(f"alerts policy file {p} does not exist")
        text, where = p.read_text(encoding="utf-8"), str(p)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: the policy must be a mapping")
    try:
        return from_config(doc)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def from_config(doc: Mapping[str, Any]) -> Policy:
    """Validate a parsed policy document and build the runtime objects."""
    doc = _expand_env(dict(doc), "")
    try:
        raw = _PolicyRaw.model_validate(doc)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(policy)'}: {e['msg']}" for e in exc.errors()]
        raise PolicyError("invalid alerts policy:\n  " + "\n  ".join(lines)) from None
    warnings: list[str] = []
    receivers = {r.name: _receiver(r) for r in raw.receivers}
    route = _route(raw.route, "0", None, receivers)
    policy = Policy(
        language=raw.language,
        grading=_grading(raw.grading, warnings),
        lifecycle=_lifecycle(raw.lifecycle),
        route=route,
        receivers=receivers,
        inhibit=tuple(_inhibit(r, i) for i, r in enumerate(raw.inhibit)),
        maintenance=tuple(_maintenance(m, i) for i, m in enumerate(raw.maintenance)),
        escalation=_escalation(raw.escalation, receivers),
        outbox=Outbox(
            lease_s=_dur(raw.outbox.lease, "outbox.lease"),
            backoff_initial_s=_dur(raw.outbox.backoff_initial, "outbox.backoff_initial"),
            backoff_max_s=_dur(raw.outbox.backoff_max, "outbox.backoff_max"),
            give_up_after_s=_dur(raw.outbox.give_up_after, "outbox.give_up_after"),
            concurrency=raw.outbox.concurrency,
            timeout_s=_dur(raw.outbox.timeout, "outbox.timeout"),
        ),
        anchor_dir=Path(raw.audit.anchor_dir) if raw.audit.anchor_dir else None,
        anchor_webhook=raw.audit.anchor_webhook,
        anchor_webhook_timeout_s=_dur(raw.audit.anchor_webhook_timeout, "audit.anchor_webhook_timeout"),
        tick_s=_dur(raw.tick, "tick"),
        feed_queue=raw.feed_queue,
        warnings=tuple(warnings),
    )
    if policy.tick_s <= 0:
        raise PolicyError("tick: must be positive")
    return policy


def _dur(value: object, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def _colour(value: str, key: str) -> Colour:
    try:
        return Colour.parse(value)
    except ValueError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def _matchers(raw: Mapping[str, Any], key: str) -> Matchers:
    try:
        return Matchers.parse(raw)
    except MatcherError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def _text(raw: _TextRaw | None) -> Text:
    return Text(raw.zh, raw.en) if raw else Text()


def _grading(raw: _GradingRaw, warnings: list[str]) -> Grading:
    defaults = {
        Severity.NOTICE: Colour.BLUE,
        Severity.WARNING: Colour.YELLOW,
        Severity.ALARM: Colour.ORANGE,
        Severity.CRITICAL: Colour.RED,
    }
    for name, colour in raw.defaults.items():
        if name not in _SEVERITIES:
            raise PolicyError(f"grading.defaults.{name}: unknown severity; use {', '.join(_SEVERITIES)}")
        defaults[_SEVERITIES[name]] = _colour(colour, f"grading.defaults.{name}")
    try:
        from domain.catalog import KINDS
    except ImportError:  # pragma: no cover - the catalog is part of domain
        KINDS = {}
    rules = []
    names = set()
    for i, r in enumerate(raw.rules):
        key = f"grading.rules[{i}] ({r.name})"
        if r.name in names:
            raise PolicyError(f"{key}: duplicate rule name")
        names.add(r.name)
        matchers = _matchers(r.match, f"{key}.match")
        for label, pats in matchers.patterns:
            if label == "severity":
                bad = [p for p in pats if p not in _SEVERITIES and not any(c in p for c in "*?[")]
                if bad:
                    raise PolicyError(f"{key}.match.severity: unknown severity {bad}")
            if label == "kind" and KINDS:
                literal = [p for p in pats if not any(c in p for c in "*?[")]
                unknown = [p for p in literal if p not in KINDS]
                if literal and len(unknown) == len(literal):  # aliases are fine if one is known
                    warnings.append(f"{key}.match.kind: {unknown} not in the sensor catalog (yet)")
        persist = spread = None
        if r.persist:
            if r.persist.after is None:
                raise PolicyError(f"{key}.persist.after: required")
            persist = Upgrade(_colour(r.persist.colour, f"{key}.persist.colour"),
                              after_s=_dur(r.persist.after, f"{key}.persist.after"))
        if r.spread:
            if r.spread.points is None:
                raise PolicyError(f"{key}.spread.points: required (at least 2)")
            spread = Upgrade(_colour(r.spread.colour, f"{key}.spread.colour"), points=r.spread.points)
        rules.append(
            GradingRule(
                name=r.name,
                matchers=matchers,
                colour=_colour(r.colour, f"{key}.colour"),
                persist=persist,
                spread=spread,
                latch=r.latch,
                setpoint_label=_text(r.setpoint_label),
                action=_text(r.action),
                basis=r.basis,
            )
        )
    return Grading(defaults=defaults, rules=tuple(rules))


def _lifecycle(raw: _LifecycleRaw) -> Lifecycle:
    flapping = None
    if raw.flapping is not None:
        flapping = Flapping(
            window_s=_dur(raw.flapping.window, "lifecycle.flapping.window"),
            changes=raw.flapping.changes,
            quiet_s=_dur(raw.flapping.quiet, "lifecycle.flapping.quiet"),
        )
    return Lifecycle(
        latch_colours=frozenset(_colour(c, "lifecycle.latch_colours") for c in raw.latch_colours),
        auto_close_after_s=None if raw.auto_close_after is None else _dur(raw.auto_close_after, "lifecycle.auto_close_after"),
        auto_close_require_ack=raw.auto_close_require_ack,
        flapping=flapping,
        fold_window_s=_dur(raw.fold_window, "lifecycle.fold_window"),
    )


def _receiver(raw: _ReceiverRaw) -> Receiver:
    channels: list[Channel] = []
    for i, c in enumerate(raw.webhook):
        channels.append(WebhookChannel(c.name or f"webhook{i}", c.url, tuple(sorted(c.headers.items()))))
    for i, c in enumerate(raw.dingtalk):
        channels.append(DingTalkChannel(c.name or f"dingtalk{i}", c.url, c.secret, c.msgtype, tuple(c.at_mobiles), c.at_all))
    for i, c in enumerate(raw.wecom):
        channels.append(WeComChannel(c.name or f"wecom{i}", c.url, c.msgtype, tuple(c.mentioned_mobiles)))
    for i, c in enumerate(raw.email):
        channels.append(
            EmailChannel(c.name or f"email{i}", tuple(c.to), c.sender, c.smtp.host, c.smtp.port,
                         c.smtp.username, c.smtp.password, c.smtp.starttls, c.smtp.ssl)
        )
    for i, c in enumerate(raw.mqtt):
        channels.append(MqttChannel(c.name or f"mqtt{i}", c.qos))
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        raise PolicyError(f"receivers.{raw.name}: channel names must be unique: {names}")
    for c in channels:
        url = getattr(c, "url", None)
        if url is not None and not url.startswith(("http://", "https://")):
            raise PolicyError(f"receivers.{raw.name}.{c.name}.url: must be an http(s) URL")
    return Receiver(raw.name, tuple(channels), raw.send_resolved)


def _route(raw: _RouteRaw, rid: str, parent: Route | None, receivers: Mapping[str, Receiver]) -> Route:
    key = f"route {rid}"
    receiver = raw.receiver or (parent.receiver if parent else None)
    if receiver is None:
        raise PolicyError("route: the root route needs a receiver")
    if receiver not in receivers:
        raise PolicyError(f"{key}.receiver: no receiver named {receiver!r}")
    group_by = tuple(raw.group_by) if raw.group_by is not None else (parent.group_by if parent else ("enterprise", "rule"))
    bad = [g for g in group_by if g not in LABELS]
    if bad:
        raise PolicyError(f"{key}.group_by: unknown labels {bad}; known: {', '.join(LABELS)}")
    if raw.repeat_interval == "never":
        repeat: float | None = None
    elif raw.repeat_interval is None:
        repeat = parent.repeat_interval_s if parent else REPEAT_INTERVAL_S
    else:
        repeat = _dur(raw.repeat_interval, f"{key}.repeat_interval")
    node = Route(
        id=rid,
        matchers=_matchers(raw.match, f"{key}.match"),
        receiver=receiver,
        group_by=group_by,
        group_wait_s=_dur(raw.group_wait, f"{key}.group_wait") if raw.group_wait is not None
        else (parent.group_wait_s if parent else GROUP_WAIT_S),
        group_interval_s=_dur(raw.group_interval, f"{key}.group_interval") if raw.group_interval is not None
        else (parent.group_interval_s if parent else GROUP_INTERVAL_S),
        repeat_interval_s=repeat,
        continue_=raw.continue_,
        routes=(),
        mute_maintenance=raw.mute_maintenance if raw.mute_maintenance is not None
        else (parent.mute_maintenance if parent else True),
    )
    children = tuple(_route(c, f"{rid}.{i}", node, receivers) for i, c in enumerate(raw.routes))
    return dataclasses.replace(node, routes=children)


def _inhibit(raw: _InhibitRaw, i: int) -> InhibitRule:
    key = f"inhibit[{i}] ({raw.name})"
    bad = [e for e in raw.equal if e not in LABELS]
    if bad:
        raise PolicyError(f"{key}.equal: unknown labels {bad}")
    return InhibitRule(raw.name, _matchers(raw.source, f"{key}.source"), _matchers(raw.target, f"{key}.target"),
                       tuple(raw.equal), raw.source_grade_higher)


def _minutes(text: str, key: str) -> int:
    m = re.match(r"^(\d{1,2}):(\d{2})$", text.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise PolicyError(f"{key}: not a time of day HH:MM: {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def _maintenance(raw: _MaintenanceRaw, i: int) -> Maintenance:
    key = f"maintenance[{i}] ({raw.name})"
    try:
        tz = ZoneInfo(raw.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PolicyError(f"{key}.timezone: unknown time zone {raw.timezone!r}") from exc
    windows = []
    for j, w in enumerate(raw.times):
        wk = f"{key}.times[{j}]"
        days = set()
        for d in w.weekdays:
            if d.lower()[:3] not in _WEEKDAYS:
                raise PolicyError(f"{wk}.weekdays: unknown weekday {d!r}")
            days.add(_WEEKDAYS[d.lower()[:3]])
        if any(not 1 <= d <= 31 for d in w.days_of_month):
            raise PolicyError(f"{wk}.days_of_month: days are 1-31")
        if any(not 1 <= m <= 12 for m in w.months):
            raise PolicyError(f"{wk}.months: months are 1-12")
        windows.append(Window(_minutes(w.start, f"{wk}.start"), _minutes(w.end, f"{wk}.end"),
                              frozenset(days), frozenset(w.days_of_month), frozenset(w.months)))
    return Maintenance(raw.name, _matchers(raw.match, f"{key}.match"), _colour(raw.max_colour, f"{key}.max_colour"),
                       tz, tuple(windows))


def _escalation(raw: _EscalationRaw, receivers: Mapping[str, Receiver]) -> Escalation:
    centres = dict(raw.centres)
    default = centres.pop("default", None)
    for code, receiver in [*centres.items(), ("default", default)]:
        if receiver is not None and receiver not in receivers:
            raise PolicyError(f"escalation.centres.{code}: no receiver named {receiver!r}")
        if code != "default" and not re.match(r"^\d{6}$", code):
            raise PolicyError(f"escalation.centres.{code}: not a GB/T 2260 region code")
    chains = {}
    for colour, steps in raw.chains.items():
        c = _colour(colour, f"escalation.chains.{colour}")
        out = []
        for j, s in enumerate(steps):
            key = f"escalation.chains.{colour}[{j}]"
            if not _TARGET.match(s.to):
                raise PolicyError(f"{key}.to: use enterprise:<role>, region:county|city|province or receiver:<name>")
            if s.to.startswith("receiver:") and s.to[9:] not in receivers:
                raise PolicyError(f"{key}.to: no receiver named {s.to[9:]!r}")
            out.append(EscalationStep(_dur(s.after, f"{key}.after"), s.to))
        if [s.after_s for s in out] != sorted(s.after_s for s in out):
            raise PolicyError(f"escalation.chains.{colour}: steps must be in order of time")
        chains[c] = tuple(out)
    return Escalation(centres=centres, default_centre=default, chains=chains)
