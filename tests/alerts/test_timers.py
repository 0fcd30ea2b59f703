"""One ``deadlines(alert)`` for every timer, and one sender per channel type (pure, no services)."""

from __future__ import annotations

import pytest

from alerts.alert import Alert, State
from alerts.channels import SENDERS
from alerts.colours import Colour
from alerts.grading import Grader
from alerts.intake import Intake
from alerts.policy import DingTalkChannel, EmailChannel, MqttChannel, WebhookChannel, WeComChannel, load_policy
from alerts.timers import Timers, deadlines
from domain.severity import FindingEvent, Severity, SubjectKind

S = 1_000_000
T0 = 1_764_400_000 * S


def _alert(**changes) -> Alert:
    a = Alert(id=1, alert_key="zone:1:ch4", subject_kind=int(SubjectKind.SENSOR), subject=1, rule="limit",
              enterprise="E1", region="360102", regions=("360102", "360100", "360000"), industry="coal",
              kind="ch4", gateway=1, zone=1, labels={}, grading_rule=None, state=State.FIRING, active=True,
              grade=Colour.ORANGE, base_grade=Colour.ORANGE, peak_grade=Colour.ORANGE, upgraded=None,
              severity=Severity.ALARM, finding_event=FindingEvent.RAISE, finding_ts_us=T0, value=1.6,
              setpoint=1.5, peak_value=1.6, started_us=T0, grade_since_us=T0, unacked_since_us=T0,
              updated_us=T0)
    for k, v in changes.items():
        setattr(a, k, v)
    return a


def test_deadlines_of_a_firing_alert_are_its_escalation_steps_and_shelving():
    policy = load_policy()
    grader = Grader(policy.grading)
    a = _alert(shelved_until_us=T0 + 3600 * S)
    d = deadlines(a, policy, grader)
    assert d.escalation_us == T0  # orange: the safety officer at once
    assert d.shelve_ends_us == T0 + 3600 * S
    assert d.auto_close_us is None and d.fold_window_ends_us is None
    a.escalation_step = 1
    assert deadlines(a, policy, grader).escalation_us == T0 + 15 * 60 * S  # then the county
    a.acked_us = T0 + S
    assert deadlines(a, policy, grader).escalation_us is None  # acknowledgement stops the chain


def test_deadlines_of_a_resolved_alert_are_auto_close_and_the_fold_window():
    policy = load_policy()
    grader = Grader(policy.grading)
    a = _alert(state=State.RESOLVED, active=False, resolved_us=T0 + 60 * S)
    d = deadlines(a, policy, grader)
    assert d.auto_close_us == T0 + 60 * S + 24 * 3600 * S
    assert d.fold_window_ends_us == T0 + 60 * S + 600 * S
    assert d.escalation_us is None
    assert d.next_us() == d.auto_close_us  # the fold window fires nothing
    timers = Timers(policy, grader, Intake(policy, grader).latch)
    assert timers.auto_close(a, d.auto_close_us - 1) is None
    assert timers.auto_close(a, d.auto_close_us).action == "closed" and a.state is State.CLOSED
    assert deadlines(a, policy, grader).next_us() is None


def test_every_channel_type_has_a_sender():
    types = {WebhookChannel("w", "http://x").type, DingTalkChannel("d", "http://x").type,
             WeComChannel("c", "http://x").type, EmailChannel("e", ("a@b",), "s@b", "h").type, MqttChannel().type}
    assert set(SENDERS) == types


def test_alerts_settings_load_the_policy_they_name(tmp_path):
    from alerts.policy import PolicyError
    from alerts.settings import AlertsSettings

    assert AlertsSettings().load_policy().grading.rules  # the packaged default
    missing = tmp_path / "none.yaml"
    with pytest.raises(PolicyError, match="none.yaml"):
        AlertsSettings(alerts_config=missing).load_policy()
