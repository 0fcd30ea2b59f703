"""Severity, finding events and subject kinds: the ordered vocabulary of findings.

Detectors grade what they find in these four severities and know nothing of colours; the
alerts stage maps findings to the four warning colours (红橙黄蓝).
"""

from __future__ import annotations

import enum


class Severity(enum.IntEnum):
    NONE = 0
    NOTICE = 1  # statistical or trend early warning, sensor fault
    WARNING = 2  # first setpoint: alarm, level 1, H/L
    ALARM = 3  # second setpoint: power-cut, level 2, HH/LL
    CRITICAL = 4  # what a grading policy escalates: persisting or spreading alarms


class FindingEvent(enum.IntEnum):
    RAISE = 1
    UPDATE = 2  # severity changed while the condition holds
    CLEAR = 3  # condition ended after its off-delay


class SubjectKind(enum.IntEnum):
    SENSOR = 1
    GATEWAY = 2
    ZONE = 3
