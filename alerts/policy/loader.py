"""Loading the alerts policy: YAML → ``${ENV}`` expanded → schema-validated → frozen runtime values.

A bad file raises :class:`~alerts.policy.model.PolicyError` naming the key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from alerts.colours import Colour
from alerts.matchers import LABELS, Matchers, MatcherError
from alerts.policy.model import (
    Channel,
    DEFAULT_POLICY,
    DingTalkChannel,
    EmailChannel,
    Escalation,
    EscalationStep,
    Flapping,
    GROUP_INTERVAL_S,
    GROUP_WAIT_S,
    Grading,
    GradingRule,
    InhibitRule,
    Lifecycle,
    Maintenance,
    MqttChannel,
    Outbox,
    Policy,
    PolicyError,
    REPEAT_INTERVAL_S,
    Receiver,
    Route,
    Text,
    Upgrade,
    WeComChannel,
    WebhookChannel,
    Window,
    parse_duration,
)
from alerts.policy.schema import (
    EscalationRaw,
    GradingRaw,
    InhibitRaw,
    LifecycleRaw,
    MaintenanceRaw,
    PolicyRaw,
    ReceiverRaw,
    RouteRaw,
    TextRaw,
)
from domain.severity import Severity

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
        raw = PolicyRaw.model_validate(doc)
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


def _text(raw: TextRaw | None) -> Text:
    return Text(raw.zh, raw.en) if raw else Text()


def _grading(raw: GradingRaw, warnings: list[str]) -> Grading:
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


def _lifecycle(raw: LifecycleRaw) -> Lifecycle:
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


def _receiver(raw: ReceiverRaw) -> Receiver:
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


def _route(raw: RouteRaw, rid: str, parent: Route | None, receivers: Mapping[str, Receiver]) -> Route:
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


def _inhibit(raw: InhibitRaw, i: int) -> InhibitRule:
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


def _maintenance(raw: MaintenanceRaw, i: int) -> Maintenance:
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


def _escalation(raw: EscalationRaw, receivers: Mapping[str, Receiver]) -> Escalation:
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
