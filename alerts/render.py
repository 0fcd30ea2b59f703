"""Messages in Chinese (default) or English: what, where, how bad, since when, what is required.

``【红色预警】南昌市 某煤矿 采煤工作面 甲烷 1.62%VOL ≥ 断电值 1.5%VOL，持续 3 分钟``

Rendering happens when a notification is decided, and the text is stored with it in the outbox,
so a retry sends exactly what was decided.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from alerts.colours import Colour
from alerts.lifecycle import Alert, State
from alerts.policy import GradingRule
from domain.registry import RegistrySnapshot
from domain.severity import SubjectKind

TZ = ZoneInfo("Asia/Shanghai")

_RULES = {
    "limit": ("超限", "over limit"),
    "over_range": ("超量程", "over range"),
    "rate": ("变化率异常", "abnormal rate of change"),
    "ttt": ("趋势预测将超限", "forecast to cross its setpoint"),
    "anomaly": ("统计异常", "statistical anomaly"),
    "stuck": ("数值停滞", "stuck value"),
    "jump": ("数值跳变", "sudden jump"),
    "nodata": ("数据中断", "no data"),
    "gateway_offline": ("网关离线", "gateway offline"),
    "fault": ("传感器故障", "sensor fault"),
    "compound": ("复合条件预警", "compound condition"),
}
_COLOUR_EN = {Colour.BLUE: "BLUE", Colour.YELLOW: "YELLOW", Colour.ORANGE: "ORANGE", Colour.RED: "RED"}


def rule_family(rule: str) -> str:
    return rule.split(".", 1)[0]


def rule_name(rule: str, lang: str) -> str:
    zh, en = _RULES.get(rule_family(rule), (rule, rule))
    if rule_family(rule) == "compound" and "." in rule:
        suffix = rule.split(".", 1)[1]
        return f"{zh}（{suffix}）" if lang != "en" else f"{en} ({suffix})"
    return en if lang == "en" else zh


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.4g}"


def _duration(seconds: float, lang: str) -> str:
    s = max(0, int(seconds))
    if lang == "en":
        if s < 60:
            return f"{s} s"
        if s < 3600:
            return f"{s // 60} min"
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s < 60:
        return f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分钟"
    return f"{s // 3600} 小时 {s % 3600 // 60} 分钟"


def local_time(us: int | None) -> str:
    if us is None:
        return "—"
    return dt.datetime.fromtimestamp(us / 1e6, TZ).strftime("%Y-%m-%d %H:%M:%S")


def place(alert: Alert, registry: RegistrySnapshot | None, lang: str = "zh") -> str:
    """City (and county) name, enterprise name, location — as operators name a place (the names
    are the registry's, Chinese; ``lang`` only changes the words yujing adds)."""
    parts = []
    if registry is not None:
        chain = [registry.regions.get(c) for c in reversed(alert.regions)]
        names = [r.name for r in chain if r is not None and r.level != "province"]
        if names:
            parts.append("".join(names))
        ent = registry.enterprises.get(alert.enterprise or "")
        if ent is not None:
            parts.append(ent.name)
        if alert.subject_kind == SubjectKind.SENSOR:
            s = registry.sensors.get(alert.subject)
            if s is not None:
                zone = registry.zones.get(s.zone)
                parts.append(s.location or (zone.name if zone else s.code))
        elif alert.subject_kind == SubjectKind.ZONE:
            z = registry.zones.get(alert.subject)
            if z is not None:
                parts.append(z.name)
        elif alert.subject_kind == SubjectKind.GATEWAY:
            g = registry.gateways.get(alert.subject)
            if g is not None:
                parts.append(f"{'gateway' if lang == 'en' else '网关'} {g.code}")
    if not parts:
        parts.append(alert.labels.get("enterprise") or alert.alert_key)
    return " ".join(parts)


def _kind_and_unit(alert: Alert, registry: RegistrySnapshot | None, lang: str) -> tuple[str, str]:
    unit = ""
    name = alert.kind
    if registry is not None and alert.subject_kind == SubjectKind.SENSOR:
        s = registry.sensors.get(alert.subject)
        if s is not None:
            unit = s.unit
    if alert.kind:
        try:
            from domain.catalog import get_kind

            k = get_kind(alert.kind)
            name = k.name_en if lang == "en" else k.name_zh
            unit = unit or k.unit
        except (ImportError, ValueError):
            pass
    return name, unit


def headline(alert: Alert, lang: str, escalation: bool = False) -> str:
    c = alert.grade
    if lang == "en":
        if alert.state in (State.RESOLVED, State.CLOSED):
            return f"[CLEARED {_COLOUR_EN[c]} WARNING]"
        tag = f"[{_COLOUR_EN[c]} WARNING{' · ESCALATED' if escalation else ''}{' · LATCHED' if alert.state is State.LATCHED else ''}]"
        return tag
    if alert.state in (State.RESOLVED, State.CLOSED):
        return f"【{c.zh}色预警解除】"
    extra = "·升级" if escalation else ""
    extra += "·待复位" if alert.state is State.LATCHED else ""
    return f"【{c.zh}色预警{extra}】"


def what(alert: Alert, registry: RegistrySnapshot | None, rule: GradingRule | None, lang: str) -> str:
    """What was found: the kind, and the value against its setpoint where there is one
    (``甲烷 1.62%VOL ≥ 断电值 1.5%VOL``)."""
    kind, unit = _kind_and_unit(alert, registry, lang)
    family = rule_family(alert.rule)
    sep = " " if lang == "en" else ""
    text = f"{kind} " if kind else ""
    if family in ("limit", "over_range") and alert.value is not None:
        label = rule.setpoint_label.get(lang) if rule and (rule.setpoint_label.zh or rule.setpoint_label.en) else (
            "setpoint" if lang == "en" else "设定值")
        if alert.setpoint is not None and math.isfinite(alert.setpoint):
            cmp = "≥" if alert.value >= alert.setpoint else "≤"
            text += f"{_num(alert.value)}{sep}{unit} {cmp} {label} {_num(alert.setpoint)}{sep}{unit}"
        else:
            text += f"{_num(alert.value)}{sep}{unit} {rule_name(alert.rule, lang)}"
    elif family == "anomaly" and alert.setpoint is not None:
        score = "score" if lang == "en" else "评分"
        text += f"{rule_name(alert.rule, lang)}（{score} {_num(alert.setpoint)}，{_num(alert.value)}{sep}{unit}）" if lang != "en" \
            else f"{rule_name(alert.rule, lang)} ({score} {_num(alert.setpoint)}, {_num(alert.value)} {unit})"
    else:
        text += rule_name(alert.rule, lang)
        if alert.value is not None and math.isfinite(alert.value):
            text += f" {_num(alert.value)}{sep}{unit}"
        if family == "ttt":
            text += _time_left(alert, rule, unit, lang)
    return text


def _time_left(alert: Alert, rule: GradingRule | None, unit: str, lang: str) -> str:
    """``，预计 12 分钟后达到报警值 1%VOL``: the time to the predicted crossing, as predicted at the
    warning (empty where the finding carried none)."""
    eta = next((e.eta_s for e in alert.evidence if e.rule == alert.rule and e.eta_s is not None), None)
    if eta is None:
        return ""
    label = rule.setpoint_label.get(lang) if rule and (rule.setpoint_label.zh or rule.setpoint_label.en) else (
        "the setpoint" if lang == "en" else "报警值")
    target = f" {_num(alert.setpoint)}{' ' if lang == 'en' else ''}{unit}" if alert.setpoint is not None else ""
    if lang == "en":
        return f", expected to reach {label}{target} in {_duration(eta, lang)}"
    return f"，预计 {_duration(eta, lang)}后达到{label}{target}"


def describe(alert: Alert, registry: RegistrySnapshot | None, rule: GradingRule | None, lang: str,
             now_us: int, escalation: bool = False) -> str:
    """One line: headline, place, what, value against setpoint, and for how long."""
    text = what(alert, registry, rule, lang)
    if alert.state in (State.RESOLVED, State.CLOSED):
        end = alert.resolved_us or now_us
        tail = (f", cleared after {_duration((end - alert.excursion_us) / 1e6, lang)}" if lang == "en"
                else f"，持续 {_duration((end - alert.excursion_us) / 1e6, lang)} 后恢复")
    else:  # the current excursion only: a reopened alert does not carry its earlier ones
        tail = (f", for {_duration((now_us - alert.excursion_us) / 1e6, lang)}" if lang == "en"
                else f"，持续 {_duration((now_us - alert.excursion_us) / 1e6, lang)}")
    if alert.flapping:
        tail += " (flapping)" if lang == "en" else "（频繁波动）"
    return f"{headline(alert, lang, escalation)}{place(alert, registry, lang)} {text}{tail}{evidence(alert, lang)}"


def evidence(alert: Alert, lang: str, listed: int = 6) -> str:
    """The contributing findings of a folded alert (``；证据 3 项：超限 CH4-0101、变化率异常 CH4-0101、…``);
    empty for an alert of one finding."""
    n = len(alert.evidence) + alert.evidence_dropped
    if n <= 1:
        return ""
    order = sorted(alert.evidence, key=lambda e: (not e.active, -e.grade, e.first_us))
    names = [f"{rule_name(e.rule, lang)} {e.code}".strip() + ("" if e.active else (" (cleared)" if lang == "en" else "（已恢复）"))
             for e in order[:listed]]
    more = n - len(names)
    if lang == "en":
        return f"; {n} findings: {', '.join(names)}{f', and {more} more' if more > 0 else ''}"
    return f"；证据 {n} 项：{'、'.join(names)}{f' 等' if more > 0 else ''}"


def requirement(rule: GradingRule | None, lang: str) -> str:
    if rule is None:
        return ""
    text = rule.action.get(lang)
    if not text:
        return ""
    return f"Required: {text}" if lang == "en" else f"处置要求：{text}"


def since(alert: Alert, lang: str) -> str:
    return f"{'since' if lang == 'en' else '开始时间'} {local_time(alert.started_us)}"


def display(alert: Alert, registry: RegistrySnapshot | None, rule: GradingRule | None) -> dict[str, dict[str, str]]:
    """The names an operator reads in an alert queue, in both languages:
    ``{"zh": {"place": "南昌市 某煤矿 采煤工作面", "what": "甲烷 1.62%VOL ≥ 断电值 1.5%VOL", "rule": "超限"}, "en": …}``."""
    return {lang: {"place": place(alert, registry, lang), "what": what(alert, registry, rule, lang),
                   "rule": rule_name(alert.rule, lang)} for lang in ("zh", "en")}
