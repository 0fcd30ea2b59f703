"""The policy: the default loads and grades as documented; bad files name the key."""

from __future__ import annotations

import pytest

from alerts import Colour
from alerts.grading import Grader
from alerts.policy import PolicyError, from_config, load_policy, parse_duration
from domain.severity import Severity as S


@pytest.fixture(scope="module")
def grader():
    return Grader(load_policy().grading)


@pytest.mark.parametrize(
    "industry, kind, rule, severity, subject_kind, colour, rule_name",
    [
        ("coal_mine", "methane", "limit", S.WARNING, "sensor", Colour.YELLOW, "coal-methane-alarm"),
        ("coal_mine", "methane", "limit.methane", S.ALARM, "sensor", Colour.ORANGE, "coal-methane-power-cut"),
        ("coal_mine", "methane", "over_range", S.ALARM, "sensor", Colour.RED, "coal-methane-saturated"),
        ("coal_mine", "methane", "compound.outburst", S.CRITICAL, "sensor", Colour.RED, "coal-methane-critical"),
        ("coal_mine", "methane", "ttt", S.NOTICE, "sensor", Colour.BLUE, "trend"),
        ("hazardous_chemicals", "pressure", "equipment", S.NOTICE, "sensor", Colour.BLUE, "trend"),
        ("coal_mine", "methane", "fault", S.NOTICE, "sensor", Colour.BLUE, "sensor-health"),
        ("coal_mine", "", "gateway_offline", S.WARNING, "gateway", Colour.YELLOW, "coal-gateway-offline"),
        ("non_coal_mine", "", "gateway_offline", S.WARNING, "gateway", Colour.BLUE, "gateway-offline"),
        ("hazardous_chemicals", "combustible_gas", "limit", S.WARNING, "sensor", Colour.YELLOW, "hazchem-level1"),
        ("hazardous_chemicals", "combustible_gas", "limit", S.ALARM, "sensor", Colour.ORANGE, "hazchem-level2"),
        ("cold_storage", "ammonia", "limit", S.WARNING, "sensor", Colour.YELLOW, "ammonia-alarm"),
        ("cold_storage", "ammonia", "limit", S.ALARM, "sensor", Colour.RED, "ammonia-power-cut"),
        ("gas_pipeline", "combustible_gas", "limit", S.ALARM, "sensor", Colour.ORANGE, "gas-shut-off"),
        ("non_coal_mine", "pressure", "limit", S.ALARM, "sensor", Colour.ORANGE, None),  # severity default
        ("gas_pipeline", "", "compound.adjacent_drop", S.CRITICAL, "zone", Colour.RED, None),
    ],
)
def test_default_grading(grader, industry, kind, rule, severity, subject_kind, colour, rule_name):
    g = grader.grade(industry, kind, rule, severity, "", subject_kind, "E")
    assert g.colour is colour
    assert (g.rule.name if g.rule else None) == rule_name


def test_every_default_rule_says_where_it_comes_from():
    for rule in load_policy().grading.rules:
        assert rule.basis, rule.name
        assert ("standard" in rule.basis) or ("judgement" in rule.basis) or ("issue 4" in rule.basis), rule.name


def test_durations():
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300 and parse_duration("1.5h") == 5400
    assert parse_duration(12) == 12 and parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("soon")


def _doc(**extra):
    return {"receivers": [{"name": "r"}], "route": {"receiver": "r"}, **extra}


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"route": {"receiver": "nobody"}}, "no receiver named 'nobody'"),
        (_doc(grading={"rules": [{"name": "x", "colour": "purple"}]}), "grading.rules[0] (x).colour"),
        (_doc(grading={"rules": [{"name": "x", "colour": "red", "match": {"colour": "red"}}]}), "unknown label 'colour'"),
        (_doc(route={"receiver": "r", "group_wait": "soon"}), "route 0.group_wait"),
        (_doc(route={"receiver": "r", "group_by": ["enterprize"]}), "unknown labels ['enterprize']"),
        (_doc(escalation={"chains": {"red": [{"after": "5m", "to": "mayor"}]}}), "escalation.chains.red[0].to"),
        (_doc(escalation={"centres": {"360100": "nobody"}}), "escalation.centres.360100"),
        (_doc(maintenance=[{"name": "m", "times": [{"start": "25:00"}]}]), "maintenance[0] (m).times[0].start"),
        (_doc(unknown_key=1), "unknown_key"),
        (_doc(receivers=[{"name": "r", "webhook": [{"url": "ftp://x"}]}]), "must be an http(s) URL"),
    ],
)
def test_bad_policy_names_the_key(doc, message):
    with pytest.raises(PolicyError) as exc:
        from_config(doc)
    assert message in str(exc.value)


def test_secrets_from_environment(monkeypatch):
    doc = _doc(receivers=[{"name": "r", "dingtalk": [{"url": "https://oapi.dingtalk.com/robot/send?access_token=${TOK}",
                                                      "secret": "${SEC}"}]}])
    with pytest.raises(PolicyError, match="TOK is not set"):
        from_config(doc)
    monkeypatch.setenv("TOK", "abc")
    monkeypatch.setenv("SEC", "SECxyz")
    ch = from_config(doc).receivers["r"].channels[0]
    assert ch.url.endswith("access_token=abc") and ch.secret == "SECxyz"


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: [", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
