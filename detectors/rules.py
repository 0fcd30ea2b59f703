"""Rule ids: the ``rule`` column of a finding, with the severities each can carry.

The alerts stage grades findings by (sensor kind, rule, severity); a finding's identity is
(subject kind, subject, rule), so each rule holds at most one active condition per subject.

| rule            | subject | severities                         | raised when                                     |
|-----------------|---------|------------------------------------|-------------------------------------------------|
| ``limit``       | sensor  | notice / warning / alarm (ladder)  | value ≥ a high setpoint (pre, H/alarm/level1, HH/power-cut/level2) |
| ``limit_low``   | sensor  | notice / warning / alarm (ladder)  | value ≤ a low setpoint (L/欠氧, LL)                |
| ``over_range``  | sensor  | alarm (kind with high setpoints), else notice | reading flagged OVER_RANGE (not calibrating) |
| ``under_range`` | sensor  | alarm (kind with low setpoints), else notice  | reading flagged UNDER_RANGE                |
| ``fault``       | sensor  | notice                             | reading flagged FAULT or DISCONNECTED           |
| ``rate``        | sensor  | notice                             | smoothed rate of change beyond the kind's limit |
| ``ttt``         | sensor  | notice                             | robust trend predicts the next setpoint within the horizon |
| ``anomaly``     | sensor  | notice                             | robust EWMA score ≥ threshold (setpoint column = score) |
| ``window``      | sensor  | notice                             | rolling median/MAD score ≥ threshold (kinds that enable it) |
| ``stuck``       | sensor  | notice                             | a run of unchanged values improbable for the sensor, or the kind's flat-line period |
| ``drift``       | sensor  | notice                             | the sensor's change departs from its peer group's (same zone, kind, class) |
| ``jump``        | sensor  | notice                             | one step larger than physically plausible        |
| ``equipment``   | sensor  | notice                             | one channel of an equipment group departs from what the others predict (subject: that channel) |
| ``nodata``      | sensor  | notice                             | silent past nodata_factor × expected interval, gateway up |
| ``gateway_offline`` | gateway | warning                        | Last Will / offline status, or silent past its interval |
| ``compound.<name>`` | zone | configured (default warning/alarm) | all clauses of a configured compound rule hold  |

Events: ``raise``, ``update`` (severity changed), ``clear`` (with the severity that was active).
Detectors know nothing of colours.
"""

from __future__ import annotations

from domain.severity import Severity

LIMIT = "limit"
LIMIT_LOW = "limit_low"
OVER_RANGE = "over_range"
UNDER_RANGE = "under_range"
FAULT = "fault"
RATE = "rate"
TTT = "ttt"
ANOMALY = "anomaly"
WINDOW = "window"
STUCK = "stuck"
DRIFT = "drift"
JUMP = "jump"
EQUIPMENT = "equipment"
NODATA = "nodata"
GATEWAY_OFFLINE = "gateway_offline"
COMPOUND_PREFIX = "compound."

SEVERITIES: dict[str, tuple[Severity, ...]] = {
    LIMIT: (Severity.NOTICE, Severity.WARNING, Severity.ALARM),
    LIMIT_LOW: (Severity.NOTICE, Severity.WARNING, Severity.ALARM),
    OVER_RANGE: (Severity.NOTICE, Severity.ALARM),
    UNDER_RANGE: (Severity.NOTICE, Severity.ALARM),
    FAULT: (Severity.NOTICE,),
    RATE: (Severity.NOTICE,),
    TTT: (Severity.NOTICE,),
    ANOMALY: (Severity.NOTICE,),
    WINDOW: (Severity.NOTICE,),
    STUCK: (Severity.NOTICE,),
    DRIFT: (Severity.NOTICE,),
    JUMP: (Severity.NOTICE,),
    EQUIPMENT: (Severity.NOTICE,),
    NODATA: (Severity.NOTICE,),
    GATEWAY_OFFLINE: (Severity.WARNING,),
}
"""Severities each fixed rule can carry (compound rules carry their configured severity)."""
