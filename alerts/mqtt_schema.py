"""JSON Schema of the message yujing publishes on ``yj/v1/{enterprise}/{gateway}/alerts``.

One message per alert change: the router's (opened, grade raised or lowered, latched, reopened,
resolved) and the lifecycle changes it does not tell (acknowledged, assigned, shelved, unshelved,
closed; ``change`` names them, see :mod:`alerts.updates`), QoS 1, not retained. ``idempotency_key`` (``{alert_key}#{id}@{version}``) is stable across
redeliveries: a gateway that sees a key twice drops the second. ``message`` is the human sentence
in the policy's language.

Version 2 (one incident per place and cause): ``alert_key`` is the incident's key, ``findings``
lists every contributing finding, and zone alerts are published too, on the topic of every
gateway serving a sensor of the zone (:mod:`alerts.gateways`). ``change`` names lifecycle changes. Times are µs since the Unix epoch (UTC); ``started_at`` is local time
(Asia/Shanghai) for display.
"""

from __future__ import annotations

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://yujing.example/schemas/alert-2.json",
    "title": "yujing alert message (yujing.alert/2)",
    "type": "object",
    "required": ["schema", "idempotency_key", "alert_key", "id", "version", "state", "active", "grade",
                 "severity", "rule", "subject", "enterprise", "started_us", "updated_us", "message", "findings"],
    "properties": {
        "schema": {"const": "yujing.alert/2"},
        "idempotency_key": {"type": "string", "description": "alert_key#id@version; deduplicate on it"},
        "alert_key": {"type": "string", "description": "the incident's identity: zone:{zone}:{kind}, sensor:{id}:{kind}, "
                      "sensor:{id}:health, gateway:{id}:{rule} or zone:{id}:{rule} (alerts.incidents)"},
        "id": {"type": "integer", "description": "incident id; a raise after close is a new id"},
        "version": {"type": "integer", "description": "the transition this message reports"},
        "state": {"enum": ["firing", "acknowledged", "latched", "resolved", "closed"]},
        "active": {"type": "boolean", "description": "the detector's condition still holds"},
        "grade": {"enum": ["blue", "yellow", "orange", "red"], "description": "warning colour of the event"},
        "grade_zh": {"type": "string", "examples": ["红色"]},
        "level_zh": {"type": "string", "examples": ["一级"]},
        "severity": {"enum": ["notice", "warning", "alarm", "critical"]},
        "rule": {"type": "string", "description": "the rule of the worst contributing finding",
                 "examples": ["limit", "nodata", "compound.fan_off"]},
        "subject": {
            "type": "object",
            "required": ["kind", "id", "code"],
            "properties": {"kind": {"enum": ["sensor", "gateway", "zone"]}, "id": {"type": "integer"},
                           "code": {"type": "string"}},
        },
        "enterprise": {"type": ["string", "null"]},
        "region": {"type": ["string", "null"]},
        "zone": {"type": ["string", "null"]},
        "gateway": {"type": ["string", "null"]},
        "kind": {"type": ["string", "null"], "description": "sensor kind (catalog id)"},
        "value": {"type": ["number", "null"]},
        "setpoint": {"type": ["number", "null"], "description": "setpoint crossed, or score for statistical rules"},
        "unit": {"type": ["string", "null"]},
        "flapping": {"type": "boolean"},
        "acknowledged_by": {"type": ["string", "null"]},
        "started_us": {"type": "integer"},
        "started_at": {"type": "string"},
        "updated_us": {"type": "integer"},
        "resolved_us": {"type": ["integer", "null"]},
        "message": {"type": "string", "examples": ["【红色预警】南昌市 某煤矿 采煤工作面 甲烷 1.62%VOL ≥ 断电值 1.5%VOL，持续 3 分钟"]},
        "requirement": {"type": ["string", "null"], "description": "what the standard requires"},
        "findings": {
            "type": "array", "description": "every contributing finding (one per subject and rule)",
            "items": {
                "type": "object",
                "required": ["subject", "rule", "active", "severity", "grade"],
                "properties": {
                    "subject": {"type": "object", "properties": {"kind": {"enum": ["sensor", "gateway", "zone"]},
                                                                  "id": {"type": "integer"}, "code": {"type": "string"}}},
                    "rule": {"type": "string"}, "active": {"type": "boolean"},
                    "severity": {"enum": ["notice", "warning", "alarm", "critical"]},
                    "grade": {"enum": ["blue", "yellow", "orange", "red"]},
                    "grading_rule": {"type": ["string", "null"]},
                    "value": {"type": ["number", "null"]}, "setpoint": {"type": ["number", "null"]},
                    "ts_us": {"type": "integer"}, "first_us": {"type": "integer"}, "raised_us": {"type": "integer"},
                },
            },
        },
        "findings_unlisted": {"type": "integer", "description": "contributing findings left out of a full list"},
        "change": {"type": ["string", "null"],
                   "description": "the lifecycle change this message reports when the router does not tell it "
                                  "(acknowledged, assigned, shelved, unshelved, closed, finding_added, flapping_ended, "
                                  "severity_changed); null on messages of the router (opened, reopened, grade "
                                  "raised or lowered, latched, latch reset, resolved)"},
        "change_actor": {"type": ["string", "null"], "description": "who made that change (an operator, or system)"},
    },
    "additionalProperties": True,
}
